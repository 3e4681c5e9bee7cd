// Bounded top-k selection. Internally every metric is a distance (smaller is better: ip and cosine
// scores are negated), and ties go to the smaller id, so the kept set is a total order's first k
// entries whatever order candidates arrive in: results cannot depend on scan order or thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <vector>

#include "adanns/common.h"

namespace adanns {

struct Candidate {
  float dist;
  idx_t id;
  const float* row;  // stored vector, for re-ranking; valid while the index is read-locked
};

inline bool better(const Candidate& a, const Candidate& b) {
  return a.dist < b.dist || (a.dist == b.dist && a.id < b.id);
}

class TopK {
 public:
  static constexpr idx_t kEmptyId = std::numeric_limits<idx_t>::max();

  explicit TopK(size_t k = 0) { reset(k); }

  void reset(size_t k) {
    heap_.assign(k, Candidate{std::numeric_limits<float>::infinity(), kEmptyId, nullptr});
  }

  size_t capacity() const { return heap_.size(); }
  // The entry a newcomer must beat (the current k-th best).
  const Candidate& worst() const { return heap_[0]; }

  void push(float dist, idx_t id, const float* row) {
    Candidate c{dist, id, row};
    if (heap_.empty() || !better(c, heap_[0])) return;
    sift_down_from_root(c);
  }

  // Entries best first; empty slots (id kEmptyId) last.
  std::vector<Candidate> sorted() const {
    std::vector<Candidate> out(heap_);
    std::sort(out.begin(), out.end(), better);
    return out;
  }

 private:
  // Max-heap on `better`: heap_[0] is the worst kept entry. Replaces the root with c.
  void sift_down_from_root(const Candidate& c) {
    size_t n = heap_.size(), i = 0;
    while (true) {
      size_t l = 2 * i + 1, r = l + 1, w = i;
      const Candidate* wc = &c;
      if (l < n && better(*wc, heap_[l])) { w = l; wc = &heap_[l]; }
      if (r < n && better(*wc, heap_[r])) { w = r; wc = &heap_[r]; }
      if (w == i) break;
      heap_[i] = heap_[w];
      i = w;
    }
    heap_[i] = c;
  }

  std::vector<Candidate> heap_;
};

}  // namespace adanns
