// Exhaustive search over stored full vectors, with Matryoshka prefixes and re-ranking.
#pragma once

#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/row_store.h"
#include "adanns/search.h"
#include "adanns/user_meta.h"

namespace adanns {

class FlatIndex {
 public:
  FlatIndex(size_t dim, Metric metric);

  size_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  size_t size() const;
  size_t bytes() const;

  // ids may be null: consecutive ids after the largest seen. Rejected batches change nothing.
  void add(const float* x, size_t n, const idx_t* ids);
  size_t remove(const idx_t* ids, size_t n);

  // q: nq rows of width qdim (<= dim, a prefix). Outputs are nq x p.k and nq. With p.filter,
  // only allowed ids are scored and returned (exact over them; filter.h).
  void search(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
              idx_t* ids, double* mflops) const;
  double estimate_mflops(const SearchParams& p) const;

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
  static std::unique_ptr<FlatIndex> from_file(IndexFile file);

 private:
  size_t dim_;
  Metric metric_;
  RowStore rows_;
  IdMap ids_;
  UserMeta user_meta_;
  std::shared_ptr<MappedFile> mapping_;
  mutable std::shared_mutex mu_;  // searches share, writes are exclusive
};

}  // namespace adanns
