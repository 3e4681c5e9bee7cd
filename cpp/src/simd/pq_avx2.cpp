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

}  // namespace

const PqKernels pq_avx2_kernels = {adc_scan};

}  // namespace simd
}  // namespace adanns
