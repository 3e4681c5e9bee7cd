// The ADC kernel table one SIMD level provides (see adc.h). As kernels.h: no STL here, so nothing
// compiled with ISA flags leaks into shared code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace adanns {
namespace simd {

using AdcScanFn = void (*)(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m,
                           float* out);

// labels[i] = index of the centroid nearest (squared L2; ties: smaller index) to x_i[:dsub], for
// centroids stored transposed: ct[t * ksub + c] (ksub a multiple of 16).
using NearestFn = void (*)(const float* x, size_t n, size_t stride, const float* ct, size_t ksub,
                           size_t dsub, int64_t* labels);

struct PqKernels {
  AdcScanFn adc_scan;
  NearestFn nearest;
};

extern const PqKernels pq_scalar_kernels;
#ifdef ADANNS_HAVE_X86_KERNELS
extern const PqKernels pq_avx2_kernels;
extern const PqKernels pq_avx512_kernels;
#endif

// Sums codes [i0, n) one at a time, in the order every level uses: j = 0, 1, ..., m-1.
inline void adc_tail(const float* lut, size_t ksub, const uint8_t* codes, size_t i0, size_t n,
                     size_t m, float* out) {
  for (size_t i = i0; i < n; ++i) {
    const uint8_t* c = codes + i * m;
    float s = 0;
    for (size_t j = 0; j < m; ++j) s += lut[j * ksub + c[j]];
    out[i] = s;
  }
}

}  // namespace simd
}  // namespace adanns
