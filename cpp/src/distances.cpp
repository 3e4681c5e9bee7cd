#include "adanns/distances.h"

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

void norms_sq(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  simd::kernels().norms_sq(x, nx, xs, d, out);
}

void gemm_ip(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
             float* out, size_t ldo) {
  const simd::Kernels& k = simd::kernels();
  // One packing buffer per thread, grown on demand: packing is amortised over all queries.
  thread_local std::vector<float> work;
  size_t need = k.gemm_rows_per_block * d;
  if (work.size() < need) work.resize(need);
  k.gemm_ip(q, nq, qs, x, nx, xs, d, out, ldo, work.data());
}

}  // namespace adanns
