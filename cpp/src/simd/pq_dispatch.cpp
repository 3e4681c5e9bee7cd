// Chooses the ADC kernel of the active SIMD level at every call (set_simd_level and ADANNS_SIMD apply).
#include "adanns/adc.h"
#include "adanns/simd.h"
#include "pq_kernels.h"

namespace adanns {

void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out) {
  const simd::PqKernels* k = &simd::pq_scalar_kernels;
#ifdef ADANNS_HAVE_X86_KERNELS
  switch (active_simd_level()) {
    case SimdLevel::AVX512: k = &simd::pq_avx512_kernels; break;
    case SimdLevel::AVX2: k = &simd::pq_avx2_kernels; break;
    default: break;
  }
#endif
  k->adc_scan(lut, ksub, codes, n, m, out);
}

}  // namespace adanns
