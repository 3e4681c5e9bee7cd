// Picks the kernel table once: the best level the CPU supports, or ADANNS_SIMD when set.
#include <atomic>
#include <cstdlib>
#include <string>

#include "adanns/common.h"
#include "adanns/simd.h"
#include "kernels.h"

namespace adanns {

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::AVX512: return "avx512";
  }
  return "unknown";
}

SimdLevel simd_level_from_name(const std::string& name) {
  if (name == "scalar") return SimdLevel::Scalar;
  if (name == "avx2") return SimdLevel::AVX2;
  if (name == "avx512") return SimdLevel::AVX512;
  raise("unknown SIMD level '", name, "' (expected scalar, avx2 or avx512)");
}

bool cpu_supports(SimdLevel level) {
#ifdef ADANNS_HAVE_X86_KERNELS
  // The GCC/Clang builtins also check that the OS saves the wide registers (XGETBV).
  __builtin_cpu_init();
  switch (level) {
    case SimdLevel::Scalar: return true;
    case SimdLevel::AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdLevel::AVX512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
  }
  return false;
#else
  return level == SimdLevel::Scalar;
#endif
}

std::vector<SimdLevel> available_simd_levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::AVX2, SimdLevel::AVX512})
    if (cpu_supports(l)) out.push_back(l);
  return out;
}

namespace simd {

static const Kernels* table_for(SimdLevel level) {
#ifdef ADANNS_HAVE_X86_KERNELS
  if (level == SimdLevel::AVX512) return &avx512_kernels;
  if (level == SimdLevel::AVX2) return &avx2_kernels;
#endif
  (void)level;
  return &scalar_kernels;
}

struct Active {
  explicit Active(SimdLevel l) : table(table_for(l)), level(static_cast<int>(l)) {}
  std::atomic<const Kernels*> table;
  std::atomic<int> level;
};

static SimdLevel initial_level() {
  const char* env = std::getenv("ADANNS_SIMD");
  if (env && *env) {
    SimdLevel wanted = simd_level_from_name(env);
    if (!cpu_supports(wanted))
      raise("ADANNS_SIMD=", env, " but this CPU does not support ", simd_level_name(wanted));
    return wanted;
  }
  SimdLevel best = SimdLevel::Scalar;
  for (SimdLevel l : available_simd_levels()) best = l;
  return best;
}

static Active& active() {
  static Active a(initial_level());
  return a;
}

const Kernels& kernels() { return *active().table.load(std::memory_order_relaxed); }

}  // namespace simd

SimdLevel active_simd_level() { return static_cast<SimdLevel>(simd::active().level.load()); }

void set_simd_level(SimdLevel level) {
  if (!cpu_supports(level)) raise("this CPU does not support SIMD level ", simd_level_name(level));
  simd::active().table.store(simd::table_for(level));
  simd::active().level.store(static_cast<int>(level));
}

}  // namespace adanns
