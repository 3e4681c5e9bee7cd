#include "adanns/distances.h"

#include <algorithm>

#include "adanns/common.h"
#include "adanns/simd.h"
#include "simd/kernels.h"

namespace adanns {

void block_ip(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  simd::kernels().block_ip(q, nq, qs, x, nx, xs, d, out, ldo);
}

void block_l2(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  simd::kernels().block_l2(q, nq, qs, x, nx, xs, d, out, ldo);
}

void block_ip_norm(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs,
                   size_t d, float* out, size_t ldo, float* x_norm_sq) {
  simd::kernels().block_ip_norm(q, nq, qs, x, nx, xs, d, out, ldo, x_norm_sq);
}

void one_to_many_ip(const float* q, const float* x, size_t nx, size_t xs, size_t d, float* out) {
  simd::kernels().block_ip(q, 1, d, x, nx, xs, d, out, nx);
}

void one_to_many_l2(const float* q, const float* x, size_t nx, size_t xs, size_t d, float* out) {
  simd::kernels().block_l2(q, 1, d, x, nx, xs, d, out, nx);
}

float dot_u8(const float* q, const uint8_t* code, size_t d) { return simd::kernels().dot_u8(q, code, d); }
float pair_ip(const float* a, const float* b, size_t d) { return simd::kernels().pair_ip(a, b, d); }
float pair_l2(const float* a, const float* b, size_t d) { return simd::kernels().pair_l2(a, b, d); }

void norms_sq(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  simd::kernels().norms_sq(x, nx, xs, d, out);
}

void gemm_ip(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
             float* out, size_t ldo) {
  const simd::Kernels& k = simd::kernels();
  // One packing buffer per thread, grown on demand: each block is packed once for all queries.
  thread_local std::vector<float> work;
  size_t need = k.gemm_rows_per_block * d;
  if (work.size() < need) work.resize(need);
  for (size_t x0 = 0; x0 < nx; x0 += k.gemm_rows_per_block) {
    size_t rows = std::min(k.gemm_rows_per_block, nx - x0);
    k.pack_rows(x + x0 * xs, rows, xs, d, work.data());
    k.gemm_packed(q, nq, qs, work.data(), rows, d, d, out + x0, ldo);
  }
}

PackedRows::PackedRows(const float* x, size_t nx, size_t x_stride, size_t d)
    : nx_(nx), depth_(d), level_(active_simd_level()) {
  const simd::Kernels& k = simd::kernels();
  size_t panels = (nx + k.panel_rows - 1) / k.panel_rows;
  data_.resize(panels * k.panel_rows * d);
  k.pack_rows(x, nx, x_stride, d, data_.data());
}

void PackedRows::gemm(const float* q, size_t nq, size_t q_stride, size_t du, float* out, size_t ldo) const {
  ADANNS_CHECK(du <= depth_, "prefix ", du, " deeper than the packed rows (", depth_, ")");
  ADANNS_CHECK(level_ == active_simd_level(), "rows were packed for another SIMD level");
  simd::kernels().gemm_packed(q, nq, q_stride, data_.data(), nx_, depth_, du, out, ldo);
}

}  // namespace adanns
