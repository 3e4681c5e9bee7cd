// Distance kernels over Matryoshka prefixes: every function reads only the first `d` coordinates of
// rows stored with a larger stride, so one stored vector serves every prefix length.
//
// Two families:
//  * "dot-layout" kernels (block_*, one_to_many_*): each pair's sum is formed the same way whatever the
//    block shape, so a score never depends on how queries were grouped (or on the thread count).
//  * gemm_ip: packs rows into panels and runs a register-blocked outer-product kernel; the fast path for
//    many queries against many rows (flat batches, k-means, coarse quantizer).
// All of them dispatch through the active SIMD level (simd.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adanns/simd.h"

namespace adanns {

// out[i * ldo + j] = <q_i[:d], x_j[:d]> for i < nq, j < nx.
void block_ip(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx, size_t x_stride,
              size_t d, float* out, size_t ldo);
// out[i * ldo + j] = |q_i[:d] - x_j[:d]|^2, formed from differences (no cancellation).
void block_l2(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx, size_t x_stride,
              size_t d, float* out, size_t ldo);
// As block_ip, and also x_norm_sq[j] = |x_j[:d]|^2 from the same pass (cosine on a prefix).
void block_ip_norm(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx,
                   size_t x_stride, size_t d, float* out, size_t ldo, float* x_norm_sq);

// One query against many rows: out[j] = <q[:d], x_j[:d]> (resp. squared L2).
void one_to_many_ip(const float* q, const float* x, size_t nx, size_t x_stride, size_t d, float* out);
void one_to_many_l2(const float* q, const float* x, size_t nx, size_t x_stride, size_t d, float* out);

// sum_j q[j] * code[j] for j < d: a float query against one row of 8-bit codes (SQ8 graph walks).
float dot_u8(const float* q, const uint8_t* code, size_t d);

// <a[:d], b[:d]> (resp. squared L2) for one pair of rows: a graph walk's one-node-at-a-time scoring
// (several accumulators; the sum's order differs from the block kernels').
float pair_ip(const float* a, const float* b, size_t d);
float pair_l2(const float* a, const float* b, size_t d);

// norms_sq[j] = |x_j[:d]|^2.
void norms_sq(const float* x, size_t nx, size_t x_stride, size_t d, float* out);

// GEMM-style inner products for large blocks: same contract as block_ip. The sum of each pair runs
// coordinate by coordinate, so it differs from block_ip in the last bits but not with blocking.
void gemm_ip(const float* q, size_t nq, size_t q_stride, const float* x, size_t nx, size_t x_stride,
             size_t d, float* out, size_t ldo);

// Rows packed once for gemm against many later query batches (the IVF centroids). Any prefix
// du <= d of the packed rows can be used. Packing depends on the SIMD level: callers repack when
// level() differs from the active one (only tests switch levels).
class PackedRows {
 public:
  PackedRows() = default;
  PackedRows(const float* x, size_t nx, size_t x_stride, size_t d);
  SimdLevel level() const { return level_; }
  bool empty() const { return nx_ == 0; }
  // out[i * ldo + j] = <q_i[:du], x_j[:du]>
  void gemm(const float* q, size_t nq, size_t q_stride, size_t du, float* out, size_t ldo) const;

 private:
  size_t nx_ = 0, depth_ = 0;
  SimdLevel level_ = SimdLevel::Scalar;
  std::vector<float> data_;
};

}  // namespace adanns
