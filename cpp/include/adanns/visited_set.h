// The nodes one graph walk has visited: a small open-addressing hash table, cleared when a walk begins.
//
// Why not a mark per node: a walk visits a few hundred to a few thousand nodes, but a mark array spans
// the whole graph (4 bytes per node), so on a large graph nearly every check is a cache miss that
// stands between fetching a node's links and requesting its neighbours' rows. This table holds two to
// eight slots per node visited (4 bytes each): a few kilobytes, cleared by one sequential memset that
// the hardware prefetcher streams even when the table was evicted since the last walk (a table of
// epoch-tagged entries skips the clearing but is touched at random, one miss per line when cold:
// measured, 12% of a single query's walk after another index's query).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace adanns {

class VisitedSet {
 public:
  // Starts a new walk: every node counts as unvisited. The table shrinks back after a walk that
  // used little of it, so one wide walk does not make every later walk clear a large table.
  void begin() {
    if (table_.empty() || (table_.size() > kMinSlots && 8 * count_ < table_.size()))
      resize(table_.empty() ? kMinSlots : table_.size() / 2);
    else
      std::memset(table_.data(), 0, table_.size() * sizeof(uint32_t));
    count_ = 0;
  }

  // True the first time `node` is inserted in this walk, false after. node < 2^32 - 1.
  bool insert(uint32_t node) {
    if (2 * (count_ + 1) > table_.size()) grow();
    return place(node + 1);
  }

  size_t size() const { return count_; }

 private:
  static constexpr size_t kMinSlots = 1024;

  size_t home(uint32_t key) const {  // Fibonacci hashing: neighbouring ids land far apart
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  // Linear probing over keys node + 1 (0: a free slot).
  bool place(uint32_t key) {
    const size_t mask = table_.size() - 1;
    for (size_t i = home(key);; i = (i + 1) & mask) {
      if (table_[i] == key) return false;
      if (table_[i] == 0) {
        table_[i] = key;
        ++count_;
        return true;
      }
    }
  }

  void resize(size_t slots) {  // slots: a power of two
    table_.assign(slots, 0);
    shift_ = 64;
    for (size_t s = slots; s > 1; s >>= 1) --shift_;
  }

  void grow() {
    std::vector<uint32_t> old;
    old.swap(table_);
    resize(old.size() * 2);
    count_ = 0;
    for (uint32_t key : old)
      if (key) place(key);
  }

  std::vector<uint32_t> table_;
  unsigned shift_ = 64;
  size_t count_ = 0;
};

}  // namespace adanns
