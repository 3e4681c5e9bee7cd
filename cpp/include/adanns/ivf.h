// AdANNS-IVF: k-means on the first cluster_dim (d_c) coordinates; each inverted list stores its
// rows' full vectors once, so every search picks its own scan dimension d_s, nprobe and re-ranking
// dimension d_r on the same index.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "adanns/distances.h"
#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/row_store.h"
#include "adanns/search.h"
#include "adanns/user_meta.h"

namespace adanns {

class IVFIndex {
 public:
  IVFIndex(size_t dim, size_t nlist, Metric metric, size_t cluster_dim, uint64_t seed, size_t niter);

  size_t dim() const { return dim_; }
  size_t nlist() const { return nlist_; }
  size_t cluster_dim() const { return cluster_dim_; }
  Metric metric() const { return metric_; }
  uint64_t seed() const { return seed_; }
  size_t niter() const { return niter_; }
  bool is_trained() const;
  size_t size() const;
  size_t bytes() const;
  std::vector<int64_t> list_sizes() const;
  std::vector<float> centroids() const;  // nlist x cluster_dim

  // k-means on x[:, :cluster_dim] (cosine: on the renormalised prefixes). Only while empty.
  void train(const float* x, size_t n, int threads);
  void add(const float* x, size_t n, const idx_t* ids, int threads);
  size_t remove(const idx_t* ids, size_t n);

  // With p.filter, only allowed ids are returned; a filtered scan probes lists past nprobe (in
  // centroid order) until each query has scan_keep() allowed candidates. See filter.h.
  void search(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
              idx_t* ids, double* mflops) const;
  // Expected MFLOPs per query, from the list sizes: a query probes lists about as often as data
  // falls into them, so the expected rows scanned are nprobe * sum(s^2) / sum(s).
  double estimate_mflops(const SearchParams& p, size_t qdim) const;

  // Every id held, in storage order.
  std::vector<idx_t> ids() const;
  // The first of the ids an add without ids assigns (one past the largest id ever added).
  idx_t next_id() const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    return ids_.next_id();
  }
  // Opaque bytes saved with the index (the Python layer keeps its tuning results there).
  std::string user_meta() const { return user_meta_.get(); }
  void set_user_meta(std::string meta) { user_meta_.set(std::move(meta)); }

  void save(const std::string& path) const;
  static std::unique_ptr<IVFIndex> from_file(IndexFile file);

 private:
  // Coarse scores of `nq` query prefixes (width dcu) against the centroids: distances, smaller
  // is better. Cosine centroids were trained on unit prefixes, so both use L2 there.
  void coarse_distances(const float* q, size_t nq, size_t dcu, float* out) const;
  // The direct plan of a selective filter: every allowed row scored, no centroids (exact).
  void search_allowed_rows(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
                           idx_t* ids, double* mflops) const;
  void set_centroids_derived();  // norms and packed copy, after centroids_ change
  void assign_lists(const float* x, size_t n, int threads, int64_t* lists) const;

  size_t dim_, nlist_, cluster_dim_;
  Metric metric_;
  uint64_t seed_;
  size_t niter_;
  bool trained_ = false;
  std::vector<float> centroids_;       // nlist x cluster_dim
  std::vector<float> centroid_norms_;  // |c|^2 over cluster_dim
  PackedRows packed_centroids_;        // for the coarse GEMM
  std::vector<RowStore> lists_;
  IdMap ids_;
  UserMeta user_meta_;
  std::shared_ptr<MappedFile> mapping_;
  mutable std::shared_mutex mu_;
};

}  // namespace adanns
