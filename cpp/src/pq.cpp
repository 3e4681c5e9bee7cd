#include "adanns/pq.h"

#include <algorithm>

#include "adanns/adc.h"
#include "adanns/common.h"
#include "adanns/distances.h"
#include "adanns/kmeans.h"
#include "adanns/threads.h"

namespace adanns {

namespace {
// labels of n rows against the sub-quantizer centroids c (ksub x dsub), in parallel blocks.
void assign_sub(const float* x, size_t n, size_t stride, const float* c, size_t ksub, size_t dsub,
                int threads, int64_t* labels) {
  std::vector<float> ct(ksub * dsub);
  for (size_t k = 0; k < ksub; ++k)
    for (size_t t = 0; t < dsub; ++t) ct[t * ksub + k] = c[k * dsub + t];
  constexpr size_t kBlock = 4096;
  parallel_for((n + kBlock - 1) / kBlock, threads, [&](size_t b0, size_t b1, int) {
    for (size_t b = b0; b < b1; ++b) {
      size_t r0 = b * kBlock, rows = std::min(kBlock, n - r0);
      nearest_subcentroid(x + r0 * stride, rows, stride, ct.data(), ksub, dsub, labels + r0);
    }
  });
}
}  // namespace

ProductQuantizer::ProductQuantizer(size_t pq_dim, size_t m, size_t nbits)
    : pq_dim_(pq_dim), m_(m), nbits_(nbits) {
  ADANNS_CHECK(m >= 1 && m <= pq_dim, "m must be in 1..pq_dim (", pq_dim, "), got ", m);
  ADANNS_CHECK(pq_dim % m == 0, "pq_dim (", pq_dim, ") must be a multiple of m (", m, ")");
  ADANNS_CHECK(nbits == 4 || nbits == 8, "nbits must be 4 or 8, got ", nbits);
  dsub_ = pq_dim / m;
  ksub_ = size_t(1) << nbits;
}

void ProductQuantizer::set_centroids(std::vector<float> c) {
  ADANNS_CHECK(c.size() == m_ * ksub_ * dsub_, "PQ codebook must hold m * ksub * dsub = ",
               m_ * ksub_ * dsub_, " floats, got ", c.size());
  centroids_ = std::move(c);
  transpose_small();
}

void ProductQuantizer::transpose_small() {
  centroids_t_.clear();
  if (ksub_ != 16 || centroids_.empty()) return;
  centroids_t_.resize(centroids_.size());
  for (size_t j = 0; j < m_; ++j)
    for (size_t c = 0; c < 16; ++c)
      for (size_t t = 0; t < dsub_; ++t) centroids_t_[(j * dsub_ + t) * 16 + c] = centroids_[(j * 16 + c) * dsub_ + t];
}

void ProductQuantizer::train(const float* x, size_t n, size_t stride, size_t niter, uint64_t seed,
                             int threads) {
  ADANNS_CHECK(n >= ksub_, "PQ training needs at least ksub = ", ksub_, " vectors, got ", n);
  // k-means++ seeding per sub-space (kmeans.h with no iterations), then Lloyd with the PQ kernel.
  std::vector<float> c(m_ * ksub_ * dsub_);
  for (size_t j = 0; j < m_; ++j) {
    KMeansParams kp;
    kp.k = ksub_;
    kp.niter = 0;
    kp.seed = seed + j;
    kp.threads = threads;
    KMeansResult r = kmeans(x + j * dsub_, n, stride, dsub_, kp);
    std::copy(r.centroids.begin(), r.centroids.end(), c.begin() + j * ksub_ * dsub_);
  }
  centroids_ = std::move(c);
  refine(x, n, stride, niter, threads);
}

void ProductQuantizer::refine(const float* x, size_t n, size_t stride, size_t niter, int threads) {
  ADANNS_CHECK(trained(), "product quantizer is not trained");
  std::vector<int64_t> labels(n);
  std::vector<double> acc(ksub_ * dsub_);
  std::vector<size_t> count(ksub_);
  std::vector<float> sub(niter ? n * dsub_ : 0);
  for (size_t j = 0; j < m_; ++j) {
    float* c = centroids_.data() + j * ksub_ * dsub_;
    // The sub-space's coordinates, contiguous: one strided pass instead of two per iteration.
    for (size_t i = 0; i < n && niter; ++i) std::copy_n(x + i * stride + j * dsub_, dsub_, sub.data() + i * dsub_);
    for (size_t it = 0; it < niter; ++it) {
      assign_sub(sub.data(), n, dsub_, c, ksub_, dsub_, threads, labels.data());
      std::fill(acc.begin(), acc.end(), 0.0);
      std::fill(count.begin(), count.end(), 0);
      for (size_t i = 0; i < n; ++i) {  // in row order: the same sums whatever the thread count
        const float* row = sub.data() + i * dsub_;
        double* a = acc.data() + labels[i] * dsub_;
        for (size_t t = 0; t < dsub_; ++t) a[t] += row[t];
        count[labels[i]]++;
      }
      for (size_t k = 0; k < ksub_; ++k)
        if (count[k])
          for (size_t t = 0; t < dsub_; ++t) c[k * dsub_ + t] = static_cast<float>(acc[k * dsub_ + t] / count[k]);
    }
  }
  transpose_small();
}

void ProductQuantizer::encode(const float* x, size_t n, size_t stride, uint8_t* codes,
                              int threads) const {
  ADANNS_CHECK(trained(), "product quantizer is not trained");
  std::vector<int64_t> labels(n);
  for (size_t j = 0; j < m_; ++j) {
    assign_sub(x + j * dsub_, n, stride, centroids_.data() + j * ksub_ * dsub_, ksub_, dsub_, threads,
               labels.data());
    for (size_t i = 0; i < n; ++i) codes[i * m_ + j] = static_cast<uint8_t>(labels[i]);
  }
}

void ProductQuantizer::decode(const uint8_t* codes, size_t n, float* out) const {
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < m_; ++j) {
      const float* c = centroids_.data() + (j * ksub_ + codes[i * m_ + j]) * dsub_;
      std::copy_n(c, dsub_, out + i * pq_dim_ + j * dsub_);
    }
}

namespace {
// With 16 centroids a sub-space is too small a job for a dispatched kernel call: plain loops over
// the transposed centroids (one 16-wide row per coordinate). term(q_t, c_t) is the per-coordinate
// contribution (ip: product, l2: squared difference).
template <class Term>
void lut16(const float* q, const float* ct, size_t m, size_t dsub, float* lut, Term term) {
  for (size_t j = 0; j < m; ++j) {
    float s[16] = {};
    for (size_t t = 0; t < dsub; ++t) {
      const float v = q[j * dsub + t];
      const float* x = ct + (j * dsub + t) * 16;
      for (size_t c = 0; c < 16; ++c) s[c] += term(v, x[c]);
    }
    std::copy_n(s, 16, lut + j * 16);
  }
}
}  // namespace

// Tables through the dispatched one-to-many kernels (distances.h): each sub-space is a query of
// dsub coordinates against ksub contiguous centroids; 16-centroid tables by lut16.
void ProductQuantizer::lut_ip(const float* q, float* lut) const {
  if (!centroids_t_.empty())
    return lut16(q, centroids_t_.data(), m_, dsub_, lut, [](float v, float x) { return v * x; });
  for (size_t j = 0; j < m_; ++j)
    one_to_many_ip(q + j * dsub_, centroids_.data() + j * ksub_ * dsub_, ksub_, dsub_, dsub_, lut + j * ksub_);
}

void ProductQuantizer::lut_l2(const float* q, float* lut) const {
  if (!centroids_t_.empty())
    return lut16(q, centroids_t_.data(), m_, dsub_, lut, [](float v, float x) { return (v - x) * (v - x); });
  for (size_t j = 0; j < m_; ++j)
    one_to_many_l2(q + j * dsub_, centroids_.data() + j * ksub_ * dsub_, ksub_, dsub_, dsub_, lut + j * ksub_);
}

}  // namespace adanns
