// AVX-512BW fast-scan (built with -mavx512bw; used only when the CPU reports AVX512BW): the AVX2
// kernel's arithmetic (see fastscan_avx2.cpp: `all` and `odd` 16-bit accumulators, exact modulo
// 2^16) on two pairs of sub-quantizers per 64-byte load, the four tables in the four 128-bit lanes;
// two such loads per step of the loop. An odd last pair goes through 256-bit registers into the low
// half. At the end of each block the four lanes of the four accumulators are folded together (rows
// 0-31 in order in one zmm) and one unsigned 16-bit compare gives the block's 32-bit mask directly.
// Four queries share each load of codes (16 of the 32 zmm registers hold accumulators).
#include <immintrin.h>

#include "fastscan_kernels.h"

namespace adanns {
namespace simd {
namespace {

// Each lane of a zmm holds the partial sums of its own sub-quantizers; the four lanes of a, b, c, d
// are added across in one transpose-and-add (6 lane shuffles, 3 adds) rather than folding each
// register alone: lane 0 of the result is the sum of a's lanes, lane 1 of b's, lane 2 of c's, 3 of d's.
inline __m512i fold_lanes(__m512i a, __m512i b, __m512i c, __m512i d) {
  // [a0+a2, a1+a3, b0+b2, b1+b3] and the same for c, d.
  const __m512i ab = _mm512_add_epi16(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i cd = _mm512_add_epi16(_mm512_shuffle_i64x2(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_i64x2(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_epi16(_mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
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
    // Four pairs (two 64-byte loads) per iteration, their entries added together before they reach the
    // accumulators: half the loop-carried adds (and the register copies GCC makes for them) per
    // entry; ~10-20% faster on a Sapphire Rapids for one query, ~5% for four. Sums stay exact mod 2^16.
    for (; p + 4 <= pairs; p += 4) {
      const __m512i c0 = _mm512_loadu_si512(reinterpret_cast<const void*>(blk + p * 32));
      const __m512i c1 = _mm512_loadu_si512(reinterpret_cast<const void*>(blk + p * 32 + 64));
      const __m512i lo0 = _mm512_and_si512(c0, low4), hi0 = _mm512_and_si512(_mm512_srli_epi16(c0, 4), low4);
      const __m512i lo1 = _mm512_and_si512(c1, low4), hi1 = _mm512_and_si512(_mm512_srli_epi16(c1, 4), low4);
      for (int q = 0; q < Q; ++q) {
        const __m512i t0 = _mm512_loadu_si512(reinterpret_cast<const void*>(tables[q] + p * 32));
        const __m512i t1 = _mm512_loadu_si512(reinterpret_cast<const void*>(tables[q] + p * 32 + 64));
        const __m512i vlo0 = _mm512_shuffle_epi8(t0, lo0), vhi0 = _mm512_shuffle_epi8(t0, hi0);
        const __m512i vlo1 = _mm512_shuffle_epi8(t1, lo1), vhi1 = _mm512_shuffle_epi8(t1, hi1);
        lo_all[q] = _mm512_add_epi16(lo_all[q], _mm512_add_epi16(vlo0, vlo1));
        lo_odd[q] = _mm512_add_epi16(lo_odd[q],
                                     _mm512_add_epi16(_mm512_srli_epi16(vlo0, 8), _mm512_srli_epi16(vlo1, 8)));
        hi_all[q] = _mm512_add_epi16(hi_all[q], _mm512_add_epi16(vhi0, vhi1));
        hi_odd[q] = _mm512_add_epi16(hi_odd[q],
                                     _mm512_add_epi16(_mm512_srli_epi16(vhi0, 8), _mm512_srli_epi16(vhi1, 8)));
      }
    }
    if (p + 2 <= pairs) {  // two pairs left
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
      p += 2;
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
      // Lanes [lo_all, lo_odd, hi_all, hi_odd] folded: lanes 1 and 3 are rows 8-15 and 24-31; rows
      // 0-7 and 16-23 are lanes 0 and 2 minus 256 x lanes 1 and 3 (exact modulo 2^16, so after the fold).
      const __m512i u = fold_lanes(lo_all[q], lo_odd[q], hi_all[q], hi_odd[q]);
      const __m512i odd = _mm512_slli_epi16(_mm512_shuffle_i64x2(u, u, _MM_SHUFFLE(3, 3, 1, 1)), 8);
      const __m512i all = _mm512_mask_sub_epi16(u, 0x00FF00FF, u, odd);  // rows in order 0-31
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
