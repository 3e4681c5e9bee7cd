#include "adanns/flat.h"

#include <mutex>

#include "adanns/threads.h"

namespace adanns {

namespace {
// From this many queries per call on, inner products use the GEMM kernel (decided per call so the
// thread count cannot change a result).
constexpr size_t kGemmMinQueries = 16;
}  // namespace

FlatIndex::FlatIndex(size_t dim, Metric metric) : dim_(dim), metric_(metric) {
  ADANNS_CHECK(dim >= 1, "dim must be >= 1, got ", dim);
}

size_t FlatIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return rows_.size();
}

size_t FlatIndex::bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return rows_.vector_bytes(dim_) + rows_.size() * sizeof(idx_t);
}

void FlatIndex::add(const float* x, size_t n, const idx_t* ids) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> given;
  if (ids) {
    ids_.check_new(ids, n);
  } else {
    given = ids_.default_ids(n);
    ids = given.data();
  }
  rows_.reserve_more(n, dim_);
  ids_.reserve(ids_.size() + n);
  for (size_t i = 0; i < n; ++i) {
    ids_.set(ids[i], Location{0, rows_.size()});
    ids_.note_added(ids[i]);
    rows_.append(x + i * dim_, ids[i], dim_);
  }
}

size_t FlatIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ids_.check_existing(ids, n);
  for (size_t i = 0; i < n; ++i) {
    Location loc = ids_.at(ids[i]);
    idx_t moved = rows_.swap_remove(loc.offset, dim_);
    if (moved >= 0) ids_.set(moved, loc);
    ids_.erase(ids[i]);
  }
  return n;
}

void FlatIndex::search(const float* q, size_t nq, size_t qdim, const SearchParams& p,
                       float* scores, idx_t* out_ids, double* mflops) const {
  validate_search(p, dim_, qdim);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const bool use_gemm = metric_ != Metric::L2 && nq >= kGemmMinQueries;
  const size_t keep = p.scan_keep();
  const FilterPlan plan = plan_filter(p.filter, rows_.size(), keep, p.brute_force_below);
  // Direct plan: the allowed rows, found by id (ids the index does not hold are skipped).
  std::vector<const float*> direct_rows;
  std::vector<idx_t> direct_ids;
  if (plan == FilterPlan::Direct) {
    for (size_t i = 0; i < p.filter->count(); ++i) {
      idx_t id = p.filter->ids()[i];
      if (!ids_.contains(id)) continue;
      direct_rows.push_back(rows_.row(ids_.at(id).offset, dim_));
      direct_ids.push_back(id);
    }
  }
  Segment all{rows_.vectors(), rows_.ids(), rows_.size()};
  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    size_t nc = e - b;
    PreparedQueries pq(metric_, q + b * qdim, nc, qdim, p.search_dim, p.stages);
    std::vector<TopK> heaps(nc, TopK(keep));
    std::vector<size_t> which(nc);
    for (size_t i = 0; i < nc; ++i) which[i] = i;
    ScanScratch scratch;
    size_t scored = direct_rows.size();
    if (plan == FilterPlan::Direct) {
      scan_rows(metric_, pq, which.data(), nc, direct_rows.data(), direct_ids.data(), direct_rows.size(),
                use_gemm, heaps, scratch);
    } else {
      scored = scan_segment(metric_, pq, which.data(), nc, all, dim_, use_gemm, heaps, scratch,
                            plan == FilterPlan::Scan ? p.filter : nullptr);
    }
    for (size_t i = 0; i < nc; ++i) mflops[b + i] = static_cast<double>(scored) * p.search_dim * 1e-6;
    finish_search(metric_, pq, p, heaps, scores + b * p.k, out_ids + b * p.k, mflops + b);
  });
}

double FlatIndex::estimate_mflops(const SearchParams& p) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  double n = static_cast<double>(rows_.size());
  return n * p.search_dim * 1e-6 + rerank_mflops(p, n);
}

std::vector<idx_t> FlatIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return std::vector<idx_t>(rows_.ids(), rows_.ids() + rows_.size());
}

void FlatIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MetaWriter m;
  m.u64(dim_);
  m.u64(static_cast<uint64_t>(metric_));
  m.u64(rows_.size());
  m.i64(ids_.next_id());
  m.i64s(rows_.ids(), rows_.size());
  m.str(user_meta_.get());
  write_index_file(path, IndexKind::Flat, m.bytes(), {{rows_.vectors(), rows_.vector_bytes(dim_)}});
}

std::unique_ptr<FlatIndex> FlatIndex::from_file(IndexFile f) {
  MetaReader r(f.meta.data(), f.meta.size());
  size_t dim = r.count(1u << 24, "dimension");
  uint64_t metric = r.count(2, "metric");
  ADANNS_CHECK(dim >= 1, "corrupt index file: dimension 0");
  size_t n = r.count(f.data_floats / dim, "row count");
  ADANNS_CHECK(n * dim == f.data_floats, "corrupt index file: ", f.data_floats,
               " stored floats do not match ", n, " rows of dimension ", dim);
  auto index = std::make_unique<FlatIndex>(dim, static_cast<Metric>(metric));
  idx_t next = r.i64();
  std::vector<idx_t> ids(n);
  r.i64s(ids.data(), n);
  index->user_meta_.set(r.str());
  r.expect_end();
  index->ids_.check_loaded(ids.data(), n);
  index->ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    index->ids_.set(ids[i], Location{0, i});
    index->ids_.note_added(ids[i]);
  }
  if (next > index->ids_.next_id()) index->ids_.set_next_id(next);
  if (f.mapping) {
    index->rows_.set_view(f.data, std::move(ids));
    index->mapping_ = f.mapping;
  } else {
    index->rows_.set_owned(std::move(f.owned), std::move(ids));
  }
  return index;
}

}  // namespace adanns
