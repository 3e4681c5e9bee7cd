// AVX2 fast-scan: per block of 32 rows and pair of sub-quantizers, one 32-byte load of codes and
// two byte shuffles against the pair's tables (one per 128-bit lane) give the 8-bit entries of all
// 32 rows. They are summed in 16-bit lanes: `all` adds each 16-bit pair of entries whole (the even
// row in the low byte, the odd row times 256 in the high byte) and `odd` adds the high bytes alone;
// the even rows' sums are then all - 256 * odd, exact modulo 2^16 because the true sums fit in 16
// bits (fastscan.h). Two shifts and four adds per shuffle pair instead of widening each entry.
// Two queries share each load of codes (four accumulators each: 8 of the 16 registers).
#include <immintrin.h>

#include "fastscan_kernels.h"

namespace adanns {
namespace simd {
namespace {

inline __m128i fold_lanes(__m256i v) {
  return _mm_add_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// Bits of the 16 sums (two registers of 8) that are <= t: saturating t - ... is zero exactly then.
inline uint32_t le_mask(__m128i a, __m128i b, __m128i t) {
  const __m128i z = _mm_setzero_si128();
  __m128i la = _mm_cmpeq_epi16(_mm_subs_epu16(a, t), z), lb = _mm_cmpeq_epi16(_mm_subs_epu16(b, t), z);
  return static_cast<uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(la, lb)));
}

template <int Q>
void scan_group(const uint8_t* blocks, size_t nblocks, size_t pairs, const uint8_t* const* tables,
                const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const size_t block_bytes = pairs * 32;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    __m256i lo_all[Q], lo_odd[Q], hi_all[Q], hi_odd[Q];
    for (int q = 0; q < Q; ++q) lo_all[q] = lo_odd[q] = hi_all[q] = hi_odd[q] = _mm256_setzero_si256();
    for (size_t p = 0; p < pairs; ++p) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + p * 32));
      const __m256i lo = _mm256_and_si256(c, low4), hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
      for (int q = 0; q < Q; ++q) {
        const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables[q] + p * 32));
        const __m256i vlo = _mm256_shuffle_epi8(t, lo), vhi = _mm256_shuffle_epi8(t, hi);
        lo_all[q] = _mm256_add_epi16(lo_all[q], vlo);
        lo_odd[q] = _mm256_add_epi16(lo_odd[q], _mm256_srli_epi16(vlo, 8));
        hi_all[q] = _mm256_add_epi16(hi_all[q], vhi);
        hi_odd[q] = _mm256_add_epi16(hi_odd[q], _mm256_srli_epi16(vhi, 8));
      }
    }
    for (int q = 0; q < Q; ++q) {
      const __m128i r0 = fold_lanes(_mm256_sub_epi16(lo_all[q], _mm256_slli_epi16(lo_odd[q], 8)));  // rows 0-7
      const __m128i r8 = fold_lanes(lo_odd[q]);                                                     // rows 8-15
      const __m128i r16 = fold_lanes(_mm256_sub_epi16(hi_all[q], _mm256_slli_epi16(hi_odd[q], 8)));
      const __m128i r24 = fold_lanes(hi_odd[q]);
      __m128i* out = reinterpret_cast<__m128i*>(sums[q] + b * 32);
      _mm_storeu_si128(out, r0);
      _mm_storeu_si128(out + 1, r8);
      _mm_storeu_si128(out + 2, r16);
      _mm_storeu_si128(out + 3, r24);
      const __m128i thr = _mm_set1_epi16(static_cast<short>(thresholds[q]));
      masks[q][b] = le_mask(r0, r8, thr) | (le_mask(r16, r24, thr) << 16);
    }
  }
}

void scan(const uint8_t* blocks, size_t nblocks, size_t pairs, size_t nq, const uint8_t* const* tables,
          const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  size_t i = 0;
  for (; i + 2 <= nq; i += 2)
    scan_group<2>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i);
  if (i < nq) scan_group<1>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i);
}

}  // namespace

const FastScanKernels fastscan_avx2_kernels = {scan, "avx2"};

}  // namespace simd
}  // namespace adanns
