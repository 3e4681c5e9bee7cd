// The search pipeline shared by every index that stores full vectors: scan segments of rows with
// the first d_s coordinates into a top-k' heap per query, optionally re-score those k' candidates
// with d_r coordinates, and write scores, ids and the FLOPs spent (1 multiply-add = 1 FLOP).
#pragma once

#include <cstddef>
#include <vector>

#include "adanns/common.h"
#include "adanns/topk.h"

namespace adanns {

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 1;       // IVF only
  size_t search_dim = 0;   // d_s, resolved by the caller (1..query width)
  size_t rerank_dim = 0;   // d_r; 0: no re-ranking
  size_t rerank_k = 0;     // candidates the scan keeps for re-ranking (>= k when rerank_dim > 0)
  int threads = 0;         // <= 0: all cores
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
                  size_t rerank_dim);
  size_t nq, scan_dim, rerank_dim;
  std::vector<float> scan;    // nq x scan_dim
  std::vector<float> rerank;  // nq x rerank_dim
};

// Scans `seg` for the queries listed in `which` (indices into `pq`), pushing into heaps[which[i]].
// use_gemm selects the GEMM kernel (ip and cosine only; must be decided per call, not per chunk).
struct ScanScratch {
  std::vector<float> gathered, dist, norms;
};
void scan_segment(Metric metric, const PreparedQueries& pq, const size_t* which, size_t nwhich,
                  const Segment& seg, size_t dim, bool use_gemm, std::vector<TopK>& heaps,
                  ScanScratch& scratch);

// Re-ranks (when p.rerank_dim > 0) and writes k results per query of the chunk: scores/ids at row
// offset `row0` of the (nq x k) outputs; adds the re-ranking FLOPs to mflops.
void finish_search(Metric metric, const PreparedQueries& pq, const SearchParams& p,
                   std::vector<TopK>& heaps, float* scores, idx_t* ids, double* mflops);

// Score written in padding slots (no result): the worst possible score for the metric.
float padding_score(Metric metric);

}  // namespace adanns
