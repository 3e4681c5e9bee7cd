// Runtime SIMD dispatch: the CPU is probed once, the best supported level becomes active unless
// ADANNS_SIMD=scalar|avx2|avx512 asks for another (a level the CPU lacks is refused).
#pragma once

#include <string>
#include <vector>

namespace adanns {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

const char* simd_level_name(SimdLevel level);
SimdLevel simd_level_from_name(const std::string& name);  // throws Error on unknown names

bool cpu_supports(SimdLevel level);
std::vector<SimdLevel> available_simd_levels();

SimdLevel active_simd_level();
// Switches every kernel to `level`; throws Error when the CPU lacks it. Not thread-safe with
// concurrent searches: meant for start-up and tests.
void set_simd_level(SimdLevel level);

}  // namespace adanns
