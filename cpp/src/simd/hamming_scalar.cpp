// Portable Hamming kernels: the oracle every other level is tested against. No ISA flags, so the
// popcount is the SWAR bit count (the popcnt instruction is not in baseline x86-64).
#include "hamming_kernels.h"

namespace adanns {
namespace simd {
namespace {

inline int popcount64(uint64_t v) {
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((v * 0x0101010101010101ull) >> 56);
}

void distances(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, size_t nw, const uint64_t* mask,
               int32_t* out) {
  for (size_t j = 0; j < nx; ++j) {
    const uint64_t* r = x + j * xs;
    int s = 0;
    for (size_t w = 0; w < nw; ++w) s += popcount64((q[w] ^ r[w]) & (mask ? mask[w] : ~0ull));
    out[j] = s;
  }
}

size_t select_le(const int32_t* d, size_t n, int32_t t, uint32_t* idx) {
  size_t m = 0;
  for (size_t j = 0; j < n; ++j)
    if (d[j] <= t) idx[m++] = static_cast<uint32_t>(j);
  return m;
}

}  // namespace

const HammingKernels hamming_scalar_kernels = {distances, select_le, "scalar-swar"};

}  // namespace simd
}  // namespace adanns
