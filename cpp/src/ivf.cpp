#include "adanns/ivf.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "adanns/distances.h"
#include "adanns/kmeans.h"
#include "adanns/threads.h"

namespace adanns {

namespace {

// Copies the first d coordinates of n rows, renormalised (cosine works on unit prefixes).
std::vector<float> unit_prefixes(const float* x, size_t n, size_t stride, size_t d) {
  std::vector<float> out(n * d);
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * stride;
    float* o = out.data() + i * d;
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += static_cast<double>(row[j]) * row[j];
    float inv = s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.f;
    for (size_t j = 0; j < d; ++j) o[j] = row[j] * inv;
  }
  return out;
}

}  // namespace

IVFIndex::IVFIndex(size_t dim, size_t nlist, Metric metric, size_t cluster_dim, uint64_t seed,
                   size_t niter)
    : dim_(dim), nlist_(nlist), cluster_dim_(cluster_dim), metric_(metric), seed_(seed), niter_(niter) {
  ADANNS_CHECK(dim >= 1, "dim must be >= 1, got ", dim);
  ADANNS_CHECK(nlist >= 1, "nlist must be >= 1, got ", nlist);
  ADANNS_CHECK(cluster_dim >= 1 && cluster_dim <= dim, "cluster_dim must be in 1..", dim, ", got ",
               cluster_dim);
  lists_.resize(nlist);
}

bool IVFIndex::is_trained() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return trained_;
}

size_t IVFIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return ids_.size();
}

size_t IVFIndex::bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  size_t b = centroids_.size() * sizeof(float) * 2;
  for (const RowStore& l : lists_) b += l.vector_bytes(dim_) + l.size() * sizeof(idx_t);
  return b;
}

std::vector<int64_t> IVFIndex::list_sizes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<int64_t> s(nlist_);
  for (size_t l = 0; l < nlist_; ++l) s[l] = static_cast<int64_t>(lists_[l].size());
  return s;
}

std::vector<float> IVFIndex::centroids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return centroids_;
}

void IVFIndex::train(const float* x, size_t n, int threads) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ADANNS_CHECK(ids_.size() == 0, "cannot retrain an IVF index that holds ", ids_.size(),
               " vectors; remove them or build a new index");
  ADANNS_CHECK(n >= nlist_, "training needs at least nlist = ", nlist_, " vectors, got ", n);
  KMeansParams kp;
  kp.k = nlist_;
  kp.niter = niter_;
  kp.seed = seed_;
  kp.threads = threads;
  kp.assign_by_ip = metric_ == Metric::IP;
  KMeansResult km;
  if (metric_ == Metric::Cosine) {
    std::vector<float> unit = unit_prefixes(x, n, dim_, cluster_dim_);
    km = kmeans(unit.data(), n, cluster_dim_, cluster_dim_, kp);
  } else {
    km = kmeans(x, n, dim_, cluster_dim_, kp);
  }
  centroids_ = std::move(km.centroids);
  set_centroids_derived();
  trained_ = true;
}

void IVFIndex::set_centroids_derived() {
  centroid_norms_.resize(nlist_);
  norms_sq(centroids_.data(), nlist_, cluster_dim_, cluster_dim_, centroid_norms_.data());
  packed_centroids_ = PackedRows(centroids_.data(), nlist_, cluster_dim_, cluster_dim_);
}

void IVFIndex::assign_lists(const float* x, size_t n, int threads, int64_t* lists) const {
  const size_t dc = cluster_dim_;
  if (metric_ == Metric::IP) {
    assign_max_ip(x, n, dim_, centroids_.data(), nlist_, dc, threads, lists);
  } else if (metric_ == Metric::L2) {
    assign_nearest_l2(x, n, dim_, centroids_.data(), nlist_, dc, threads, lists, nullptr);
  } else {
    std::vector<float> unit = unit_prefixes(x, n, dim_, dc);
    assign_nearest_l2(unit.data(), n, dc, centroids_.data(), nlist_, dc, threads, lists, nullptr);
  }
}

void IVFIndex::add(const float* x, size_t n, const idx_t* ids, int threads) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!trained_) raise<StateError>("IVF index is not trained: call train() before add()");
  std::vector<idx_t> given;
  if (ids) {
    ids_.check_new(ids, n);
  } else {
    given = ids_.default_ids(n);
    ids = given.data();
  }
  std::vector<int64_t> assign(n);
  assign_lists(x, n, threads, assign.data());
  std::vector<size_t> count(nlist_, 0);
  for (size_t i = 0; i < n; ++i) count[assign[i]]++;
  for (size_t l = 0; l < nlist_; ++l)
    if (count[l]) lists_[l].reserve_more(count[l], dim_);
  ids_.reserve(ids_.size() + n);
  for (size_t i = 0; i < n; ++i) {
    RowStore& list = lists_[assign[i]];
    ids_.set(ids[i], Location{static_cast<uint64_t>(assign[i]), list.size()});
    ids_.note_added(ids[i]);
    list.append(x + i * dim_, ids[i], dim_);
  }
}

size_t IVFIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ids_.check_existing(ids, n);
  for (size_t i = 0; i < n; ++i) {
    Location loc = ids_.at(ids[i]);
    idx_t moved = lists_[loc.list].swap_remove(loc.offset, dim_);
    if (moved >= 0) ids_.set(moved, loc);
    ids_.erase(ids[i]);
  }
  return n;
}

void IVFIndex::coarse_distances(const float* q, size_t nq, size_t dcu, float* out) const {
  // GEMM on centroids packed at training time: its per-pair sums do not depend on how queries are
  // blocked, so the probed lists cannot depend on the thread count.
  if (packed_centroids_.level() == active_simd_level()) {
    packed_centroids_.gemm(q, nq, dcu, dcu, out, nlist_);
  } else {
    PackedRows(centroids_.data(), nlist_, cluster_dim_, cluster_dim_).gemm(q, nq, dcu, dcu, out, nlist_);
  }
  if (metric_ == Metric::IP) {
    for (size_t i = 0; i < nq * nlist_; ++i) out[i] = -out[i];
    return;
  }
  std::vector<float> prefix_norms;
  const float* cn = centroid_norms_.data();
  if (dcu != cluster_dim_) {
    prefix_norms.resize(nlist_);
    norms_sq(centroids_.data(), nlist_, cluster_dim_, dcu, prefix_norms.data());
    cn = prefix_norms.data();
  }
  for (size_t i = 0; i < nq; ++i)
    for (size_t c = 0; c < nlist_; ++c) out[i * nlist_ + c] = cn[c] - 2.f * out[i * nlist_ + c];
}

void IVFIndex::search(const float* q, size_t nq, size_t qdim, const SearchParams& p,
                      float* scores, idx_t* out_ids, double* mflops) const {
  validate_search(p, dim_, qdim);
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!trained_) raise<StateError>("IVF index is not trained: call train() before search()");
  const size_t keep = p.scan_keep();
  const FilterPlan plan = plan_filter(p.filter, ids_.size(), keep, p.brute_force_below);
  if (plan == FilterPlan::Direct) return search_allowed_rows(q, nq, qdim, p, scores, out_ids, mflops);
  const AllowedIds* filter = plan == FilterPlan::Scan ? p.filter : nullptr;
  const size_t nprobe = std::min(p.nprobe, nlist_);
  const size_t dcu = std::min(cluster_dim_, qdim);  // a short query scores centroid prefixes
  // A filtered scan may probe past nprobe, in centroid order: keep every list, the nprobe nearest
  // first; the rest is sorted only for a query that needs more lists.
  const size_t ranked = filter ? nlist_ : nprobe;
  // 1. The nprobe nearest lists of every query (ties: smaller list number).
  std::vector<uint32_t> probes(nq * ranked);
  std::vector<float> coarse_all(filter ? nq * nlist_ : 0);
  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    const size_t nc = e - b;
    PreparedQueries coarse(metric_, q + b * qdim, nc, qdim, dcu);
    std::vector<float> cd(nc * nlist_);
    coarse_distances(coarse.scan.data(), nc, dcu, cd.data());
    std::vector<uint32_t> order(nlist_);
    for (size_t i = 0; i < nc; ++i) {
      const float* row = cd.data() + i * nlist_;
      std::iota(order.begin(), order.end(), 0u);
      auto closer = [row](uint32_t a, uint32_t c) { return row[a] < row[c] || (row[a] == row[c] && a < c); };
      // The probed set is all that matters (lists are visited in list order): a selection suffices.
      if (nprobe < nlist_) std::nth_element(order.begin(), order.begin() + (nprobe - 1), order.end(), closer);
      std::copy_n(order.begin(), ranked, probes.begin() + (b + i) * ranked);
    }
    if (filter) std::copy(cd.begin(), cd.end(), coarse_all.begin() + b * nlist_);
  });

  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    const size_t nc = e - b;
    PreparedQueries pq(metric_, q + b * qdim, nc, qdim, p.search_dim, p.stages);
    const uint32_t* my_probes = probes.data() + b * ranked;

    // 2. List-major scan: every list is read once for all the chunk's queries that probe it.
    std::vector<size_t> start(nlist_ + 1, 0), who(nc * nprobe);
    for (size_t i = 0; i < nc; ++i)
      for (size_t t = 0; t < nprobe; ++t) start[my_probes[i * ranked + t] + 1]++;
    for (size_t l = 0; l < nlist_; ++l) start[l + 1] += start[l];
    {
      std::vector<size_t> fill(start.begin(), start.end() - 1);
      for (size_t i = 0; i < nc; ++i)
        for (size_t t = 0; t < nprobe; ++t) who[fill[my_probes[i * ranked + t]]++] = i;
    }
    std::vector<TopK> heaps(nc, TopK(keep));
    std::vector<size_t> scored(nc, 0);  // rows scored per query (with a filter: allowed rows only)
    ScanScratch scratch;
    // The sweep prefetches rows ahead within a list; the first rows of the next probed list are
    // requested while this one is scanned, so a list's start is not a cold miss.
    auto warm_next = [&](size_t from) {
      size_t n = from;
      while (n < nlist_ && start[n] == start[n + 1]) ++n;
      if (n == nlist_) return;
      const RowStore& next = lists_[n];
      const size_t rows = std::min<size_t>(next.size(), 8);
      for (size_t r = 0; r < rows; ++r) {
        const char* row = reinterpret_cast<const char*>(next.row(r, dim_));
        for (size_t off = 0; off < p.search_dim * sizeof(float); off += 64) __builtin_prefetch(row + off, 0, 3);
      }
    };
    for (size_t l = 0; l < nlist_; ++l) {
      if (start[l] == start[l + 1]) continue;
      warm_next(l + 1);
      const RowStore& list = lists_[l];
      Segment seg{list.vectors(), list.ids(), list.size()};
      // Dot-layout kernel: measured faster here than GEMM, whose packing would be redone per list.
      size_t n = scan_segment(metric_, pq, who.data() + start[l], start[l + 1] - start[l], seg, dim_, false,
                              heaps, scratch, filter);
      for (size_t t = start[l]; t < start[l + 1]; ++t) scored[who[t]] += n;
    }
    // 3. A filter that left a query fewer than `keep` candidates: probe the next lists, nearest
    // first, until it has them (or every list is scanned), so that k matching rows are found.
    for (size_t i = 0; filter && i < nc; ++i) {
      if (scored[i] >= keep || nprobe == nlist_) continue;
      uint32_t* rest = probes.data() + (b + i) * ranked + nprobe;
      const float* row = coarse_all.data() + (b + i) * nlist_;
      std::sort(rest, rest + (nlist_ - nprobe),
                [row](uint32_t a, uint32_t c) { return row[a] < row[c] || (row[a] == row[c] && a < c); });
      for (size_t t = nprobe; t < nlist_ && scored[i] < keep; ++t) {
        const RowStore& list = lists_[my_probes[i * ranked + t]];
        Segment seg{list.vectors(), list.ids(), list.size()};
        scored[i] += scan_segment(metric_, pq, &i, 1, seg, dim_, false, heaps, scratch, filter);
      }
    }

    // 4. Cost: centroid scoring plus d_s per scored row; finish_search adds the re-ranking.
    for (size_t i = 0; i < nc; ++i)
      mflops[b + i] = (static_cast<double>(nlist_) * dcu + static_cast<double>(scored[i]) * p.search_dim) * 1e-6;
    finish_search(metric_, pq, p, heaps, scores + b * p.k, out_ids + b * p.k, mflops + b);
  });
}

void IVFIndex::search_allowed_rows(const float* q, size_t nq, size_t qdim, const SearchParams& p,
                                   float* scores, idx_t* out_ids, double* mflops) const {
  std::vector<const float*> rows;
  std::vector<idx_t> ids;
  rows.reserve(p.filter->count());
  ids.reserve(p.filter->count());
  for (size_t i = 0; i < p.filter->count(); ++i) {
    idx_t id = p.filter->ids()[i];
    if (!ids_.contains(id)) continue;  // ids the index does not hold match nothing
    const Location& loc = ids_.at(id);
    rows.push_back(lists_[loc.list].row(loc.offset, dim_));
    ids.push_back(id);
  }
  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    const size_t nc = e - b;
    PreparedQueries pq(metric_, q + b * qdim, nc, qdim, p.search_dim, p.stages);
    std::vector<TopK> heaps(nc, TopK(p.scan_keep()));
    std::vector<size_t> which(nc);
    std::iota(which.begin(), which.end(), size_t{0});
    ScanScratch scratch;
    scan_rows(metric_, pq, which.data(), nc, rows.data(), ids.data(), rows.size(), false, heaps, scratch);
    for (size_t i = 0; i < nc; ++i) mflops[b + i] = static_cast<double>(rows.size()) * p.search_dim * 1e-6;
    finish_search(metric_, pq, p, heaps, scores + b * p.k, out_ids + b * p.k, mflops + b);
  });
}

double IVFIndex::estimate_mflops(const SearchParams& p, size_t qdim) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t nprobe = std::min(p.nprobe, nlist_);
  const size_t dcu = std::min(cluster_dim_, qdim);
  double total = 0, sq = 0;
  for (const RowStore& l : lists_) {
    double s = static_cast<double>(l.size());
    total += s;
    sq += s * s;
  }
  double rows = total > 0 ? std::min(total, static_cast<double>(nprobe) * sq / total) : 0.0;
  if (nprobe == nlist_) rows = total;
  return (static_cast<double>(nlist_) * dcu + rows * p.search_dim) * 1e-6 + rerank_mflops(p, rows);
}

std::vector<idx_t> IVFIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> out;
  out.reserve(ids_.size());
  for (const RowStore& l : lists_) out.insert(out.end(), l.ids(), l.ids() + l.size());
  return out;
}

void IVFIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MetaWriter m;
  m.u64(dim_);
  m.u64(nlist_);
  m.u64(static_cast<uint64_t>(metric_));
  m.u64(cluster_dim_);
  m.u64(seed_);
  m.u64(niter_);
  m.u64(trained_ ? 1 : 0);
  m.i64(ids_.next_id());
  if (trained_) m.f32s(centroids_.data(), centroids_.size());
  std::vector<DataChunk> data;
  for (const RowStore& l : lists_) {
    m.u64(l.size());
    m.i64s(l.ids(), l.size());
    if (l.size()) data.push_back({l.vectors(), l.vector_bytes(dim_)});
  }
  m.str(user_meta_.get());
  write_index_file(path, IndexKind::IVF, m.bytes(), data);
}

std::unique_ptr<IVFIndex> IVFIndex::from_file(IndexFile f) {
  MetaReader r(f.meta.data(), f.meta.size());
  size_t dim = r.count(1u << 24, "dimension");
  size_t nlist = r.count(f.meta.size() / 8, "nlist");  // each list has its u64 size in the metadata
  uint64_t metric = r.count(2, "metric");
  size_t dc = r.count(dim, "cluster_dim");
  uint64_t seed = r.u64();
  size_t niter = r.count(1u << 30, "niter");
  bool trained = r.count(1, "trained flag") == 1;
  ADANNS_CHECK(dim >= 1 && nlist >= 1 && dc >= 1, "corrupt index file: zero-sized parameters");
  auto index = std::make_unique<IVFIndex>(dim, nlist, static_cast<Metric>(metric), dc, seed, niter);
  idx_t next = r.i64();
  if (trained) {
    ADANNS_CHECK(nlist * dc <= f.meta.size() / sizeof(float), "corrupt index file: centroids exceed metadata");
    index->centroids_.resize(nlist * dc);
    r.f32s(index->centroids_.data(), nlist * dc);
    index->set_centroids_derived();
    index->trained_ = true;
  }
  size_t offset = 0;  // in floats, into the data section
  for (size_t l = 0; l < nlist; ++l) {
    size_t n = r.count((f.data_floats - offset) / dim, "list size");
    std::vector<idx_t> ids(n);
    r.i64s(ids.data(), n);
    index->ids_.check_loaded(ids.data(), n);
    for (size_t i = 0; i < n; ++i) {
      index->ids_.set(ids[i], Location{l, i});
      index->ids_.note_added(ids[i]);
    }
    const float* v = f.data + offset;
    if (f.mapping) {
      index->lists_[l].set_view(v, std::move(ids));
    } else {
      index->lists_[l].set_owned(AlignedVector<float>(v, v + n * dim), std::move(ids));
    }
    offset += n * dim;
  }
  index->user_meta_.set(r.str());
  r.expect_end();
  ADANNS_CHECK(offset == f.data_floats, "corrupt index file: lists hold ", offset, " floats, data has ",
               f.data_floats);
  ADANNS_CHECK(trained || index->ids_.size() == 0, "corrupt index file: untrained index with vectors");
  if (next > index->ids_.next_id()) index->ids_.set_next_id(next);
  index->mapping_ = f.mapping;
  return index;
}

}  // namespace adanns
