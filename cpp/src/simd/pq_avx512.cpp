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

}  // namespace

const PqKernels pq_avx512_kernels = {adc_scan};

}  // namespace simd
}  // namespace adanns
