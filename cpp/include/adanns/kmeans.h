// k-means (Lloyd) on the first `d` coordinates of strided rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adanns {

struct KMeansParams {
  size_t k = 0;
  size_t niter = 20;
  uint64_t seed = 0;
  int threads = 0;                       // <= 0: all cores
  size_t max_points_per_centroid = 256;  // larger inputs are subsampled (seeded), as faiss does
  // Assign points to the centroid of largest inner product instead of the nearest one: the
  // clusters an inner-product IVF probes are then the ones it was trained on.
  bool assign_by_ip = false;
};

struct KMeansResult {
  std::vector<float> centroids;  // k x d
  double objective = 0;  // sum of squared distances to the nearest centroid, last pass (L2 assignment only)
};

// Initialisation: k-means++ on a seeded random pool of 16 * k rows. Empty clusters are repaired
// by splitting a large one. Deterministic for a seed, whatever the thread count.
KMeansResult kmeans(const float* x, size_t n, size_t stride, size_t d, const KMeansParams& params);

// For each row, the nearest centroid in squared L2 (ties: smaller centroid index), and optionally
// that squared distance. Used by k-means and by IVF list assignment.
void assign_nearest_l2(const float* x, size_t n, size_t stride, const float* centroids, size_t k,
                       size_t d, int threads, int64_t* labels, float* dist_sq);

// As above with the largest inner product.
void assign_max_ip(const float* x, size_t n, size_t stride, const float* centroids, size_t k,
                   size_t d, int threads, int64_t* labels);

}  // namespace adanns
