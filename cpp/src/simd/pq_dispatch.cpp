// Chooses the ADC kernel of the active SIMD level at every call (set_simd_level and ADANNS_SIMD apply).
#include "adanns/adc.h"
#include "adanns/simd.h"
#include "pq_kernels.h"

namespace adanns {

static const simd::PqKernels& pq_kernels() {
#ifdef ADANNS_HAVE_X86_KERNELS
  switch (active_simd_level()) {
    case SimdLevel::AVX512: return simd::pq_avx512_kernels;
    case SimdLevel::AVX2: return simd::pq_avx2_kernels;
    default: break;
  }
#endif
  return simd::pq_scalar_kernels;
}

void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out) {
  pq_kernels().adc_scan(lut, ksub, codes, n, m, out);
}

void nearest_subcentroid(const float* x, size_t n, size_t stride, const float* ct, size_t ksub,
                         size_t dsub, int64_t* labels) {
  pq_kernels().nearest(x, n, stride, ct, ksub, dsub, labels);
}

}  // namespace adanns
