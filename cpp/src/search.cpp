#include "adanns/search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adanns/distances.h"

namespace adanns {

void validate_search(const SearchParams& p, size_t dim, size_t qdim) {
  ADANNS_CHECK(qdim >= 1 && qdim <= dim, "query dimension ", qdim, " does not fit index dimension ",
               dim, " (queries may be prefixes of length 1..", dim, ")");
  ADANNS_CHECK(p.k >= 1, "k must be >= 1, got ", p.k);
  ADANNS_CHECK(p.nprobe >= 1, "nprobe must be >= 1, got ", p.nprobe);
  ADANNS_CHECK(p.search_dim >= 1 && p.search_dim <= qdim, "search_dim must be in 1..", qdim,
               " (the query length), got ", p.search_dim);
  for (size_t s = 0; s < p.stages.size(); ++s) {
    const RerankStage& st = p.stages[s];
    ADANNS_CHECK(st.dim >= 1 && st.dim <= qdim, "re-ranking dimension of stage ", s, " must be in 1..",
                 qdim, " (the query length), got ", st.dim);
    ADANNS_CHECK(st.keep >= p.k, "stage ", s, " keeps ", st.keep, " candidates, fewer than k (", p.k, ")");
  }
  ADANNS_CHECK(p.stages.empty() || p.rerank_k >= p.k, "rerank_k (", p.rerank_k, ") must be >= k (",
               p.k, ")");
}

double rerank_mflops(const SearchParams& p, double candidates) {
  double total = 0, alive = std::min(candidates, static_cast<double>(p.rerank_k));
  for (const RerankStage& st : p.stages) {
    total += alive * st.dim;
    alive = std::min(alive, static_cast<double>(st.keep));
  }
  return total * 1e-6;
}

float padding_score(Metric metric) {
  float inf = std::numeric_limits<float>::infinity();
  return larger_is_better(metric) ? -inf : inf;
}

namespace {

void copy_prefix(Metric metric, const float* src, size_t d, float* dst) {
  std::copy_n(src, d, dst);
  if (metric != Metric::Cosine) return;
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += static_cast<double>(dst[j]) * dst[j];
  if (s > 0) {
    float inv = static_cast<float>(1.0 / std::sqrt(s));
    for (size_t j = 0; j < d; ++j) dst[j] *= inv;
  }
}

// Distance (smaller is better) from a kernel value; cosine divides by the row's prefix norm.
inline float to_dist(Metric metric, float v, float row_norm_sq) {
  switch (metric) {
    case Metric::IP: return -v;
    case Metric::L2: return v;
    case Metric::Cosine: return row_norm_sq > 0 ? -v / std::sqrt(row_norm_sq) : -0.f;
  }
  return v;
}

constexpr size_t kRowBlock = 256;      // rows scored per kernel call: stays in L2 across the queries
constexpr size_t kPrefetchAhead = 8;  // candidates whose rows are requested before they are read

inline void prefetch_prefix(const float* row, size_t d) {
  const char* p = reinterpret_cast<const char*>(row);
  for (size_t off = 0; off < d * sizeof(float); off += 64) __builtin_prefetch(p + off, 0, 3);
}

// Re-ranking gathers long scattered rows (24 lines for d 384): requesting 8 of them at once into
// L1 overflows the fill buffers and stalls on the prefetches. Rows are requested into L2 a window
// ahead that keeps about kRerankLines lines in flight.
constexpr size_t kRerankLines = 32;
inline void prefetch_row_l2(const float* row, size_t d) {
  const char* p = reinterpret_cast<const char*>(row);
  for (size_t off = 0; off < d * sizeof(float); off += 64) __builtin_prefetch(p + off, 0, 2);
}
inline size_t rerank_ahead(size_t d) { return std::max<size_t>(1, kRerankLines / ((d * sizeof(float) + 63) / 64)); }

}  // namespace

PreparedQueries::PreparedQueries(Metric metric, const float* q, size_t n, size_t q_stride,
                                 size_t sd, const std::vector<RerankStage>& stages)
    : nq(n), scan_dim(sd), scan(n * sd), rerank(stages.size()) {
  for (size_t s = 0; s < stages.size(); ++s) rerank[s].resize(n * stages[s].dim);
  for (size_t i = 0; i < n; ++i) {
    copy_prefix(metric, q + i * q_stride, sd, scan.data() + i * sd);
    for (size_t s = 0; s < stages.size(); ++s)
      copy_prefix(metric, q + i * q_stride, stages[s].dim, rerank[s].data() + i * stages[s].dim);
  }
}

namespace {

// Copies the chunk's query prefixes together, once per scanned segment.
void gather_queries(const PreparedQueries& pq, const size_t* which, size_t nwhich, ScanScratch& s) {
  const size_t ds = pq.scan_dim;
  s.gathered.resize(nwhich * ds);
  for (size_t i = 0; i < nwhich; ++i)
    std::copy_n(pq.scan.data() + which[i] * ds, ds, s.gathered.data() + i * ds);
  s.dist.resize(nwhich * kRowBlock);
  s.norms.assign(kRowBlock, 0.f);
}

// Scores `rows` rows at x (stride `stride`) for the gathered queries and offers them to the heaps;
// row j's id is ids[j] and its stored vector is ptrs ? ptrs[j] : x + j * stride.
void score_block(Metric metric, size_t ds, const size_t* which, size_t nwhich, const float* x, size_t rows,
                 size_t stride, const idx_t* ids, const float* const* ptrs, bool use_gemm,
                 std::vector<TopK>& heaps, ScanScratch& s) {
  float* out = s.dist.data();
  if (metric == Metric::L2) {
    block_l2(s.gathered.data(), nwhich, ds, x, rows, stride, ds, out, rows);
  } else if (use_gemm) {
    gemm_ip(s.gathered.data(), nwhich, ds, x, rows, stride, ds, out, rows);
    if (metric == Metric::Cosine) norms_sq(x, rows, stride, ds, s.norms.data());
  } else if (metric == Metric::Cosine) {
    block_ip_norm(s.gathered.data(), nwhich, ds, x, rows, stride, ds, out, rows, s.norms.data());
  } else {
    block_ip(s.gathered.data(), nwhich, ds, x, rows, stride, ds, out, rows);
  }
  for (size_t i = 0; i < nwhich; ++i) {
    TopK& heap = heaps[which[i]];
    const float* row = out + i * rows;
    for (size_t j = 0; j < rows; ++j) {
      float dd = to_dist(metric, row[j], s.norms[j]);
      if (dd <= heap.worst().dist) heap.push(dd, ids[j], ptrs ? ptrs[j] : x + j * stride);
    }
  }
}

// Packs the first ds coordinates of the listed rows into s.rows (stride ds).
void pack_rows(const float* const* ptrs, size_t n, size_t ds, ScanScratch& s) {
  s.rows.resize(n * ds);
  for (size_t j = 0; j < n; ++j) {
    if (j + kPrefetchAhead < n) prefetch_prefix(ptrs[j + kPrefetchAhead], ds);
    std::copy_n(ptrs[j], ds, s.rows.data() + j * ds);
  }
}

}  // namespace

size_t scan_segment(Metric metric, const PreparedQueries& pq, const size_t* which, size_t nwhich,
                    const Segment& seg, size_t dim, bool use_gemm, std::vector<TopK>& heaps,
                    ScanScratch& s, const AllowedIds* filter) {
  if (nwhich == 0 || seg.n == 0) return 0;
  const size_t ds = pq.scan_dim;
  gather_queries(pq, which, nwhich, s);
  size_t scored = 0;
  for (size_t r0 = 0; r0 < seg.n; r0 += kRowBlock) {
    size_t rows = std::min(kRowBlock, seg.n - r0);
    const float* x = seg.vectors + r0 * dim;
    const idx_t* ids = seg.ids + r0;
    if (!filter) {
      score_block(metric, ds, which, nwhich, x, rows, dim, ids, nullptr, use_gemm, heaps, s);
      scored += rows;
      continue;
    }
    // The bit test comes first: a disallowed row costs one bit lookup and is never read.
    s.ids.clear();
    s.ptrs.clear();
    for (size_t j = 0; j < rows; ++j) {
      if (!filter->allows(ids[j])) continue;
      s.ids.push_back(ids[j]);
      s.ptrs.push_back(x + j * dim);
    }
    const size_t kept = s.ids.size();
    if (kept == rows) {
      score_block(metric, ds, which, nwhich, x, rows, dim, ids, nullptr, use_gemm, heaps, s);
    } else if (kept) {
      pack_rows(s.ptrs.data(), kept, ds, s);
      score_block(metric, ds, which, nwhich, s.rows.data(), kept, ds, s.ids.data(), s.ptrs.data(), use_gemm,
                  heaps, s);
    }
    scored += kept;
  }
  return scored;
}

void scan_rows(Metric metric, const PreparedQueries& pq, const size_t* which, size_t nwhich,
               const float* const* rows, const idx_t* ids, size_t n, bool use_gemm,
               std::vector<TopK>& heaps, ScanScratch& s) {
  if (nwhich == 0 || n == 0) return;
  const size_t ds = pq.scan_dim;
  gather_queries(pq, which, nwhich, s);
  for (size_t r0 = 0; r0 < n; r0 += kRowBlock) {
    size_t cnt = std::min(kRowBlock, n - r0);
    pack_rows(rows + r0, cnt, ds, s);
    score_block(metric, ds, which, nwhich, s.rows.data(), cnt, ds, ids + r0, rows + r0, use_gemm, heaps, s);
  }
}

void finish_search(Metric metric, const PreparedQueries& pq, const SearchParams& p,
                   std::vector<TopK>& heaps, float* scores, idx_t* ids, double* mflops) {
  const float pad = padding_score(metric);
  std::vector<float> gathered, values, norms;
  std::vector<Candidate> cand;
  for (size_t i = 0; i < pq.nq; ++i) {
    // A stage only needs the candidate set, not its order: sort once, at the end.
    cand = heaps[i].entries();
    for (size_t s = 0; s < p.stages.size(); ++s) {
      // Copy the candidates' d_r prefixes together so one kernel call scores them all. The rows
      // are scattered in memory: prefetching a few candidates ahead overlaps their cache misses
      // instead of paying them one after another.
      const size_t dr = p.stages[s].dim;
      const float* rq = pq.rerank[s].data() + i * dr;
      const size_t nc = cand.size();
      gathered.resize(nc * dr);
      values.resize(nc);
      norms.assign(nc, 0.f);
      const size_t ahead = rerank_ahead(dr);
      for (size_t c = 0; c < std::min(nc, ahead); ++c) prefetch_row_l2(cand[c].row, dr);
      for (size_t c = 0; c < nc; ++c) {
        if (c + ahead < nc) prefetch_row_l2(cand[c + ahead].row, dr);
        std::copy_n(cand[c].row, dr, gathered.data() + c * dr);
      }
      if (metric == Metric::L2)
        block_l2(rq, 1, dr, gathered.data(), nc, dr, dr, values.data(), nc);
      else if (metric == Metric::Cosine)
        block_ip_norm(rq, 1, dr, gathered.data(), nc, dr, dr, values.data(), nc, norms.data());
      else
        block_ip(rq, 1, dr, gathered.data(), nc, dr, dr, values.data(), nc);
      TopK best(p.stages[s].keep);
      for (size_t c = 0; c < nc; ++c) best.push(to_dist(metric, values[c], norms[c]), cand[c].id, cand[c].row);
      mflops[i] += static_cast<double>(nc) * dr * 1e-6;
      cand = best.entries();
    }
    std::sort(cand.begin(), cand.end(), better);
    for (size_t j = 0; j < p.k; ++j) {
      bool have = j < cand.size();
      float dist = have ? cand[j].dist : 0.f;
      scores[i * p.k + j] = have ? (larger_is_better(metric) ? -dist : dist) : pad;
      ids[i * p.k + j] = have ? cand[j].id : -1;
    }
  }
}

}  // namespace adanns
