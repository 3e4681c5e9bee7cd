// AVX-512BW fast-scan (built with -mavx512bw; used only when the CPU reports AVX512BW): the AVX2
// kernel's arithmetic (see fastscan_avx2.cpp: `all` and `odd` 16-bit accumulators, exact modulo
// 2^16) on two pairs of sub-quantizers per 64-byte load, the four tables in the four 128-bit lanes.
// An odd last pair goes through 256-bit registers into the low half. The four lanes are folded at
// the end of each block and one unsigned 16-bit compare gives the block's 32-bit mask directly.
// Four queries share each load of codes (16 of the 32 zmm registers hold accumulators).
#include <immintrin.h>

#include "fastscan_kernels.h"

namespace adanns {
namespace simd {
namespace {

// The four 128-bit lanes added (each lane holds the partial sums of its own sub-quantizers).
inline __m128i fold_lanes(__m512i v) {
  const __m256i h = _mm256_add_epi16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  return _mm_add_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// A 256-bit value in the low half of a zmm, zeros above (so the upper lanes add nothing).
inline __m512i widen(__m256i v) { return _mm512_inserti64x4(_mm512_setzero_si512(), v, 0); }

template <int Q>
void scan_group(const uint8_t* blocks, size_t nblocks, size_t pairs, const uint8_t* const* tables,
                const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m256i low4_256 = _mm256_set1_epi8(0x0f);
  const size_t block_bytes = pairs * 32;
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * block_bytes;
    __m512i lo_all[Q], lo_odd[Q], hi_all[Q], hi_odd[Q];
    for (int q = 0; q < Q; ++q) lo_all[q] = lo_odd[q] = hi_all[q] = hi_odd[q] = _mm512_setzero_si512();
    size_t p = 0;
    for (; p + 2 <= pairs; p += 2) {
      const __m512i c = _mm512_loadu_si512(reinterpret_cast<const void*>(blk + p * 32));
      const __m512i lo = _mm512_and_si512(c, low4), hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
      for (int q = 0; q < Q; ++q) {
        const __m512i t = _mm512_loadu_si512(reinterpret_cast<const void*>(tables[q] + p * 32));
        const __m512i vlo = _mm512_shuffle_epi8(t, lo), vhi = _mm512_shuffle_epi8(t, hi);
        lo_all[q] = _mm512_add_epi16(lo_all[q], vlo);
        lo_odd[q] = _mm512_add_epi16(lo_odd[q], _mm512_srli_epi16(vlo, 8));
        hi_all[q] = _mm512_add_epi16(hi_all[q], vhi);
        hi_odd[q] = _mm512_add_epi16(hi_odd[q], _mm512_srli_epi16(vhi, 8));
      }
    }
    if (p < pairs) {  // the last pair alone: a 64-byte load would read past the block
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + p * 32));
      const __m256i lo = _mm256_and_si256(c, low4_256);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4_256);
      for (int q = 0; q < Q; ++q) {
        const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables[q] + p * 32));
        const __m256i vlo = _mm256_shuffle_epi8(t, lo), vhi = _mm256_shuffle_epi8(t, hi);
        lo_all[q] = _mm512_add_epi16(lo_all[q], widen(vlo));
        lo_odd[q] = _mm512_add_epi16(lo_odd[q], widen(_mm256_srli_epi16(vlo, 8)));
        hi_all[q] = _mm512_add_epi16(hi_all[q], widen(vhi));
        hi_odd[q] = _mm512_add_epi16(hi_odd[q], widen(_mm256_srli_epi16(vhi, 8)));
      }
    }
    for (int q = 0; q < Q; ++q) {
      const __m128i r0 = fold_lanes(_mm512_sub_epi16(lo_all[q], _mm512_slli_epi16(lo_odd[q], 8)));  // rows 0-7
      const __m128i r8 = fold_lanes(lo_odd[q]);                                                     // rows 8-15
      const __m128i r16 = fold_lanes(_mm512_sub_epi16(hi_all[q], _mm512_slli_epi16(hi_odd[q], 8)));
      const __m128i r24 = fold_lanes(hi_odd[q]);
      const __m512i all = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(r8, r0)),
                                             _mm256_set_m128i(r24, r16), 1);
      _mm512_storeu_si512(reinterpret_cast<void*>(sums[q] + b * 32), all);
      const __m512i thr = _mm512_set1_epi16(static_cast<short>(thresholds[q]));
      masks[q][b] = static_cast<uint32_t>(_mm512_cmple_epu16_mask(all, thr));
    }
  }
}

void scan(const uint8_t* blocks, size_t nblocks, size_t pairs, size_t nq, const uint8_t* const* tables,
          const uint16_t* thresholds, uint16_t* const* sums, uint32_t* const* masks) {
  size_t i = 0;
  for (; i + 4 <= nq; i += 4)
    scan_group<4>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i);
  // The 1-3 left over share their loads too, rather than each reading the codes again.
  switch (nq - i) {
    case 3: scan_group<3>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i); break;
    case 2: scan_group<2>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i); break;
    case 1: scan_group<1>(blocks, nblocks, pairs, tables + i, thresholds + i, sums + i, masks + i); break;
    default: break;
  }
}

}  // namespace

const FastScanKernels fastscan_avx512_kernels = {scan, "avx512bw"};

}  // namespace simd
}  // namespace adanns
