// Portable ADC: four codes at a time, so twelve independent loads are in flight per step (one code at
// a time is bound by the latency of its add chain).
#include "pq_kernels.h"

namespace adanns {
namespace simd {
namespace {

void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint8_t* c = codes + i * m;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const float* t = lut;
    for (size_t j = 0; j < m; ++j, t += ksub) {
      s0 += t[c[j]];
      s1 += t[c[m + j]];
      s2 += t[c[2 * m + j]];
      s3 += t[c[3 * m + j]];
    }
    out[i] = s0;
    out[i + 1] = s1;
    out[i + 2] = s2;
    out[i + 3] = s3;
  }
  adc_tail(lut, ksub, codes, i, n, m, out);
}

void nearest(const float* x, size_t n, size_t stride, const float* ct, size_t ksub, size_t dsub,
             int64_t* labels) {
  float dist[256];
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * stride;
    int64_t arg = 0;
    float best = 0;
    for (size_t c0 = 0; c0 < ksub; c0 += 256) {
      size_t nc = ksub - c0 < 256 ? ksub - c0 : 256;
      for (size_t c = 0; c < nc; ++c) dist[c] = 0;
      for (size_t t = 0; t < dsub; ++t) {
        const float v = row[t];
        const float* cr = ct + t * ksub + c0;
        for (size_t c = 0; c < nc; ++c) {
          float e = v - cr[c];
          dist[c] += e * e;
        }
      }
      for (size_t c = 0; c < nc; ++c)
        if ((c0 == 0 && c == 0) || dist[c] < best) {
          best = dist[c];
          arg = static_cast<int64_t>(c0 + c);
        }
    }
    labels[i] = arg;
  }
}

}  // namespace

const PqKernels pq_scalar_kernels = {adc_scan, nearest};

}  // namespace simd
}  // namespace adanns
