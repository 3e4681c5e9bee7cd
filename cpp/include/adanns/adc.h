// Asymmetric distance computation: the sum of m lookup-table entries per code, for many codes at
// once. Dispatched per call on the active SIMD level (simd.h), so ADANNS_SIMD and set_simd_level
// apply. Every level adds the m entries in the same order, so the sums are bit-identical across
// levels (the scalar file is the oracle).
#pragma once

#include <cstddef>
#include <cstdint>

namespace adanns {

// out[i] = sum_j lut[j * ksub + codes[i * m + j]] for i < n (ksub 16 or 256).
void adc_scan(const float* lut, size_t ksub, const uint8_t* codes, size_t n, size_t m, float* out);

// labels[i] = nearest (squared L2; ties: the smaller index) of ksub centroids to x_i[:dsub], with the
// centroids transposed: ct[t * ksub + c]; ksub a multiple of 16. PQ encoding and training: direct
// distances beat a GEMM at the small depths (dsub) of PQ sub-spaces.
void nearest_subcentroid(const float* x, size_t n, size_t stride, const float* ct, size_t ksub,
                         size_t dsub, int64_t* labels);

}  // namespace adanns
