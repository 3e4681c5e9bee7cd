#include "adanns/pq_index.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <numeric>

#include "adanns/adc.h"
#include "adanns/distances.h"
#include "adanns/fastscan.h"
#include "adanns/kmeans.h"
#include "adanns/threads.h"
#include "adanns/topk.h"

namespace adanns {

namespace {
constexpr size_t kAddBatch = 16384;       // rows encoded at a time (bounds the temporaries)
constexpr size_t kLutGroupBytes = 512 << 10;  // exhaustive scan: tables of a query group stay in L2
constexpr size_t kCodeBlockBytes = 256 << 10;  // ... and so does the block of codes they scan

// The head of a list's scan data: its codes (blocked for fast-scan) and ids, up to kPrefetchBytes each.
constexpr size_t kPrefetchBytes = 8 << 10;
template <class L>
void prefetch_list(const L& l) {
  auto fetch = [](const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t off = 0; off < std::min(bytes, kPrefetchBytes); off += 64) __builtin_prefetch(c + off, 0, 3);
  };
  if (l.blocked.empty()) fetch(l.codes.data(), l.codes.size());
  else fetch(l.blocked.data(), l.blocked.size());
  fetch(l.ids.data(), l.ids.size() * sizeof(l.ids[0]));
}
}  // namespace

PQIndex::PQIndex(const PQIndexConfig& c) : cfg_(c) {
  ADANNS_CHECK(c.dim >= 1, "dim must be >= 1, got ", c.dim);
  ADANNS_CHECK(c.pq_dim >= 1 && c.pq_dim <= c.dim, "pq_dim must be in 1..", c.dim, ", got ", c.pq_dim);
  ADANNS_CHECK(c.metric == Metric::IP || c.metric == Metric::L2,
               "PQ indices support metrics ip and l2, got ", metric_name(c.metric));
  if (c.nlist > 0)
    ADANNS_CHECK(c.cluster_dim >= 1 && c.cluster_dim <= c.dim, "cluster_dim must be in 1..", c.dim,
                 ", got ", c.cluster_dim);
  else
    cfg_.cluster_dim = 0, cfg_.residual = false;
  pq_ = ProductQuantizer(c.pq_dim, c.m, c.nbits);  // checks m and nbits
  lists_.resize(std::max<size_t>(c.nlist, 1));
}

bool PQIndex::is_trained() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return trained_;
}

bool PQIndex::has_rotation() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return !rotation_t_.empty();
}

size_t PQIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return ids_.size();
}

size_t PQIndex::bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  size_t b = (centroids_.size() + rotation_t_.size() + rotated_centroids_.size() + pq_.centroids().size()) *
             sizeof(float);
  for (const List& l : lists_)
    b += l.codes.size() + l.blocked.size() + l.ids.size() * sizeof(idx_t) + l.vectors.size() * sizeof(float);
  return b;
}

std::vector<int64_t> PQIndex::list_sizes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<int64_t> s;
  for (const List& l : lists_) s.push_back(static_cast<int64_t>(l.ids.size()));
  return s;
}

std::vector<float> PQIndex::centroids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return centroids_;
}

std::vector<float> PQIndex::rotation() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t d = cfg_.pq_dim;
  std::vector<float> r(rotation_t_.size());
  for (size_t i = 0; i < r.size(); ++i) r[(i % d) * d + i / d] = rotation_t_[i];
  return r;
}

std::vector<float> PQIndex::codebook() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return pq_.centroids();
}

std::vector<float> PQIndex::coarse_kmeans(const float* x, size_t n, int threads) const {
  ADANNS_CHECK(ivf(), "an exhaustive PQ index has no coarse quantizer");
  ADANNS_CHECK(n >= cfg_.nlist, "training needs at least nlist = ", cfg_.nlist, " vectors, got ", n);
  KMeansParams kp;
  kp.k = cfg_.nlist;
  kp.niter = cfg_.niter;
  kp.seed = cfg_.seed;
  kp.threads = threads;
  kp.assign_by_ip = cfg_.metric == Metric::IP;  // lists are probed by inner product too
  return kmeans(x, n, cfg_.dim, cfg_.cluster_dim, kp).centroids;
}

void PQIndex::assign(const float* x, size_t n, const float* centroids, int threads, int64_t* lists) const {
  if (cfg_.metric == Metric::IP)
    assign_max_ip(x, n, cfg_.dim, centroids, cfg_.nlist, cfg_.cluster_dim, threads, lists);
  else
    assign_nearest_l2(x, n, cfg_.dim, centroids, cfg_.nlist, cfg_.cluster_dim, threads, lists, nullptr);
}

void PQIndex::targets_rotated(const float* x, size_t n, const float* centroids, const int64_t* lists,
                              bool rotate, float* y) const {
  const size_t d = cfg_.pq_dim, dc = std::min(cfg_.cluster_dim, d);
  std::vector<float> tmp(rotate ? n * d : 0);
  float* t = rotate ? tmp.data() : y;
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(x + i * cfg_.dim, d, t + i * d);
    if (lists) {
      const float* c = centroids + lists[i] * cfg_.cluster_dim;
      for (size_t j = 0; j < dc; ++j) t[i * d + j] -= c[j];
    }
  }
  if (rotate) gemm_ip(t, n, d, rotation_t_.data(), d, d, d, y, d);
}

std::vector<float> PQIndex::training_targets(const float* x, size_t n, const float* centroids,
                                             int threads) const {
  std::vector<float> y(n * cfg_.pq_dim);
  std::vector<int64_t> lists;
  if (cfg_.residual) {
    lists.resize(n);
    assign(x, n, centroids, threads, lists.data());
  }
  targets_rotated(x, n, centroids, cfg_.residual ? lists.data() : nullptr, false, y.data());
  return y;
}

void PQIndex::install(const float* centroids, const float* rotation, std::vector<float> codebook) {
  const size_t d = cfg_.pq_dim;
  pq_.set_centroids(std::move(codebook));
  centroids_.assign(centroids, centroids + cfg_.nlist * cfg_.cluster_dim);
  rotation_t_.clear();
  if (rotation) {
    rotation_t_.resize(d * d);
    for (size_t i = 0; i < d; ++i)
      for (size_t j = 0; j < d; ++j) rotation_t_[j * d + i] = rotation[i * d + j];
  }
  rotated_centroids_.clear();
  if (cfg_.residual) {
    std::vector<float> padded(cfg_.nlist * d, 0.f);
    const size_t dc = std::min(cfg_.cluster_dim, d);
    for (size_t l = 0; l < cfg_.nlist; ++l) std::copy_n(centroids_.data() + l * cfg_.cluster_dim, dc, padded.data() + l * d);
    rotated_centroids_.resize(cfg_.nlist * d);
    if (rotation)
      gemm_ip(padded.data(), cfg_.nlist, d, rotation_t_.data(), d, d, d, rotated_centroids_.data(), d);
    else
      rotated_centroids_ = padded;
  }
  trained_ = true;
}

void PQIndex::set_trained(const float* centroids, const float* rotation, std::vector<float> codebook) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ADANNS_CHECK(ids_.size() == 0, "cannot retrain a PQ index that holds ", ids_.size(), " vectors");
  install(centroids, rotation, std::move(codebook));
}

std::vector<uint8_t> PQIndex::encode(const float* x, size_t n, int threads) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!trained_) raise<StateError>("PQ index is not trained: call train() first");
  std::vector<uint8_t> codes(n * cfg_.m);
  std::vector<int64_t> lists;
  std::vector<float> y;
  for (size_t r0 = 0; r0 < n; r0 += kAddBatch) {
    size_t rows = std::min(kAddBatch, n - r0);
    const float* xb = x + r0 * cfg_.dim;
    lists.resize(rows);
    if (ivf()) assign(xb, rows, centroids_.data(), threads, lists.data());
    y.resize(rows * cfg_.pq_dim);
    targets_rotated(xb, rows, centroids_.data(), cfg_.residual ? lists.data() : nullptr, !rotation_t_.empty(),
                    y.data());
    pq_.encode(y.data(), rows, cfg_.pq_dim, codes.data() + r0 * cfg_.m, threads);
  }
  return codes;
}

void PQIndex::add(const float* x, size_t n, const idx_t* ids, int threads) {
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (!trained_) raise<StateError>("PQ index is not trained: call train() before add()");
  }
  std::vector<uint8_t> codes = encode(x, n, threads);  // before the write lock: searches go on
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> given;
  if (ids) {
    ids_.check_new(ids, n);
  } else {
    given = ids_.default_ids(n);
    ids = given.data();
  }
  std::vector<int64_t> lists(n, 0);
  if (ivf()) assign(x, n, centroids_.data(), threads, lists.data());
  const size_t m = cfg_.m, dim = cfg_.dim;
  for (size_t i = 0; i < n; ++i) {
    List& l = lists_[lists[i]];
    ids_.set(ids[i], Location{static_cast<uint64_t>(lists[i]), l.ids.size()});
    ids_.note_added(ids[i]);
    l.ids.push_back(ids[i]);
    l.codes.insert(l.codes.end(), codes.begin() + i * m, codes.begin() + (i + 1) * m);
    if (fastscan()) {
      const size_t row = l.ids.size() - 1;
      l.blocked.resize(fastscan_blocks(row + 1) * fastscan_block_bytes(m), 0);
      fastscan_set_row(l.blocked.data(), m, row, codes.data() + i * m);
    }
    if (cfg_.store_vectors) l.vectors.insert(l.vectors.end(), x + i * dim, x + (i + 1) * dim);
  }
}

size_t PQIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ids_.check_existing(ids, n);
  const size_t m = cfg_.m, dim = cfg_.dim;
  for (size_t i = 0; i < n; ++i) {
    Location loc = ids_.at(ids[i]);
    List& l = lists_[loc.list];
    size_t last = l.ids.size() - 1, at = loc.offset;
    if (at != last) {
      l.ids[at] = l.ids[last];
      std::copy_n(l.codes.data() + last * m, m, l.codes.data() + at * m);
      if (fastscan()) fastscan_set_row(l.blocked.data(), m, at, l.codes.data() + at * m);
      if (cfg_.store_vectors) std::copy_n(l.vectors.data() + last * dim, dim, l.vectors.data() + at * dim);
      ids_.set(l.ids[at], loc);
    }
    l.ids.pop_back();
    l.codes.resize(last * m);
    // (The removed row's nibbles may stay in the last block: rows past the end are never read, and
    // the next add there overwrites them.)
    if (fastscan()) l.blocked.resize(fastscan_blocks(last) * fastscan_block_bytes(m));
    if (cfg_.store_vectors) l.vectors.resize(last * dim);
    ids_.erase(ids[i]);
  }
  return n;
}

void PQIndex::search(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
                     idx_t* out_ids, double* mflops) const {
  {
    SearchParams checked = p;
    checked.search_dim = qdim;  // codes are scanned, not a prefix: search_dim plays no part
    validate_search(checked, cfg_.dim, qdim);
  }
  const size_t need = std::max(cfg_.pq_dim, cfg_.cluster_dim);
  ADANNS_CHECK(qdim >= need, "queries must have at least ", need,
               " coordinates (pq_dim and cluster_dim of the index), got ", qdim);
  ADANNS_CHECK(cfg_.store_vectors || p.stages.empty(),
               "this index keeps no vectors (store_vectors=False): re-ranking is not available");
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!trained_) raise<StateError>("PQ index is not trained: call train() before search()");
  const size_t d = cfg_.pq_dim, m = cfg_.m, ksub = pq_.ksub(), dc = cfg_.cluster_dim;
  const size_t nlist = cfg_.nlist, nprobe = ivf() ? std::min(p.nprobe, nlist) : 1;
  const bool ip = cfg_.metric == Metric::IP, rotate = !rotation_t_.empty();
  const size_t lut_size = m * ksub;

  const bool fs = fastscan();
  const size_t block_bytes = fastscan_block_bytes(m);

  // A filter (filter.h): the direct plan scores the codes of the allowed rows, found by id, with no
  // coarse step; the scan plan skips disallowed rows before they reach a heap and, with IVF, probes
  // lists past nprobe (nearest first) until scan_keep() allowed rows were scanned.
  const FilterPlan plan = plan_filter(p.filter, ids_.size(), p.scan_keep(), p.brute_force_below);
  const AllowedIds* filter = plan == FilterPlan::Scan ? p.filter : nullptr;
  std::vector<Location> direct;  // the allowed rows held, grouped by list
  if (plan == FilterPlan::Direct) {
    for (size_t j = 0; j < p.filter->count(); ++j)
      if (ids_.contains(p.filter->ids()[j])) direct.push_back(ids_.at(p.filter->ids()[j]));
    std::sort(direct.begin(), direct.end(),
              [](const Location& a, const Location& b) { return a.list != b.list ? a.list < b.list : a.offset < b.offset; });
  }

  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    const size_t nc = e - b;
    const float* qb = q + b * qdim;
    PreparedQueries prep(cfg_.metric, qb, nc, qdim, d, p.stages);
    std::vector<float> y(nc * d);  // rotated query prefixes
    if (rotate)
      gemm_ip(prep.scan.data(), nc, d, rotation_t_.data(), d, d, d, y.data(), d);
    else
      y = prep.scan;
    std::vector<TopK> heaps(nc, TopK(p.scan_keep()));
    std::vector<float> dist;
    const double base_flops = rotate ? static_cast<double>(d) * d : 0.0;
    // Scores block `codes` of list l for query i into its heap; `offset` is added to every sum.
    auto push = [&](size_t i, const List& l, size_t r0, size_t rows, const float* vals, float offset) {
      TopK& heap = heaps[i];
      const float* vec = cfg_.store_vectors ? l.vectors.data() : nullptr;
      for (size_t r = 0; r < rows; ++r) {
        float dd = ip ? -(offset + vals[r]) : vals[r];
        if (dd <= heap.worst().dist && (!filter || filter->allows(l.ids[r0 + r])))
          heap.push(dd, l.ids[r0 + r], vec ? vec + (r0 + r) * cfg_.dim : nullptr);
      }
    };
    // Fast-scan of rows [r0, r0 + rows) of list l (r0 a multiple of 32) for queries i0 .. i0 + nqi - 1
    // (at most kScanQueries, sharing each load of codes) with tables t[0 .. nqi): the kernel flags the
    // rows whose integer sum can beat each heap's threshold (refreshed every kScanBlocks blocks), and
    // only those are dequantized and offered to the heap.
    constexpr size_t kScanBlocks = 32, kScanQueries = 4, kRows = kScanBlocks * kFastScanBlock;
    std::vector<uint16_t> sums(kScanQueries * kRows);
    std::vector<uint32_t> masks(kScanQueries * kScanBlocks);
    auto scan_blocked = [&](size_t i0, size_t nqi, const List& l, size_t r0, size_t rows, const FastScanLut* t,
                            float offset) {
      const float off = ip ? -offset : 0.f;  // distances: ip scores negated
      const float* vec = cfg_.store_vectors ? l.vectors.data() : nullptr;
      const uint8_t* tables[kScanQueries];
      uint16_t cuts[kScanQueries];
      uint16_t* sum_out[kScanQueries];
      uint32_t* mask_out[kScanQueries];
      size_t which[kScanQueries];
      for (size_t s0 = 0; s0 < rows; s0 += kRows) {
        size_t active = 0;
        for (size_t j = 0; j < nqi; ++j) {
          const int32_t cut = t[j].max_sum_within(heaps[i0 + j].worst().dist, off);
          if (cut < 0) continue;  // no sum can enter this heap (thresholds only tighten)
          tables[active] = t[j].table.data();
          cuts[active] = static_cast<uint16_t>(cut);
          sum_out[active] = sums.data() + active * kRows;
          mask_out[active] = masks.data() + active * kScanBlocks;
          which[active++] = j;
        }
        if (active == 0) return;
        const size_t n = std::min(kRows, rows - s0), nb = fastscan_blocks(n), first = r0 + s0;
        fastscan_scan_many(l.blocked.data() + first / kFastScanBlock * block_bytes, nb, m, active, tables, cuts,
                           sum_out, mask_out);
        for (size_t a = 0; a < active; ++a) {
          TopK& heap = heaps[i0 + which[a]];
          const FastScanLut& lut = t[which[a]];
          for (size_t bi = 0; bi < nb; ++bi) {
            uint32_t mask = mask_out[a][bi];
            const size_t valid = std::min(kFastScanBlock, n - bi * kFastScanBlock);
            if (valid < 32) mask &= (1u << valid) - 1;
            while (mask) {
              const size_t r = bi * kFastScanBlock + static_cast<size_t>(__builtin_ctz(mask));
              mask &= mask - 1;
              const float dd = lut.distance(sum_out[a][r], off);
              if (dd <= heap.worst().dist && (!filter || filter->allows(l.ids[first + r])))
                heap.push(dd, l.ids[first + r], vec ? vec + (first + r) * cfg_.dim : nullptr);
            }
          }
        }
      }
    };
    auto build_lut = [&](const float* yq, float* lut, FastScanLut* qlut) {
      if (ip) pq_.lut_ip(yq, lut);
      else pq_.lut_l2(yq, lut);
      if (qlut) fastscan_quantize(lut, m, ip, qlut);
    };

    if (plan == FilterPlan::Direct && cfg_.store_vectors) {
      // The stored vectors of the allowed rows, scored with the whole query: exact.
      PreparedQueries whole(cfg_.metric, qb, nc, qdim, qdim);
      std::vector<const float*> rows(direct.size());
      std::vector<idx_t> rids(direct.size());
      for (size_t j = 0; j < direct.size(); ++j) {
        const List& l = lists_[direct[j].list];
        rows[j] = l.vectors.data() + direct[j].offset * cfg_.dim;
        rids[j] = l.ids[direct[j].offset];
      }
      std::vector<size_t> which(nc);
      std::iota(which.begin(), which.end(), size_t{0});
      ScanScratch scratch;
      scan_rows(cfg_.metric, whole, which.data(), nc, rows.data(), rids.data(), rows.size(), false, heaps, scratch);
      for (size_t i = 0; i < nc; ++i) mflops[b + i] = static_cast<double>(rows.size()) * qdim * 1e-6;
    } else if (plan == FilterPlan::Direct) {
      // No vectors kept: each allowed row's code by float tables (also at nbits = 4: the plain codes are kept), per
      // list the same centroid term or residual table as a probe of that list would use.
      std::vector<float> lut(lut_size), shifted(d);
      const size_t dcp = std::min(dc, d);
      for (size_t i = 0; i < nc; ++i) {
        const float* yi = y.data() + i * d;
        double flops = base_flops;
        const bool lut_per_list = ivf() && !ip && cfg_.residual;
        if (!lut_per_list) {
          build_lut(yi, lut.data(), nullptr);
          flops += static_cast<double>(ksub) * d;
        }
        for (size_t j = 0; j < direct.size();) {
          const size_t li = direct[j].list;
          const List& l = lists_[li];
          float offset = 0.f;
          if (ivf() && cfg_.residual && ip) {
            one_to_many_ip(prep.scan.data() + i * d, centroids_.data() + li * dc, 1, dc, dcp, &offset);
            flops += static_cast<double>(dcp);
          } else if (lut_per_list) {
            const float* rc = rotated_centroids_.data() + li * d;
            for (size_t t = 0; t < d; ++t) shifted[t] = yi[t] - rc[t];
            build_lut(shifted.data(), lut.data(), nullptr);
            flops += static_cast<double>(ksub) * d;
          }
          for (; j < direct.size() && direct[j].list == li; ++j) {
            float dd;
            adc_scan(lut.data(), ksub, l.codes.data() + direct[j].offset * m, 1, m, &dd);
            push(i, l, direct[j].offset, 1, &dd, offset);
            flops += static_cast<double>(m);
          }
        }
        mflops[b + i] = flops * 1e-6;
      }
    } else if (!ivf()) {
      // Query groups x code blocks: the group's tables and the block of codes both stay in cache,
      // so the codes are streamed from memory once per group rather than once per query.
      const List& l = lists_[0];
      const size_t n = l.ids.size();
      const size_t table_bytes = fs ? block_bytes : lut_size * sizeof(float);
      const size_t group = std::max<size_t>(1, kLutGroupBytes / table_bytes);
      const size_t block = fs ? std::max<size_t>(1, kCodeBlockBytes / block_bytes) * kFastScanBlock
                              : std::max<size_t>(256, kCodeBlockBytes / m);
      std::vector<float> luts((fs ? 1 : std::min(group, nc)) * lut_size);
      std::vector<FastScanLut> qluts(fs ? std::min(group, nc) : 0);
      if (!fs) dist.resize(std::min(block, std::max<size_t>(n, 1)));
      for (size_t g0 = 0; g0 < nc; g0 += group) {
        const size_t gn = std::min(group, nc - g0);
        for (size_t i = 0; i < gn; ++i)
          build_lut(y.data() + (g0 + i) * d, luts.data() + (fs ? 0 : i * lut_size), fs ? &qluts[i] : nullptr);
        for (size_t r0 = 0; r0 < n; r0 += block) {
          const size_t rows = std::min(block, n - r0);
          if (fs) {
            for (size_t i = 0; i < gn; i += kScanQueries)
              scan_blocked(g0 + i, std::min(kScanQueries, gn - i), l, r0, rows, qluts.data() + i, 0.f);
            continue;
          }
          for (size_t i = 0; i < gn; ++i) {
            adc_scan(luts.data() + i * lut_size, ksub, l.codes.data() + r0 * m, rows, m, dist.data());
            push(g0 + i, l, r0, rows, dist.data(), 0.f);
          }
        }
      }
      for (size_t i = 0; i < nc; ++i)
        mflops[b + i] = (base_flops + static_cast<double>(ksub) * d + static_cast<double>(n) * m) * 1e-6;
    } else {
      // Coarse step on the query prefixes, then each query's probed lists.
      std::vector<float> cd(nc * nlist), cnorm(nlist), coarse_ip(nlist);
      gemm_ip(qb, nc, qdim, centroids_.data(), nlist, dc, dc, cd.data(), nlist);
      if (!ip) norms_sq(centroids_.data(), nlist, dc, dc, cnorm.data());
      std::vector<uint32_t> order(nlist);
      std::vector<uint64_t> keys(nlist);
      std::vector<float> lut(lut_size), shifted(d);
      FastScanLut qlut;
      const size_t dcp = std::min(dc, d);
      for (size_t i = 0; i < nc; ++i) {
        float* row = cd.data() + i * nlist;
        std::copy_n(row, nlist, coarse_ip.data());
        // The probed set only, by nth_element on integer keys (distance bits made orderable, then
        // the list index: a total order, so the set is unique); heaps do not depend on the order
        // lists are visited in.
        for (size_t c = 0; c < nlist; ++c) {
          const float v = ip ? -row[c] : cnorm[c] - 2.f * row[c];
          uint32_t bits;
          std::memcpy(&bits, &v, sizeof bits);
          bits = (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
          keys[c] = (uint64_t(bits) << 32) | c;
        }
        // With a filter every list is ranked: probing may go on past nprobe.
        const size_t ranked = filter ? nlist : nprobe;
        if (filter)
          std::sort(keys.begin(), keys.end());
        else if (nprobe < nlist)
          std::nth_element(keys.begin(), keys.begin() + (nprobe - 1), keys.end());
        for (size_t t = 0; t < ranked; ++t) order[t] = static_cast<uint32_t>(keys[t]);
        size_t allowed_seen = 0;
        const float* yi = y.data() + i * d;
        double flops = base_flops + static_cast<double>(nlist) * dc;
        const bool lut_per_list = !ip && cfg_.residual;
        if (!lut_per_list) {
          build_lut(yi, lut.data(), fs ? &qlut : nullptr);
          flops += static_cast<double>(ksub) * d;
        }
        // Lists are scattered in memory and short: fetch ahead while a list is scanned, in two stages
        // (the List record kRecordAhead lists ahead, its data kDataAhead ahead, when the record is in).
        constexpr size_t kRecordAhead = 4, kDataAhead = 2;
        for (size_t t = 0; t < std::min(nprobe, kRecordAhead); ++t) __builtin_prefetch(&lists_[order[t]]);
        for (size_t t = 0; t < std::min(nprobe, kDataAhead); ++t) prefetch_list(lists_[order[t]]);
        for (size_t t = 0; t < ranked && (t < nprobe || allowed_seen < p.scan_keep()); ++t) {
          const size_t li = order[t];
          const List& l = lists_[li];
          if (t + kRecordAhead < nprobe) {
            const char* rec = reinterpret_cast<const char*>(&lists_[order[t + kRecordAhead]]);
            __builtin_prefetch(rec);
            __builtin_prefetch(rec + sizeof(List) - 1);
          }
          if (t + kDataAhead < nprobe) prefetch_list(lists_[order[t + kDataAhead]]);
          const size_t n = l.ids.size();
          if (n == 0) continue;
          if (filter)
            for (idx_t id : l.ids) allowed_seen += filter->allows(id);
          float offset = 0.f;
          if (cfg_.residual && ip) {
            // <q, c + r> = <q[:d_c'], c[:d_c']> + <y, code(r)>: the centroid term, once per list; when
            // d_c <= pq_dim it is the coarse step's score.
            if (dc <= d) {
              offset = coarse_ip[li];
            } else {
              one_to_many_ip(prep.scan.data() + i * d, centroids_.data() + li * dc, 1, dc, dcp, &offset);
              flops += static_cast<double>(dcp);
            }
          } else if (lut_per_list) {
            const float* rc = rotated_centroids_.data() + li * d;
            for (size_t j = 0; j < d; ++j) shifted[j] = yi[j] - rc[j];
            build_lut(shifted.data(), lut.data(), fs ? &qlut : nullptr);
            flops += static_cast<double>(ksub) * d;
          }
          if (fs) {
            scan_blocked(i, 1, l, 0, n, &qlut, offset);
          } else {
            dist.resize(n);
            adc_scan(lut.data(), ksub, l.codes.data(), n, m, dist.data());
            push(i, l, 0, n, dist.data(), offset);
          }
          flops += static_cast<double>(n) * m;
        }
        mflops[b + i] = flops * 1e-6;
      }
    }
    finish_search(cfg_.metric, prep, p, heaps, scores + b * p.k, out_ids + b * p.k, mflops + b);
  });
}

std::vector<idx_t> PQIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> out;
  for (const List& l : lists_) out.insert(out.end(), l.ids.begin(), l.ids.end());
  return out;
}

// Metadata: parameters, trained state, per-list ids. Data: every list's vectors (when stored), then
// every list's codes, zero-padded to whole floats.
void PQIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MetaWriter w;
  for (uint64_t v : {uint64_t(cfg_.dim), uint64_t(cfg_.nlist), uint64_t(cfg_.cluster_dim), uint64_t(cfg_.pq_dim),
                     uint64_t(cfg_.m), uint64_t(cfg_.nbits), uint64_t(cfg_.metric), uint64_t(cfg_.residual),
                     uint64_t(cfg_.store_vectors), cfg_.seed, uint64_t(cfg_.niter), uint64_t(trained_),
                     uint64_t(!rotation_t_.empty())})
    w.u64(v);
  w.i64(ids_.next_id());
  if (trained_) {
    w.f32s(centroids_.data(), centroids_.size());
    std::vector<float> r = std::vector<float>(rotation_t_.size());
    const size_t d = cfg_.pq_dim;
    for (size_t i = 0; i < r.size(); ++i) r[(i % d) * d + i / d] = rotation_t_[i];
    w.f32s(r.data(), r.size());
    w.f32s(pq_.centroids().data(), pq_.centroids().size());
  }
  std::vector<DataChunk> data;
  size_t code_bytes = 0;
  for (const List& l : lists_) {
    w.u64(l.ids.size());
    w.i64s(l.ids.data(), l.ids.size());
    if (!l.vectors.empty()) data.push_back({l.vectors.data(), l.vectors.size() * sizeof(float)});
  }
  for (const List& l : lists_) {
    if (!l.codes.empty()) data.push_back({l.codes.data(), l.codes.size()});
    code_bytes += l.codes.size();
  }
  static const uint8_t zeros[4] = {0, 0, 0, 0};
  if (code_bytes % 4) data.push_back({zeros, 4 - code_bytes % 4});
  w.str(user_meta_.get());
  write_index_file(path, IndexKind::PQ, w.bytes(), data);
}

std::unique_ptr<PQIndex> PQIndex::from_file(IndexFile f) {
  MetaReader r(f.meta.data(), f.meta.size());
  PQIndexConfig c;
  c.dim = r.count(1u << 24, "dimension");
  c.nlist = r.count(f.meta.size() / 8, "nlist");  // each list has its u64 size in the metadata
  c.cluster_dim = r.count(c.dim, "cluster_dim");
  c.pq_dim = r.count(c.dim, "pq_dim");
  c.m = r.count(c.pq_dim, "m");
  c.nbits = r.count(8, "nbits");
  c.metric = static_cast<Metric>(r.count(2, "metric"));
  c.residual = r.count(1, "residual flag") == 1;
  c.store_vectors = r.count(1, "store_vectors flag") == 1;
  c.seed = r.u64();
  c.niter = r.count(1u << 30, "niter");
  bool trained = r.count(1, "trained flag") == 1;
  bool rotated = r.count(1, "rotation flag") == 1;
  std::unique_ptr<PQIndex> index;
  try {
    index = std::make_unique<PQIndex>(c);
  } catch (const Error& e) {
    raise("corrupt index file: ", e.what());
  }
  idx_t next = r.i64();
  if (trained) {
    const size_t d = c.pq_dim, cb = c.m * (size_t(1) << c.nbits) * (d / c.m);
    ADANNS_CHECK(c.nlist * c.cluster_dim + d * d + cb <= f.meta.size() / sizeof(float),
                 "corrupt index file: quantizers exceed metadata");
    std::vector<float> cent(c.nlist * c.cluster_dim), rot(rotated ? d * d : 0), book(cb);
    r.f32s(cent.data(), cent.size());
    r.f32s(rot.data(), rot.size());
    r.f32s(book.data(), book.size());
    index->install(cent.data(), rotated ? rot.data() : nullptr, std::move(book));
  }
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(f.data);
  const size_t total = f.data_floats * sizeof(float);
  size_t vec_off = 0, n_all = 0;
  const size_t row_bytes = c.m + (c.store_vectors ? c.dim * sizeof(float) : 0);
  for (size_t li = 0; li < index->lists_.size(); ++li) {
    List& l = index->lists_[li];
    size_t n = r.count((total - std::min(total, n_all * row_bytes)) / row_bytes, "list size");
    l.ids.resize(n);
    r.i64s(l.ids.data(), n);
    index->ids_.check_loaded(l.ids.data(), n);
    for (size_t i = 0; i < n; ++i) {
      index->ids_.set(l.ids[i], Location{li, i});
      index->ids_.note_added(l.ids[i]);
    }
    n_all += n;
  }
  index->user_meta_.set(r.str());
  r.expect_end();
  ADANNS_CHECK(trained || n_all == 0, "corrupt index file: untrained index with vectors");
  const size_t expect = n_all * row_bytes;
  ADANNS_CHECK(total >= expect && total - expect < 4, "corrupt index file: data section holds ", total,
               " bytes, ", expect, " expected");
  size_t code_off = c.store_vectors ? n_all * c.dim * sizeof(float) : 0;
  for (List& l : index->lists_) {
    const size_t n = l.ids.size();
    if (c.store_vectors) {
      l.vectors.resize(n * c.dim);
      if (n) std::memcpy(l.vectors.data(), bytes + vec_off, n * c.dim * sizeof(float));
      vec_off += n * c.dim * sizeof(float);
    }
    l.codes.assign(bytes + code_off, bytes + code_off + n * c.m);
    code_off += n * c.m;
    if (index->fastscan()) {
      for (uint8_t code : l.codes) ADANNS_CHECK(code < 16, "corrupt index file: 4-bit code ", int(code));
      l.blocked = fastscan_pack(l.codes.data(), n, c.m);
    }
  }
  if (next > index->ids_.next_id()) index->ids_.set_next_id(next);
  return index;
}

}  // namespace adanns
