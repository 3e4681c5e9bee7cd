#include "adanns/binary_index.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "adanns/distances.h"
#include "adanns/hamming.h"
#include "adanns/hamming_topk.h"
#include "adanns/threads.h"

namespace adanns {

namespace {

constexpr int32_t kPadDist = std::numeric_limits<int32_t>::max();

// Rows per scan block: about 128 KiB of codes, so a block stays in L2 while every query of the
// thread's batch is run over it.
size_t block_rows(size_t words) { return std::max<size_t>(64, ((size_t(1) << 15) / (8 * words)) & ~size_t(15)); }

}  // namespace

BinaryIndex::BinaryIndex(size_t nbits, size_t dim) : nbits_(nbits), words_(words_for_bits(nbits)), dim_(dim) {
  ADANNS_CHECK(nbits >= 8 && nbits <= kMaxCodeBits && nbits % 8 == 0,
               "nbits must be a multiple of 8 in 8..", kMaxCodeBits, ", got ", nbits);
}

size_t BinaryIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return row_ids_.size();
}

size_t BinaryIndex::bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return codes_.size() * 8 + vectors_.size() * 4 + row_ids_.size() * sizeof(idx_t);
}

void BinaryIndex::add(const uint8_t* codes, size_t n, const float* vectors, const idx_t* ids) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (n > 0)
    ADANNS_CHECK((vectors != nullptr) == (dim_ > 0),
                 dim_ > 0 ? "this index stores float vectors: add() needs vectors for every code"
                          : "this index stores no float vectors (dim = 0): pass none");
  std::vector<idx_t> given;
  if (ids) {
    ids_.check_new(ids, n);
  } else {
    given = ids_.default_ids(n);
    ids = given.data();
  }
  size_t base = row_ids_.size();
  codes_.resize((base + n) * words_, 0);
  for (size_t i = 0; i < n; ++i)
    std::memcpy(codes_.data() + (base + i) * words_, codes + i * code_bytes(), code_bytes());
  if (dim_) vectors_.insert(vectors_.end(), vectors, vectors + n * dim_);
  ids_.reserve(base + n);
  for (size_t i = 0; i < n; ++i) {
    ids_.set(ids[i], Location{0, base + i});
    ids_.note_added(ids[i]);
    row_ids_.push_back(ids[i]);
  }
  if (n) hash_.reset();
}

size_t BinaryIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ids_.check_existing(ids, n);
  for (size_t i = 0; i < n; ++i) {
    size_t r = ids_.at(ids[i]).offset, last = row_ids_.size() - 1;
    if (r != last) {  // move the last row into the hole
      std::memcpy(codes_.data() + r * words_, codes_.data() + last * words_, words_ * 8);
      if (dim_) std::memcpy(vectors_.data() + r * dim_, vectors_.data() + last * dim_, dim_ * 4);
      row_ids_[r] = row_ids_[last];
      ids_.set(row_ids_[r], Location{0, r});
    }
    row_ids_.pop_back();
    codes_.resize(row_ids_.size() * words_);
    if (dim_) vectors_.resize(row_ids_.size() * dim_);
    ids_.erase(ids[i]);
  }
  if (n) hash_.reset();
  return n;
}

void BinaryIndex::check_query(size_t qbytes, size_t search_bits) const {
  ADANNS_CHECK(search_bits >= 8 && search_bits <= nbits_ && search_bits % 8 == 0,
               "search_bits must be a multiple of 8 in 8..", nbits_, ", got ", search_bits);
  ADANNS_CHECK(qbytes * 8 >= search_bits && qbytes <= code_bytes(), "query codes must have ", search_bits / 8,
               "..", code_bytes(), " bytes for search_bits=", search_bits, ", got ", qbytes);
}

std::vector<uint64_t> BinaryIndex::pad_queries(const uint8_t* q, size_t nq, size_t qbytes) const {
  std::vector<uint64_t> out(nq * words_, 0);
  for (size_t i = 0; i < nq; ++i) std::memcpy(out.data() + i * words_, q + i * qbytes, qbytes);
  return out;
}

void BinaryIndex::scan_topk(const uint64_t* qw, size_t nq, size_t search_bits, std::vector<HammingTopK>& heaps,
                            const AllowedIds* filter) const {
  const size_t n = row_ids_.size(), nw = words_for_bits(search_bits), bsz = block_rows(words_);
  const std::vector<uint64_t> mask = search_bits < nbits_ ? prefix_mask(search_bits) : std::vector<uint64_t>();
  const uint64_t* mp = mask.empty() ? nullptr : mask.data();
  // Queries go in groups whose top-k state (buffers and counts) stays in L2 while every block of codes
  // is run over them; the codes are streamed once per group.
  const size_t state = heaps.empty() ? 1 : (2 * heaps[0].capacity() + 64) * sizeof(HammingTopK::Entry) +
                                                (search_bits + 1) * sizeof(size_t);
  const size_t group = std::min<size_t>(256, std::max<size_t>(8, (size_t(512) << 10) / state));
  std::vector<int32_t> d(bsz);
  std::vector<uint32_t> sel(bsz);
  for (size_t g0 = 0; g0 < nq; g0 += group) {
    const size_t g1 = std::min(nq, g0 + group);
    for (size_t r0 = 0; r0 < n; r0 += bsz) {
      const size_t nb = std::min(bsz, n - r0);
      const uint64_t* block = codes_.data() + r0 * words_;
      for (size_t i = g0; i < g1; ++i) {
        hamming_distances(qw + i * words_, block, nb, words_, nw, mp, d.data());
        HammingTopK& h = heaps[i];
        // Only rows at or below the current threshold can enter (equal ones may win on id).
        size_t m = select_le(d.data(), nb, h.threshold(), sel.data());
        for (size_t s = 0; s < m; ++s) {
          size_t r = r0 + sel[s];
          if (filter && !filter->allows(row_ids_[r])) continue;
          h.push(d[sel[s]], row_ids_[r], dim_ ? vectors_.data() + r * dim_ : nullptr);
        }
      }
    }
  }
}

void BinaryIndex::search(const uint8_t* q, size_t nq, size_t qbytes, size_t k, size_t search_bits, int threads,
                         int32_t* dist, idx_t* out_ids, double* cost) const {
  ADANNS_CHECK(k >= 1, "k must be >= 1, got ", k);
  check_query(qbytes, search_bits);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const double per_query = static_cast<double>(row_ids_.size()) * words_for_bits(search_bits);
  parallel_for(nq, threads, [&](size_t b, size_t e, int) {
    std::vector<uint64_t> qw = pad_queries(q + b * qbytes, e - b, qbytes);
    std::vector<HammingTopK> heaps(e - b, HammingTopK(k, static_cast<int32_t>(search_bits)));
    scan_topk(qw.data(), e - b, search_bits, heaps);
    for (size_t i = 0; i < e - b; ++i) {
      std::vector<HammingTopK::Entry> s = heaps[i].sorted();
      for (size_t j = 0; j < k; ++j) {
        bool pad = j >= s.size();
        dist[(b + i) * k + j] = pad ? kPadDist : s[j].dist;
        out_ids[(b + i) * k + j] = pad ? -1 : s[j].id;
      }
      cost[b + i] = per_query;
    }
  });
}

std::shared_ptr<const MultiIndexHash> BinaryIndex::hash_for_search() const {
  std::lock_guard<std::mutex> lock(hash_mu_);
  if (!hash_)
    hash_ = std::make_shared<MultiIndexHash>(codes_.data(), row_ids_.size(), words_, code_bytes(), hash_request_);
  return hash_;
}

void BinaryIndex::build_hash(size_t substrings) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ADANNS_CHECK(substrings <= code_bytes(), "substrings must be in 0..", code_bytes(), ", got ", substrings);
  // Built before it is recorded, so a refused setting leaves the previous tables in place.
  auto h = std::make_shared<MultiIndexHash>(codes_.data(), row_ids_.size(), words_, code_bytes(), substrings);
  std::lock_guard<std::mutex> hl(hash_mu_);
  hash_request_ = substrings;
  hash_ = std::move(h);
}

size_t BinaryIndex::hash_substrings() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::lock_guard<std::mutex> hl(hash_mu_);
  return hash_ ? hash_->substrings() : 0;
}

RangeResult BinaryIndex::range_search(const uint8_t* q, size_t nq, size_t qbytes, int radius, size_t search_bits,
                                      RangeMethod method, int threads) const {
  ADANNS_CHECK(radius >= 0, "radius must be >= 0, got ", radius);
  check_query(qbytes, search_bits);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t n = row_ids_.size(), nw = words_for_bits(search_bits);
  // Padding bits are zero in codes and queries alike: only a shorter prefix needs a mask.
  const std::vector<uint64_t> mask = search_bits < nbits_ ? prefix_mask(search_bits) : std::vector<uint64_t>();
  const uint64_t* mp = mask.empty() ? nullptr : mask.data();

  std::shared_ptr<const MultiIndexHash> hash;
  if (method != RangeMethod::Scan && n > 0) {
    std::shared_ptr<const MultiIndexHash> current;
    {
      std::lock_guard<std::mutex> hl(hash_mu_);
      current = hash_;
    }
    if (method == RangeMethod::Hash) {
      hash = current ? current : hash_for_search();
      ADANNS_CHECK(hash->usable(search_bits / 8) > 0, "no hash substring lies within the first ", search_bits,
                   " bits (first substring: ", 8 * hash->hi(0), " bits); use a scan");
      // A radius so large that the probes would outnumber the codes many times over: the scan gives the
      // same set, without enumerating an astronomical number of keys.
      if (hash->expected_probes(search_bits / 8, radius) > std::max(16.0 * n, 1e6)) hash.reset();
    } else {
      // Auto: hash when its probes are few next to a scan of every code (a build is paid once).
      size_t subs = current ? current->substrings()
                            : (hash_request_ ? hash_request_ : MultiIndexHash::auto_substrings(n, code_bytes()));
      double probes = MultiIndexHash::estimate_probes(code_bytes(), subs, search_bits / 8, radius);
      if (probes * 16 < static_cast<double>(n)) hash = current ? current : hash_for_search();
    }
  }

  RangeResult out;
  out.used_hash = hash != nullptr;
  std::vector<std::vector<std::pair<int32_t, idx_t>>> hits(nq);
  out.cost.assign(nq, 0.0);
  parallel_for(nq, threads, [&](size_t b, size_t e, int) {
    std::vector<uint64_t> qw = pad_queries(q + b * qbytes, e - b, qbytes);
    if (hash) {
      std::vector<uint32_t> rows;
      int32_t d = 0;
      for (size_t i = 0; i < e - b; ++i) {
        size_t probes = 0;
        hash->candidates(qw.data() + i * words_, search_bits / 8, radius, rows, &probes);
        for (uint32_t r : rows) {
          hamming_distances(qw.data() + i * words_, codes_.data() + size_t(r) * words_, 1, words_, nw, mp, &d);
          if (d <= radius) hits[b + i].push_back({d, row_ids_[r]});
        }
        out.cost[b + i] = static_cast<double>(probes) + static_cast<double>(rows.size()) * nw;
      }
    } else {
      const size_t bsz = block_rows(words_);
      std::vector<int32_t> d(bsz);
      std::vector<uint32_t> sel(bsz);
      for (size_t r0 = 0; r0 < n; r0 += bsz) {
        const size_t nb = std::min(bsz, n - r0);
        for (size_t i = 0; i < e - b; ++i) {
          hamming_distances(qw.data() + i * words_, codes_.data() + r0 * words_, nb, words_, nw, mp, d.data());
          size_t m = select_le(d.data(), nb, radius, sel.data());
          for (size_t s = 0; s < m; ++s) hits[b + i].push_back({d[sel[s]], row_ids_[r0 + sel[s]]});
        }
      }
      for (size_t i = b; i < e; ++i) out.cost[i] = static_cast<double>(n) * nw;
    }
    for (size_t i = b; i < e; ++i) std::sort(hits[i].begin(), hits[i].end());
  });
  out.lims.assign(nq + 1, 0);
  for (size_t i = 0; i < nq; ++i) out.lims[i + 1] = out.lims[i] + static_cast<int64_t>(hits[i].size());
  out.dist.reserve(out.lims[nq]);
  out.ids.reserve(out.lims[nq]);
  for (auto& h : hits)
    for (auto& p : h) {
      out.dist.push_back(p.first);
      out.ids.push_back(p.second);
    }
  return out;
}

void BinaryIndex::search_rerank(const uint8_t* q, size_t nq, size_t qbytes, const float* qv, size_t qdim, size_t k,
                                size_t shortlist, size_t search_bits, size_t rerank_dim, int threads, float* scores,
                                idx_t* out_ids, double* cost, AllowedIds* filter, double brute_force_below) const {
  ADANNS_CHECK(dim_ > 0, "this index stores no float vectors: build it with vectors to re-rank");
  ADANNS_CHECK(k >= 1, "k must be >= 1, got ", k);
  ADANNS_CHECK(shortlist >= k, "shortlist (", shortlist, ") must be >= k (", k, ")");
  ADANNS_CHECK(rerank_dim >= 1 && rerank_dim <= dim_ && rerank_dim <= qdim, "rerank_dim must be in 1..",
               std::min(dim_, qdim), ", got ", rerank_dim);
  check_query(qbytes, search_bits);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const FilterPlan plan = plan_filter(filter, row_ids_.size(), shortlist, brute_force_below);
  std::vector<HammingTopK::Entry> direct;  // the direct plan: every allowed row is a candidate
  if (plan == FilterPlan::Direct)
    for (size_t j = 0; j < filter->count(); ++j)
      if (ids_.contains(filter->ids()[j])) {
        const size_t r = ids_.at(filter->ids()[j]).offset;
        direct.push_back({0, row_ids_[r], vectors_.data() + r * dim_});
      }
  const double scan = plan == FilterPlan::Direct ? 0.0 : static_cast<double>(row_ids_.size()) * words_for_bits(search_bits);
  parallel_for(nq, threads, [&](size_t b, size_t e, int) {
    std::vector<uint64_t> qw = pad_queries(q + b * qbytes, e - b, qbytes);
    std::vector<HammingTopK> heaps(e - b, HammingTopK(shortlist, static_cast<int32_t>(search_bits)));
    if (plan != FilterPlan::Direct)
      scan_topk(qw.data(), e - b, search_bits, heaps, plan == FilterPlan::Scan ? filter : nullptr);
    std::vector<std::pair<float, idx_t>> rr;
    for (size_t i = 0; i < e - b; ++i) {
      rr.clear();
      const float* qi = qv + (b + i) * qdim;
      std::vector<HammingTopK::Entry> cand = plan == FilterPlan::Direct ? direct : heaps[i].sorted();
      // The rows are scattered over the whole vector store: fetch a few rows ahead so their cache
      // misses overlap instead of being paid one row at a time.
      constexpr size_t kAhead = 6;
      const size_t row_bytes = rerank_dim * sizeof(float);
      auto prefetch = [&](size_t c) {
        const char* p = reinterpret_cast<const char*>(cand[c].row);
        for (size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off);
      };
      for (size_t c = 0; c < std::min(kAhead, cand.size()); ++c) prefetch(c);
      for (size_t c = 0; c < cand.size(); ++c) {
        if (c + kAhead < cand.size()) prefetch(c + kAhead);
        float s;
        block_ip(qi, 1, qdim, cand[c].row, 1, dim_, rerank_dim, &s, 1);
        rr.push_back({-s, cand[c].id});  // ascending: best score first, ties by smaller id
      }
      size_t keep = std::min(k, rr.size());
      std::partial_sort(rr.begin(), rr.begin() + keep, rr.end());
      for (size_t j = 0; j < k; ++j) {
        scores[(b + i) * k + j] = j < keep ? -rr[j].first : -std::numeric_limits<float>::infinity();
        out_ids[(b + i) * k + j] = j < keep ? rr[j].second : -1;
      }
      cost[b + i] = scan + static_cast<double>(rr.size()) * rerank_dim;
    }
  });
}

std::vector<idx_t> BinaryIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return row_ids_;
}

std::vector<uint8_t> BinaryIndex::codes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<uint8_t> out(row_ids_.size() * code_bytes());
  for (size_t i = 0; i < row_ids_.size(); ++i)
    std::memcpy(out.data() + i * code_bytes(), codes_.data() + i * words_, code_bytes());
  return out;
}

std::vector<float> BinaryIndex::vectors() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return vectors_;
}

void BinaryIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  MetaWriter m;
  m.u64(nbits_);
  m.u64(dim_);
  m.u64(row_ids_.size());
  m.i64(ids_.next_id());
  m.i64s(row_ids_.data(), row_ids_.size());
  m.str(user_meta_.get());
  m.u64(hash_request_);
  write_index_file(path, IndexKind::Binary, m.bytes(),
                   {{codes_.data(), codes_.size() * 8}, {vectors_.data(), vectors_.size() * 4}});
}

std::unique_ptr<BinaryIndex> BinaryIndex::from_file(IndexFile f) {
  MetaReader r(f.meta.data(), f.meta.size());
  size_t nbits = r.count(kMaxCodeBits, "code length");
  ADANNS_CHECK(nbits >= 8 && nbits % 8 == 0, "corrupt index file: code length ", nbits);
  size_t dim = r.count(1u << 24, "dimension");
  auto index = std::make_unique<BinaryIndex>(nbits, dim);
  const size_t row_bytes = index->words_ * 8 + dim * 4, data_bytes = f.data_floats * 4;
  size_t n = r.count(data_bytes / row_bytes, "row count");
  ADANNS_CHECK(n * row_bytes == data_bytes, "corrupt index file: ", data_bytes, " data bytes do not match ", n,
               " codes of ", nbits, " bits", dim ? " with vectors" : "");
  idx_t next = r.i64();
  std::vector<idx_t> ids(n);
  r.i64s(ids.data(), n);
  index->user_meta_.set(r.str());
  index->hash_request_ = r.count(nbits / 8, "hash substrings");
  ADANNS_CHECK(index->hash_request_ == 0 || (nbits / 8 + index->hash_request_ - 1) / index->hash_request_ <= 8,
               "corrupt index file: ", index->hash_request_, " hash substrings of ", nbits, "-bit codes");
  r.expect_end();
  index->ids_.check_loaded(ids.data(), n);
  const uint8_t* data = reinterpret_cast<const uint8_t*>(f.data);
  index->codes_.resize(n * index->words_);
  std::memcpy(index->codes_.data(), data, n * index->words_ * 8);
  // Searches count the differing bits of whole words: a set padding bit would add to every distance.
  if (nbits % 64) {
    const uint64_t pad = ~uint64_t(0) << (nbits % 64);
    for (size_t i = 0; i < n; ++i)
      ADANNS_CHECK((index->codes_[(i + 1) * index->words_ - 1] & pad) == 0, "corrupt index file: code ", i,
                   " has bits set past its ", nbits, " bits");
  }
  index->vectors_.resize(n * dim);
  std::memcpy(index->vectors_.data(), data + n * index->words_ * 8, n * dim * 4);
  index->ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    index->ids_.set(ids[i], Location{0, i});
    index->ids_.note_added(ids[i]);
  }
  if (next > index->ids_.next_id()) index->ids_.set_next_id(next);
  index->row_ids_ = std::move(ids);
  return index;
}

}  // namespace adanns
