// The Hamming kernels one SIMD level provides (a table per level, like kernels.h). Codes are rows of
// 64-bit words; bit order inside a word is irrelevant to a popcount, so packed uint8 codes are read
// as little-endian words. Free of the STL for the same reason as kernels.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace adanns {
namespace simd {

// out[j] = popcount((q ^ x_j) & mask) over the first nw words of x_j = x + j * xs, for j < nx.
// mask (nw words) may be null: every bit counts (a prefix ending inside a word passes a mask).
using HammingFn = void (*)(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, size_t nw,
                           const uint64_t* mask, int32_t* out);
// Writes every j < n with d[j] <= t to idx, ascending; returns how many.
using SelectLeFn = size_t (*)(const int32_t* d, size_t n, int32_t t, uint32_t* idx);

struct HammingKernels {
  HammingFn distances;
  SelectLeFn select_le;
  const char* name;  // which implementation (tests and benchmarks report it)
};

extern const HammingKernels hamming_scalar_kernels;
#ifdef ADANNS_HAVE_X86_KERNELS
extern const HammingKernels hamming_avx2_kernels;
extern const HammingKernels hamming_avx512_kernels;  // needs AVX512F + VPOPCNTDQ
#endif

}  // namespace simd
}  // namespace adanns
