// The search pipeline shared by every index that stores full vectors: scan segments of rows with
// the first d_s coordinates (or PQ codes) into a top-k' heap per query, then re-rank: a funnel of
// stages, each re-scoring the surviving candidates with the first `dim` coordinates of the stored
// vectors and keeping the best `keep` (plain re-ranking is the one stage (d_r, k)); write scores,
// ids and the FLOPs spent (1 multiply-add = 1 FLOP).
#pragma once

#include <cstddef>
#include <vector>

#include "adanns/common.h"
#include "adanns/filter.h"
#include "adanns/topk.h"

namespace adanns {

// One re-ranking stage: re-score the candidates with `dim` coordinates, keep the best `keep`.
struct RerankStage {
  size_t dim;
  size_t keep;
};

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 1;       // IVF only
  size_t ef = 0;           // graph only: beam width of the walk (raised to the candidates kept)
  size_t search_dim = 0;   // d_s, resolved by the caller (1..query width)
  size_t rerank_k = 0;     // candidates the scan keeps for re-ranking (>= k when stages is not empty)
  std::vector<RerankStage> stages;  // empty: no re-ranking; every keep >= k, dims 1..query width
  int threads = 0;         // <= 0: all cores
  // Filtered search: only these ids may be returned (null: no filter); see filter.h for the plan.
  AllowedIds* filter = nullptr;
  double brute_force_below = kDefaultBruteForceBelow;

  // Plain re-ranking: d_r coordinates for the rerank_k candidates (d_r = 0: none).
  void set_rerank(size_t rerank_dim, size_t rerank_k_) {
    stages.clear();
    rerank_k = rerank_k_;
    if (rerank_dim) stages.push_back({rerank_dim, k});
  }
  // Heap size of the scan: rerank_k when re-ranking, else k.
  size_t scan_keep() const { return stages.empty() ? k : rerank_k; }
};

// Checks params against an index of dimension `dim` and queries of width `qdim`.
void validate_search(const SearchParams& p, size_t dim, size_t qdim);

// A run of stored rows: `n` rows of stride `dim`.
struct Segment {
  const float* vectors;
  const idx_t* ids;
  size_t n;
};

// Query vectors of one worker's chunk, cut to the lengths the stages use (cosine: renormalised).
struct PreparedQueries {
  PreparedQueries(Metric metric, const float* q, size_t nq, size_t q_stride, size_t scan_dim,
                  const std::vector<RerankStage>& stages = {});
  size_t nq, scan_dim;
  std::vector<float> scan;                 // nq x scan_dim
  std::vector<std::vector<float>> rerank;  // per stage: nq x stage dim
};

// Scans `seg` for the queries listed in `which` (indices into `pq`), pushing into heaps[which[i]].
// use_gemm selects the GEMM kernel (ip and cosine only; must be decided per call, not per chunk).
// With `filter` (its bitset built), rows whose id it does not allow are skipped before any
// distance work. Returns the rows scored (for the FLOP count).
struct ScanScratch {
  std::vector<float> gathered, dist, norms, rows;
  std::vector<idx_t> ids;
  std::vector<const float*> ptrs;
};
size_t scan_segment(Metric metric, const PreparedQueries& pq, const size_t* which, size_t nwhich,
                    const Segment& seg, size_t dim, bool use_gemm, std::vector<TopK>& heaps,
                    ScanScratch& scratch, const AllowedIds* filter = nullptr);

// Scores `n` scattered rows (pointers to stored vectors, with their ids) for the queries in
// `which`: the direct plan of a selective filter.
void scan_rows(Metric metric, const PreparedQueries& pq, const size_t* which, size_t nwhich,
               const float* const* rows, const idx_t* ids, size_t n, bool use_gemm,
               std::vector<TopK>& heaps, ScanScratch& scratch);

// Runs the re-ranking stages of p (if any) and writes k results per query of the chunk into the
// (nq x k) outputs; adds the re-ranking FLOPs (candidates x stage dim, per stage) to mflops.
void finish_search(Metric metric, const PreparedQueries& pq, const SearchParams& p,
                   std::vector<TopK>& heaps, float* scores, idx_t* ids, double* mflops);

// Expected re-ranking MFLOPs per query when the scan yields `candidates` rows.
double rerank_mflops(const SearchParams& p, double candidates);

// Score written in padding slots (no result): the worst possible score for the metric.
float padding_score(Metric metric);

}  // namespace adanns
