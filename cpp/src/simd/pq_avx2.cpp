// AVX2 ADC: 8 codes per step, one per lane. A 32-bit gather fetches 4 sub-codes of each of the 8
// codes, then one table gather per sub-quantizer; lanes add in the scalar order (j ascending).
#include <immintrin.h>

#include "pq_kernels.h"

namespace adanns {
namespace simd {
namespace {

void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out) {
  size_t i = 0;
  const size_t m4 = m & ~size_t(3);
  if (m4 > 0 && m * 8 < (size_t(1) << 31)) {
    const int mi = static_cast<int>(m);
    const __m256i lane_off = _mm256_setr_epi32(0, mi, 2 * mi, 3 * mi, 4 * mi, 5 * mi, 6 * mi, 7 * mi);
    const __m256i byte = _mm256_set1_epi32(0xff);
    for (; i + 8 <= n; i += 8) {
      const uint8_t* c = codes + i * m;
      __m256 s = _mm256_setzero_ps();
      size_t j = 0;
      for (; j < m4; j += 4) {
        __m256i w = _mm256_i32gather_epi32(reinterpret_cast<const int*>(c + j), lane_off, 1);
        const float* t = lut + j * ksub;
        __m256i i0 = _mm256_and_si256(w, byte);
        __m256i i1 = _mm256_and_si256(_mm256_srli_epi32(w, 8), byte);
        __m256i i2 = _mm256_and_si256(_mm256_srli_epi32(w, 16), byte);
        __m256i i3 = _mm256_srli_epi32(w, 24);
        s = _mm256_add_ps(s, _mm256_i32gather_ps(t, i0, 4));
        s = _mm256_add_ps(s, _mm256_i32gather_ps(t + ksub, i1, 4));
        s = _mm256_add_ps(s, _mm256_i32gather_ps(t + 2 * ksub, i2, 4));
        s = _mm256_add_ps(s, _mm256_i32gather_ps(t + 3 * ksub, i3, 4));
      }
      if (j < m) {
        alignas(32) float part[8];
        _mm256_store_ps(part, s);
        for (size_t l = 0; l < 8; ++l) {
          float v = part[l];
          for (size_t jj = j; jj < m; ++jj) v += lut[jj * ksub + c[l * m + jj]];
          out[i + l] = v;
        }
      } else {
        _mm256_storeu_ps(out + i, s);
      }
    }
  }
  adc_tail(lut, ksub, codes, i, n, m, out);
}

// Nearest centroid: 8 centroids per register (see pq_avx512.cpp).
void nearest(const float* x, size_t n, size_t stride, const float* ct, size_t ksub, size_t dsub,
             int64_t* labels) {
  const __m256i step = _mm256_set1_epi32(8);
  const __m256i lane_idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * stride;
    __m256 best = _mm256_set1_ps(__builtin_inff());
    __m256i best_idx = _mm256_setzero_si256(), idx = lane_idx;
    for (size_t c0 = 0; c0 < ksub; c0 += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (size_t t = 0; t < dsub; ++t) {
        __m256 e = _mm256_sub_ps(_mm256_set1_ps(row[t]), _mm256_loadu_ps(ct + t * ksub + c0));
        acc = _mm256_fmadd_ps(e, e, acc);
      }
      __m256 lt = _mm256_cmp_ps(acc, best, _CMP_LT_OQ);
      best = _mm256_blendv_ps(best, acc, lt);
      best_idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_idx), _mm256_castsi256_ps(idx), lt));
      idx = _mm256_add_epi32(idx, step);
    }
    alignas(32) float bv[8];
    alignas(32) int32_t bi[8];
    _mm256_store_ps(bv, best);
    _mm256_store_si256(reinterpret_cast<__m256i*>(bi), best_idx);
    int64_t arg = bi[0];
    float b = bv[0];
    for (int l = 1; l < 8; ++l)
      if (bv[l] < b || (bv[l] == b && bi[l] < arg)) {
        b = bv[l];
        arg = bi[l];
      }
    labels[i] = arg;
  }
}

}  // namespace

const PqKernels pq_avx2_kernels = {adc_scan, nearest};

}  // namespace simd
}  // namespace adanns
