// Top-k selection. Internally every metric is a distance (smaller is better: ip and cosine scores
// are negated), and ties go to the smaller id, so the kept set is the first k entries of a total
// order whatever order candidates arrive in: results cannot depend on scan order or thread count.
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

// A reservoir rather than a heap: candidates that beat the threshold are appended, and when 2k
// have piled up a selection keeps the best k and raises the threshold to the k-th. Appends are
// sequential and O(1) amortised, where a heap of a few hundred entries sifts through cache lines on
// every insertion (re-ranking shortlists of 100-400 made heaps the scan's bottleneck).
class TopK {
 public:
  static constexpr idx_t kEmptyId = std::numeric_limits<idx_t>::max();

  explicit TopK(size_t k = 0) { reset(k); }

  void reset(size_t k) {
    k_ = k;
    buf_.clear();
    buf_.reserve(2 * k);
    threshold_ = Candidate{std::numeric_limits<float>::infinity(), kEmptyId, nullptr};
  }

  size_t k() const { return k_; }
  // The entry a newcomer must beat (the k-th best once k are known).
  const Candidate& worst() const { return threshold_; }

  void push(float dist, idx_t id, const float* row) {
    Candidate c{dist, id, row};
    if (k_ == 0 || !better(c, threshold_)) return;
    buf_.push_back(c);
    if (buf_.size() >= 2 * k_) shrink();
  }

  // The kept entries (at most k), in no particular order.
  const std::vector<Candidate>& entries() {
    if (buf_.size() > k_) shrink();
    return buf_;
  }

  // The kept entries, best first.
  std::vector<Candidate> sorted() {
    std::vector<Candidate> out(entries());
    std::sort(out.begin(), out.end(), better);
    return out;
  }

 private:
  void shrink() {
    std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end(), better);
    buf_.resize(k_);
    threshold_ = buf_[k_ - 1];  // nth_element leaves the k-th best there: the worst kept
  }

  size_t k_ = 0;
  std::vector<Candidate> buf_;
  Candidate threshold_;
};

}  // namespace adanns
