// AVX-512 ADC: 16 codes per step, one per lane. A 32-bit gather fetches 4 sub-codes of each of the
// 16 codes, then one table gather per sub-quantizer; lanes add in the scalar order (j ascending).
#include <immintrin.h>

#include "pq_kernels.h"

namespace adanns {
namespace simd {
namespace {

void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out) {
  size_t i = 0;
  const size_t m4 = m & ~size_t(3);
  if (m4 > 0 && m * 16 < (size_t(1) << 31)) {
    const __m512i lane_off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(static_cast<int>(m)));
    const __m512i byte = _mm512_set1_epi32(0xff);
    for (; i + 16 <= n; i += 16) {
      const uint8_t* c = codes + i * m;
      __m512 s = _mm512_setzero_ps();
      size_t j = 0;
      for (; j < m4; j += 4) {
        __m512i w = _mm512_i32gather_epi32(lane_off, reinterpret_cast<const void*>(c + j), 1);
        const float* t = lut + j * ksub;
        __m512i i0 = _mm512_and_si512(w, byte);
        __m512i i1 = _mm512_and_si512(_mm512_srli_epi32(w, 8), byte);
        __m512i i2 = _mm512_and_si512(_mm512_srli_epi32(w, 16), byte);
        __m512i i3 = _mm512_srli_epi32(w, 24);
        s = _mm512_add_ps(s, _mm512_i32gather_ps(i0, t, 4));
        s = _mm512_add_ps(s, _mm512_i32gather_ps(i1, t + ksub, 4));
        s = _mm512_add_ps(s, _mm512_i32gather_ps(i2, t + 2 * ksub, 4));
        s = _mm512_add_ps(s, _mm512_i32gather_ps(i3, t + 3 * ksub, 4));
      }
      if (j < m) {
        alignas(64) float part[16];
        _mm512_store_ps(part, s);
        for (size_t l = 0; l < 16; ++l) {
          float v = part[l];
          for (size_t jj = j; jj < m; ++jj) v += lut[jj * ksub + c[l * m + jj]];
          out[i + l] = v;
        }
      } else {
        _mm512_storeu_ps(out + i, s);
      }
    }
  }
  adc_tail(lut, ksub, codes, i, n, m, out);
}

// Nearest centroid: 16 centroids per register, coordinates of the row broadcast; a running
// per-lane minimum with the block's index (strict <, blocks in ascending order, so each lane keeps
// its smallest index on ties), then the 16 lanes folded with the same tie rule.
void nearest(const float* x, size_t n, size_t stride, const float* ct, size_t ksub, size_t dsub,
             int64_t* labels) {
  const __m512i step = _mm512_set1_epi32(16);
  const __m512i lane_idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * stride;
    __m512 best = _mm512_set1_ps(__builtin_inff());
    __m512i best_idx = _mm512_setzero_si512(), idx = lane_idx;
    for (size_t c0 = 0; c0 < ksub; c0 += 16) {
      __m512 acc = _mm512_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        __m512 e = _mm512_sub_ps(_mm512_set1_ps(row[t]), _mm512_loadu_ps(ct + t * ksub + c0));
        acc = _mm512_fmadd_ps(e, e, acc);
      }
      __mmask16 lt = _mm512_cmp_ps_mask(acc, best, _CMP_LT_OQ);
      best = _mm512_mask_mov_ps(best, lt, acc);
      best_idx = _mm512_mask_mov_epi32(best_idx, lt, idx);
      idx = _mm512_add_epi32(idx, step);
    }
    alignas(64) float bv[16];
    alignas(64) int32_t bi[16];
    _mm512_store_ps(bv, best);
    _mm512_store_si512(reinterpret_cast<void*>(bi), best_idx);
    int64_t arg = bi[0];
    float b = bv[0];
    for (int l = 1; l < 16; ++l)
      if (bv[l] < b || (bv[l] == b && bi[l] < arg)) {
        b = bv[l];
        arg = bi[l];
      }
    labels[i] = arg;
  }
}

}  // namespace

const PqKernels pq_avx512_kernels = {adc_scan, nearest};

}  // namespace simd
}  // namespace adanns
