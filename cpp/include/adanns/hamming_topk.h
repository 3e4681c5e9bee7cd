// Top-k selection for small integer distances (Hamming): no heap. Candidates at or under a threshold
// are appended to a buffer and counted per distance; the threshold drops to the smallest distance t
// with at least k buffered candidates at <= t, so later rows rarely pass. The buffer is compacted when
// it grows past 2k + 64. Pushes cost O(1), which matters for shortlists of hundreds (a heap pays
// log k per insertion, thousands of times per query). Ties go to the smaller id, as in topk.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adanns/common.h"

namespace adanns {

class HammingTopK {
 public:
  struct Entry {
    int32_t dist;
    idx_t id;
    const float* row;  // stored vector for re-ranking (may be null)
    bool operator<(const Entry& o) const { return dist < o.dist || (dist == o.dist && id < o.id); }
  };

  HammingTopK(size_t k, int32_t max_dist) : k_(k), t_(max_dist), counts_(static_cast<size_t>(max_dist) + 1, 0) {}

  size_t capacity() const { return k_; }
  // Rows with a larger distance cannot enter: select rows with dist <= threshold().
  int32_t threshold() const { return t_; }

  void push(int32_t d, idx_t id, const float* row) {
    if (d > t_ || (bounded_ && !(Entry{d, id, nullptr} < bound_))) return;
    buf_.push_back({d, id, row});
    ++counts_[d];
    ++at_or_below_;
    while (t_ > 0 && at_or_below_ - counts_[t_] >= k_) at_or_below_ -= counts_[t_--];
    if (buf_.size() >= 2 * k_ + 64) compact();
  }

  // The best k entries in order (fewer when fewer were pushed).
  std::vector<Entry> sorted() {
    compact();
    std::sort(buf_.begin(), buf_.end());
    if (buf_.size() > k_) buf_.resize(k_);
    return buf_;
  }

 private:
  void compact() {
    buf_.erase(std::remove_if(buf_.begin(), buf_.end(), [&](const Entry& e) { return e.dist > t_; }), buf_.end());
    if (buf_.size() >= 2 * k_ + 64) {  // many ties at the threshold: keep exactly the best k
      std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end());
      buf_.resize(k_);
      // The k-th entry now bounds every later one: ties at the threshold with a larger id are refused
      // at once (with ids ascending in storage order, all of them).
      bound_ = buf_[k_ - 1];
      bounded_ = true;
      std::fill(counts_.begin(), counts_.begin() + t_ + 1, 0);
      for (const Entry& e : buf_) ++counts_[e.dist];
      at_or_below_ = buf_.size();
    }
  }

  size_t k_;
  int32_t t_;
  std::vector<size_t> counts_;  // buffered entries per distance (valid up to t_)
  size_t at_or_below_ = 0;      // buffered entries with dist <= t_
  std::vector<Entry> buf_;
  Entry bound_{0, 0, nullptr};
  bool bounded_ = false;
};

}  // namespace adanns
