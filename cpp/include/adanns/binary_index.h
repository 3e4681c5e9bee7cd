// Exhaustive and hashed search over binary codes (Hamming distance), with nested code prefixes and
// an optional float re-ranking stage.
//
// Codes are nbits packed bits (nbits a multiple of 8, at most kMaxCodeBits), stored as rows of
// 64-bit words. `search_bits` (a multiple of 8) compares only the first search_bits bits of every
// code: binary Matryoshka codes, where each prefix is itself a code. Ties go to the smaller id.
// When built with dim > 0 the index also keeps one float vector per code, so a Hamming shortlist can
// be re-ranked by inner product on the first rerank_dim coordinates (search_rerank).
//
// Cost accounting (per query, in operations): a scan costs N * ceil(search_bits / 64) (one 64-bit
// xor + popcount per word of each code compared); re-ranking adds rerank_dim multiply-adds per
// shortlisted row; a hashed range search costs its probes plus ceil(search_bits / 64) per verified
// candidate.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "adanns/common.h"
#include "adanns/filter.h"
#include "adanns/hamming_topk.h"
#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/mih.h"
#include "adanns/user_meta.h"

namespace adanns {

struct RangeResult {
  std::vector<int64_t> lims;     // nq + 1 offsets into dist / ids
  std::vector<int32_t> dist;     // per query ascending, ties by id
  std::vector<idx_t> ids;
  std::vector<double> cost;      // per query, operations (see above)
  bool used_hash = false;
};

enum class RangeMethod { Auto = 0, Hash = 1, Scan = 2 };

class BinaryIndex {
 public:
  BinaryIndex(size_t nbits, size_t dim);

  size_t nbits() const { return nbits_; }
  size_t dim() const { return dim_; }
  size_t size() const;
  size_t bytes() const;

  // codes: n rows of nbits / 8 bytes; vectors: n x dim floats (exactly when dim > 0); ids may be
  // null (consecutive after the largest seen). A rejected batch changes nothing.
  void add(const uint8_t* codes, size_t n, const float* vectors, const idx_t* ids);
  size_t remove(const idx_t* ids, size_t n);

  // Queries: nq rows of qbytes bytes (search_bits / 8 <= qbytes <= nbits / 8).
  // Outputs nq x k; padding: id -1, distance INT32_MAX.
  void search(const uint8_t* q, size_t nq, size_t qbytes, size_t k, size_t search_bits, int threads,
              int32_t* dist, idx_t* ids, double* cost) const;
  RangeResult range_search(const uint8_t* q, size_t nq, size_t qbytes, int radius, size_t search_bits,
                           RangeMethod method, int threads) const;
  // Hamming top-`shortlist` on search_bits, then the best k by <qv[:rerank_dim], x[:rerank_dim]>.
  // qv: nq x qdim floats. Padding: id -1, score -inf. With `filter` (filter.h) only allowed ids are
  // returned: a filter allowing at most brute_force_below of the rows (or at most `shortlist`) has all
  // its rows re-scored (exact, no code scan); otherwise disallowed rows never enter the shortlist.
  void search_rerank(const uint8_t* q, size_t nq, size_t qbytes, const float* qv, size_t qdim, size_t k,
                     size_t shortlist, size_t search_bits, size_t rerank_dim, int threads, float* scores,
                     idx_t* ids, double* cost, AllowedIds* filter = nullptr,
                     double brute_force_below = kDefaultBruteForceBelow) const;

  // Builds the multi-index hash now (0 substrings: chosen from the size). Adds and removes drop it;
  // the next hashed search rebuilds it with the same setting.
  void build_hash(size_t substrings);
  size_t hash_substrings() const;  // of the current tables, 0 when none

  // The first of the ids an add without ids assigns (one past the largest id ever added).
  idx_t next_id() const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    return ids_.next_id();
  }
  std::vector<idx_t> ids() const;
  std::vector<uint8_t> codes() const;  // packed, storage order
  std::vector<float> vectors() const;  // storage order (empty when dim == 0)
  std::string user_meta() const { return user_meta_.get(); }
  void set_user_meta(std::string meta) { user_meta_.set(std::move(meta)); }

  void save(const std::string& path) const;
  static std::unique_ptr<BinaryIndex> from_file(IndexFile file);

 private:
  size_t code_bytes() const { return nbits_ / 8; }
  void check_query(size_t qbytes, size_t search_bits) const;
  std::vector<uint64_t> pad_queries(const uint8_t* q, size_t nq, size_t qbytes) const;
  // Fills heaps (one per query, capacity set by the caller) with the Hamming top entries.
  void scan_topk(const uint64_t* qw, size_t nq, size_t search_bits, std::vector<HammingTopK>& heaps,
                 const AllowedIds* filter = nullptr) const;
  std::shared_ptr<const MultiIndexHash> hash_for_search() const;  // builds under hash_mu_ when missing

  size_t nbits_, words_, dim_;
  std::vector<uint64_t> codes_;  // size() x words_, zero-padded
  std::vector<float> vectors_;   // size() x dim_
  std::vector<idx_t> row_ids_;
  IdMap ids_;
  UserMeta user_meta_;
  size_t hash_request_ = 0;
  mutable std::mutex hash_mu_;
  mutable std::shared_ptr<const MultiIndexHash> hash_;
  mutable std::shared_mutex mu_;  // searches share, writes are exclusive
};

}  // namespace adanns
