// AVX2 Hamming kernels (built with -mavx2 -mpopcnt): hardware popcnt for one-word codes, the nibble
// lookup (vpshufb on 4-bit halves, vpsadbw to add the bytes) for wider ones.
#include <immintrin.h>

#include "hamming_kernels.h"

namespace adanns {
namespace simd {
namespace {

// Per-byte popcounts of v, summed into four 64-bit lanes.
inline __m256i popcount_lanes(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

inline __m256i load_masked_words(const uint64_t* p, size_t n) {  // n < 4 words, rest zero
  alignas(32) uint64_t t[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) t[i] = p[i];
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(t));
}

void distances(const uint64_t* q, const uint64_t* x, size_t nx, size_t xs, size_t nw, const uint64_t* mask,
               int32_t* out) {
  if (nw == 1) {
    const uint64_t m = mask ? mask[0] : ~0ull, q0 = q[0];
    for (size_t j = 0; j < nx; ++j) out[j] = static_cast<int32_t>(_mm_popcnt_u64((q0 ^ x[j * xs]) & m));
    return;
  }
  const size_t full = nw / 4, rest = nw % 4;
  for (size_t j = 0; j < nx; ++j) {
    const uint64_t* r = x + j * xs;
    __m256i acc = _mm256_setzero_si256();
    for (size_t c = 0; c < full; ++c) {
      __m256i v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 4 * c)),
                                   _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + 4 * c)));
      if (mask) v = _mm256_and_si256(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + 4 * c)));
      acc = _mm256_add_epi64(acc, popcount_lanes(v));
    }
    if (rest) {
      __m256i v = _mm256_xor_si256(load_masked_words(q + 4 * full, rest), load_masked_words(r + 4 * full, rest));
      if (mask) v = _mm256_and_si256(v, load_masked_words(mask + 4 * full, rest));
      acc = _mm256_add_epi64(acc, popcount_lanes(v));
    }
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    out[j] = static_cast<int32_t>(_mm_cvtsi128_si64(s));
  }
}

size_t select_le(const int32_t* d, size_t n, int32_t t, uint32_t* idx) {
  const __m256i tv = _mm256_set1_epi32(t);
  size_t m = 0, j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256i gt = _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + j)), tv);
    unsigned bits = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(gt))) & 0xFFu;
    while (bits) {  // rare once the heap is full: most blocks have no candidate
      idx[m++] = static_cast<uint32_t>(j + __builtin_ctz(bits));
      bits &= bits - 1;
    }
  }
  for (; j < n; ++j)
    if (d[j] <= t) idx[m++] = static_cast<uint32_t>(j);
  return m;
}

}  // namespace

const HammingKernels hamming_avx2_kernels = {distances, select_le, "avx2-nibble"};

}  // namespace simd
}  // namespace adanns
