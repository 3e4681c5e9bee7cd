// Product quantizer on a Matryoshka prefix: the first pq_dim coordinates (after an optional OPQ
// rotation, applied by the caller) are cut into m sub-vectors of dsub = pq_dim / m coordinates, each
// replaced by the index of its nearest of ksub centroids (ksub = 2^nbits, nbits 4 or 8; one byte
// per code either way). Distances to codes are then sums of m table entries (ADC, adc.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adanns {

class ProductQuantizer {
 public:
  ProductQuantizer() = default;
  ProductQuantizer(size_t pq_dim, size_t m, size_t nbits);

  size_t pq_dim() const { return pq_dim_; }
  size_t m() const { return m_; }
  size_t nbits() const { return nbits_; }
  size_t dsub() const { return dsub_; }
  size_t ksub() const { return ksub_; }
  bool trained() const { return !centroids_.empty(); }
  // m x ksub x dsub floats: centroid c of sub-quantizer j at (j * ksub + c) * dsub.
  const std::vector<float>& centroids() const { return centroids_; }
  void set_centroids(std::vector<float> c);  // checks the size

  // k-means (kmeans.h, seeded per sub-quantizer with seed + j) on each sub-vector of the first
  // pq_dim coordinates of n rows of stride `stride`.
  void train(const float* x, size_t n, size_t stride, size_t niter, uint64_t seed, int threads);
  // `niter` Lloyd iterations from the current centroids (a hot start: OPQ retrains after every
  // rotation update); a centroid that loses all its points stays where it was. Deterministic.
  void refine(const float* x, size_t n, size_t stride, size_t niter, int threads);
  // codes[i * m + j] = nearest centroid (squared L2; ties: smaller index) of sub-vector j of row i.
  void encode(const float* x, size_t n, size_t stride, uint8_t* codes, int threads) const;
  // out[i * pq_dim ...] = the concatenated centroids of each code.
  void decode(const uint8_t* codes, size_t n, float* out) const;
  // Lookup tables for one query prefix q (pq_dim floats): lut[j * ksub + c] = <q_j, c_j> (ip) or
  // |q_j - c_j|^2 (l2). ksub * pq_dim multiply-adds.
  void lut_ip(const float* q, float* lut) const;
  void lut_l2(const float* q, float* lut) const;

 private:
  void transpose_small();  // refreshes centroids_t_ after every change of centroids_

  size_t pq_dim_ = 0, m_ = 0, nbits_ = 8, dsub_ = 0, ksub_ = 256;
  std::vector<float> centroids_;
  std::vector<float> centroids_t_;  // ksub = 16: m x dsub x 16 (table building vectorizes over c)
};

}  // namespace adanns
