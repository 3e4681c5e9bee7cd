// Indices that scan PQ codes (AdANNS-OPQ and AdANNS-IVFOPQ). One class for both:
//  * nlist = 0: exhaustive over the codes of every row (OPQIndex);
//  * nlist > 0: IVF on the first cluster_dim coordinates; each list holds its rows' codes, of the
//    residual to the list centroid when `residual` (IVFOPQIndex).
// Codes quantize the first pq_dim coordinates after an orthonormal rotation R (y = x[:pq_dim] @ R;
// none: identity). With store_vectors the full vectors are kept too and feed the shared re-ranking
// stages (search.h); without, the index holds codes and ids only.
//
// Training is split so that the Python layer can learn the OPQ rotation with numpy: coarse_kmeans
// and training_targets are pure, set_trained installs everything at once.
//
// Cost per query (MFLOPs, 1 multiply-add = 1 FLOP): pq_dim^2 for the rotation (when set),
// nlist * cluster_dim for the coarse step, ksub * pq_dim per lookup table built (one per query, or
// one per probed list for l2 residuals), min(cluster_dim, pq_dim) per probed list for ip residuals
// when cluster_dim > pq_dim (the query-centroid term; otherwise it is the coarse step's score), m per
// code scanned, then the re-ranking stages.
//
// nbits = 4 scans with fast-scan (fastscan.h): each list also keeps its codes in the blocked
// register layout (rebuilt from the plain codes on load; the file format is the plain codes), and
// tables are quantized to 8 bits per query (per list for l2 residuals). The scan's scores are then
// approximate (within m / (2 * scale) of the float ADC score, fastscan.h): with re-ranking that only
// decides the shortlist; without, the returned scores are the dequantized approximations.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/pq.h"
#include "adanns/search.h"
#include "adanns/user_meta.h"

namespace adanns {

struct PQIndexConfig {
  size_t dim = 0;
  size_t nlist = 0;        // 0: exhaustive
  size_t cluster_dim = 0;  // d_c (IVF only)
  size_t pq_dim = 0;
  size_t m = 0;
  size_t nbits = 8;
  Metric metric = Metric::IP;  // ip or l2
  bool residual = true;        // IVF only
  bool store_vectors = true;
  uint64_t seed = 0;
  size_t niter = 20;           // coarse k-means iterations
};

class PQIndex {
 public:
  explicit PQIndex(const PQIndexConfig& c);

  const PQIndexConfig& config() const { return cfg_; }
  bool is_trained() const;
  bool has_rotation() const;
  size_t size() const;
  size_t bytes() const;
  std::vector<int64_t> list_sizes() const;
  std::vector<float> centroids() const;  // nlist x cluster_dim
  std::vector<float> rotation() const;   // pq_dim x pq_dim (empty: none)
  std::vector<float> codebook() const;   // m x ksub x dsub

  // Coarse centroids (nlist x cluster_dim) by k-means on x[:, :cluster_dim]; changes nothing.
  std::vector<float> coarse_kmeans(const float* x, size_t n, int threads) const;
  // What the quantizer is trained on: x[:, :pq_dim], minus the zero-padded centroid of each row's
  // list when residual (centroids: nlist x cluster_dim, ignored when exhaustive). n x pq_dim.
  std::vector<float> training_targets(const float* x, size_t n, const float* centroids,
                                      int threads) const;
  // Installs the trained state (only while empty). rotation may be null (no OPQ).
  void set_trained(const float* centroids, const float* rotation, std::vector<float> codebook);

  void add(const float* x, size_t n, const idx_t* ids, int threads);
  size_t remove(const idx_t* ids, size_t n);
  // Codes of rows x (n x m), as add would store them.
  std::vector<uint8_t> encode(const float* x, size_t n, int threads) const;

  // Queries: nq rows of width qdim, max(pq_dim, cluster_dim) <= qdim <= dim. p.search_dim unused.
  void search(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
              idx_t* ids, double* mflops) const;

  std::vector<idx_t> ids() const;
  // The first of the ids an add without ids assigns (one past the largest id ever added).
  idx_t next_id() const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    return ids_.next_id();
  }
  std::string user_meta() const { return user_meta_.get(); }
  void set_user_meta(std::string meta) { user_meta_.set(std::move(meta)); }
  void save(const std::string& path) const;
  static std::unique_ptr<PQIndex> from_file(IndexFile file);

 private:
  struct List {
    std::vector<uint8_t> codes;   // n x m
    std::vector<uint8_t> blocked; // nbits = 4: the same codes in the fast-scan layout
    std::vector<idx_t> ids;
    std::vector<float> vectors;   // n x dim when store_vectors
  };
  bool ivf() const { return cfg_.nlist > 0; }
  bool fastscan() const { return cfg_.nbits == 4; }
  void assign(const float* x, size_t n, const float* centroids, int threads, int64_t* lists) const;
  // y = (x[:pq_dim] - padded centroid) @ R for n rows (lists may be null: no centroid).
  void targets_rotated(const float* x, size_t n, const float* centroids, const int64_t* lists,
                       bool rotate, float* y) const;
  void install(const float* centroids, const float* rotation, std::vector<float> codebook);

  PQIndexConfig cfg_;
  bool trained_ = false;
  ProductQuantizer pq_;
  std::vector<float> centroids_;          // nlist x cluster_dim
  std::vector<float> rotation_t_;         // R transposed (row j = column j of R); empty: none
  std::vector<float> rotated_centroids_;  // nlist x pq_dim: padded centroids @ R (l2 residuals)
  std::vector<List> lists_;
  IdMap ids_;
  UserMeta user_meta_;
  mutable std::shared_mutex mu_;
};

}  // namespace adanns
