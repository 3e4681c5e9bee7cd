// Rows of `dim` floats with their ids, stored once and contiguously. The vectors are either owned
// or a read-only view into a memory-mapped index file; the first mutation of a view copies it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "adanns/aligned.h"
#include "adanns/common.h"

namespace adanns {

class RowStore {
 public:
  size_t size() const { return ids_.size(); }
  const float* vectors() const { return mapped_ ? mapped_ : owned_.data(); }
  const idx_t* ids() const { return ids_.data(); }
  const float* row(size_t i, size_t dim) const { return vectors() + i * dim; }
  bool is_mapped() const { return mapped_ != nullptr; }

  void append(const float* row, idx_t id, size_t dim) {
    own(dim);
    owned_.insert(owned_.end(), row, row + dim);
    ids_.push_back(id);
  }

  // Removes row i by moving the last row into its place; returns the moved row's id, or -1 when
  // i was the last row.
  idx_t swap_remove(size_t i, size_t dim) {
    own(dim);
    size_t last = ids_.size() - 1;
    idx_t moved = -1;
    if (i != last) {
      std::copy_n(owned_.data() + last * dim, dim, owned_.data() + i * dim);
      ids_[i] = ids_[last];
      moved = ids_[i];
    }
    owned_.resize(last * dim);
    ids_.pop_back();
    return moved;
  }

  void reserve_more(size_t n, size_t dim) {
    own(dim);
    owned_.reserve(owned_.size() + n * dim);
    ids_.reserve(ids_.size() + n);
  }

  // A view over `n` mapped rows (kept alive by the index that owns the mapping).
  void set_view(const float* vectors, std::vector<idx_t> ids) {
    owned_.clear();
    owned_.shrink_to_fit();
    mapped_ = ids.empty() ? nullptr : vectors;
    ids_ = std::move(ids);
  }
  void set_owned(AlignedVector<float> vectors, std::vector<idx_t> ids) {
    mapped_ = nullptr;
    owned_ = std::move(vectors);
    ids_ = std::move(ids);
  }

  size_t vector_bytes(size_t dim) const { return size() * dim * sizeof(float); }

 private:
  void own(size_t dim) {
    if (!mapped_) return;
    owned_.assign(mapped_, mapped_ + ids_.size() * dim);
    mapped_ = nullptr;
  }

  AlignedVector<float> owned_;
  const float* mapped_ = nullptr;
  std::vector<idx_t> ids_;
};

}  // namespace adanns
