#include "adanns/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adanns/common.h"
#include "adanns/distances.h"
#include "adanns/random.h"
#include "adanns/threads.h"

namespace adanns {

namespace {
constexpr size_t kAssignBlock = 1024;  // rows scored against all centroids at once

// Index of the first smallest value. The minimum is found over 8 lanes first, which the compiler
// vectorises (a branchy running argmin does not, and dominates when d is small, as in PQ
// sub-spaces); then the first index holding it, so ties still go to the smaller index.
size_t argmin_first(const float* v, size_t k) {
  constexpr size_t L = 8;
  const float inf = std::numeric_limits<float>::infinity();
  float lane[L] = {inf, inf, inf, inf, inf, inf, inf, inf};
  size_t c = 0;
  for (; c + L <= k; c += L)
    for (size_t l = 0; l < L; ++l) lane[l] = v[c + l] < lane[l] ? v[c + l] : lane[l];
  float best = inf;
  for (size_t l = 0; l < L; ++l) best = lane[l] < best ? lane[l] : best;
  for (; c < k; ++c) best = v[c] < best ? v[c] : best;
  for (c = 0; c < k; ++c)
    if (v[c] == best) return c;
  return 0;  // every value is +inf (or NaN): the first centroid, as a running argmin would give
}
}

void assign_nearest_l2(const float* x, size_t n, size_t stride, const float* centroids, size_t k,
                       size_t d, int threads, int64_t* labels, float* dist_sq) {
  std::vector<float> cnorm(k);
  norms_sq(centroids, k, d, d, cnorm.data());
  size_t nblocks = (n + kAssignBlock - 1) / kAssignBlock;
  parallel_for(nblocks, threads, [&](size_t b0, size_t b1, int) {
    std::vector<float> ip(kAssignBlock * k), xnorm(kAssignBlock);
    for (size_t b = b0; b < b1; ++b) {
      size_t r0 = b * kAssignBlock, rows = std::min(kAssignBlock, n - r0);
      const float* xb = x + r0 * stride;
      gemm_ip(xb, rows, stride, centroids, k, d, d, ip.data(), k);
      if (dist_sq) norms_sq(xb, rows, stride, d, xnorm.data());
      for (size_t i = 0; i < rows; ++i) {
        float* row = ip.data() + i * k;
        for (size_t c = 0; c < k; ++c) row[c] = cnorm[c] - 2.f * row[c];
        size_t arg = argmin_first(row, k);
        labels[r0 + i] = static_cast<int64_t>(arg);
        if (dist_sq) dist_sq[r0 + i] = std::max(0.f, xnorm[i] + row[arg]);
      }
    }
  });
}

void assign_max_ip(const float* x, size_t n, size_t stride, const float* centroids, size_t k,
                   size_t d, int threads, int64_t* labels) {
  size_t nblocks = (n + kAssignBlock - 1) / kAssignBlock;
  parallel_for(nblocks, threads, [&](size_t b0, size_t b1, int) {
    std::vector<float> ip(kAssignBlock * k);
    for (size_t b = b0; b < b1; ++b) {
      size_t r0 = b * kAssignBlock, rows = std::min(kAssignBlock, n - r0);
      gemm_ip(x + r0 * stride, rows, stride, centroids, k, d, d, ip.data(), k);
      for (size_t i = 0; i < rows; ++i) {
        const float* row = ip.data() + i * k;
        labels[r0 + i] = std::max_element(row, row + k) - row;  // first maximum: smaller index
      }
    }
  });
}

namespace {

// Gives each empty cluster half of a large one: copy its centroid with a tiny symmetric offset
// (the split of faiss and most Lloyd implementations); the next iteration separates them.
void repair_empty_clusters(std::vector<float>& cent, std::vector<size_t>& sizes, size_t d, size_t n,
                           Rng& rng) {
  size_t k = sizes.size();
  const float eps = 1.f / 1024.f;
  for (size_t c = 0; c < k; ++c) {
    if (sizes[c] != 0) continue;
    size_t j = 0;
    // Pick a cluster with probability growing with its size (only clusters with > 1 member).
    for (;;) {
      j = static_cast<size_t>(rng.below(k));
      if (sizes[j] > 1 && rng.uniform() * static_cast<double>(n - k + 1) < static_cast<double>(sizes[j] - 1)) break;
    }
    float* a = cent.data() + c * d;
    float* b = cent.data() + j * d;
    for (size_t t = 0; t < d; ++t) {
      float s = (t % 2 == 0) ? 1.f + eps : 1.f - eps;
      a[t] = b[t] * s;
      b[t] = b[t] * (2.f - s);
    }
    sizes[c] = sizes[j] / 2;
    sizes[j] -= sizes[c];
  }
}

// k-means++ seeding on a random pool of at most kPoolPerCentroid * k rows: a centroid in every
// well-separated group, at a cost (pool * k * d) far below one Lloyd iteration over the data.
constexpr size_t kPoolPerCentroid = 16;

std::vector<float> kmeanspp_init(const float* x, size_t m, size_t stride, size_t d, size_t k, Rng& rng) {
  size_t pool_n = std::min(m, kPoolPerCentroid * k);
  std::vector<int64_t> pick = sample_without_replacement(rng, static_cast<int64_t>(m), static_cast<int64_t>(pool_n));
  std::vector<float> pool(pool_n * d);
  for (size_t i = 0; i < pool_n; ++i) std::copy_n(x + pick[i] * stride, d, pool.data() + i * d);

  std::vector<float> cent(k * d), best(pool_n, std::numeric_limits<float>::infinity()), dist(pool_n);
  size_t chosen = static_cast<size_t>(rng.below(pool_n));
  for (size_t c = 0; c < k; ++c) {
    std::copy_n(pool.data() + chosen * d, d, cent.data() + c * d);
    if (c + 1 == k) break;
    one_to_many_l2(cent.data() + c * d, pool.data(), pool_n, d, d, dist.data());
    double total = 0;
    for (size_t i = 0; i < pool_n; ++i) {
      best[i] = std::min(best[i], dist[i]);
      total += best[i];
    }
    // Next centre drawn with probability proportional to the squared distance; when every pool
    // point already coincides with a centre, any point not yet drawn will do.
    double target = rng.uniform() * total;
    chosen = pool_n - 1;
    for (size_t i = 0; i < pool_n; ++i) {
      target -= best[i];
      if (target < 0 && best[i] > 0) {
        chosen = i;
        break;
      }
    }
    if (total <= 0) chosen = (c + 1) % pool_n;
  }
  return cent;
}

}  // namespace

KMeansResult kmeans(const float* x, size_t n, size_t stride, size_t d, const KMeansParams& p) {
  const size_t k = p.k;
  ADANNS_CHECK(k >= 1, "k must be >= 1, got ", k);
  ADANNS_CHECK(n >= k, "k-means needs at least k = ", k, " points, got ", n);
  ADANNS_CHECK(d >= 1 && d <= stride, "bad k-means dimension ", d);
  Rng rng(p.seed);

  // Subsample large inputs to max_points_per_centroid * k rows (contiguous copy of the prefix).
  std::vector<float> sample;
  const float* xs = x;
  size_t xs_stride = stride, m = n;
  if (p.max_points_per_centroid > 0 && n > k * p.max_points_per_centroid) {
    m = k * p.max_points_per_centroid;
    std::vector<int64_t> idx = sample_without_replacement(rng, static_cast<int64_t>(n), static_cast<int64_t>(m));
    std::sort(idx.begin(), idx.end());
    sample.resize(m * d);
    for (size_t i = 0; i < m; ++i) std::copy_n(x + idx[i] * stride, d, sample.data() + i * d);
    xs = sample.data();
    xs_stride = d;
  }

  KMeansResult res;
  res.centroids = kmeanspp_init(xs, m, xs_stride, d, k, rng);

  std::vector<int64_t> labels(m);
  std::vector<float> dist(m);
  std::vector<size_t> sizes(k), start(k + 1), members(m);
  for (size_t it = 0; it < p.niter; ++it) {
    if (p.assign_by_ip) {
      assign_max_ip(xs, m, xs_stride, res.centroids.data(), k, d, p.threads, labels.data());
    } else {
      assign_nearest_l2(xs, m, xs_stride, res.centroids.data(), k, d, p.threads, labels.data(), dist.data());
      double obj = 0;
      for (size_t i = 0; i < m; ++i) obj += dist[i];
      res.objective = obj;
    }

    // Members of each cluster in row order (counting sort), so every centroid is summed in the
    // same order whatever the thread count.
    std::fill(sizes.begin(), sizes.end(), 0);
    for (size_t i = 0; i < m; ++i) sizes[labels[i]]++;
    start[0] = 0;
    for (size_t c = 0; c < k; ++c) start[c + 1] = start[c] + sizes[c];
    {
      std::vector<size_t> fill(start.begin(), start.end() - 1);
      for (size_t i = 0; i < m; ++i) members[fill[labels[i]]++] = i;
    }
    parallel_for(k, p.threads, [&](size_t c0, size_t c1, int) {
      std::vector<double> acc(d);
      for (size_t c = c0; c < c1; ++c) {
        if (sizes[c] == 0) continue;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (size_t t = start[c]; t < start[c + 1]; ++t) {
          const float* row = xs + members[t] * xs_stride;
          for (size_t j = 0; j < d; ++j) acc[j] += row[j];
        }
        float* out = res.centroids.data() + c * d;
        double inv = 1.0 / static_cast<double>(sizes[c]);
        for (size_t j = 0; j < d; ++j) out[j] = static_cast<float>(acc[j] * inv);
      }
    });
    repair_empty_clusters(res.centroids, sizes, d, m, rng);
  }
  return res;
}

}  // namespace adanns
