// Where each id lives (list, offset), for removal and for rejecting duplicate ids.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "adanns/common.h"

namespace adanns {

struct Location {
  uint64_t list;
  uint64_t offset;
};

class IdMap {
 public:
  size_t size() const { return map_.size(); }
  bool contains(idx_t id) const { return map_.count(id) != 0; }
  const Location& at(idx_t id) const { return map_.at(id); }
  void set(idx_t id, Location loc) { map_[id] = loc; }
  void erase(idx_t id) { map_.erase(id); }
  void clear() { map_.clear(); }
  void reserve(size_t n) { map_.reserve(n); }
  // One past the largest id seen (at most 2^63 - 1 when the id 2^63 - 1 itself is held).
  idx_t next_id() const { return static_cast<idx_t>(std::min<uint64_t>(next_, kMaxId)); }
  void set_next_id(idx_t v) { next_ = static_cast<uint64_t>(std::max<idx_t>(v, 0)); }

  // Throws unless every id is >= 0, unique in the batch and absent from the map.
  void check_new(const idx_t* ids, size_t n) const {
    std::unordered_set<idx_t> seen;
    seen.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ADANNS_CHECK(ids[i] >= 0, "ids must be >= 0; ids[", i, "] = ", ids[i]);
      ADANNS_CHECK(seen.insert(ids[i]).second, "duplicate id ", ids[i], " in the batch (ids[", i, "])");
      ADANNS_CHECK(!contains(ids[i]), "id ", ids[i], " is already in the index (ids[", i, "])");
    }
  }

  // check_new for ids read from a file: a bad one means a corrupt file, not a bad batch.
  void check_loaded(const idx_t* ids, size_t n) const {
    try {
      check_new(ids, n);
    } catch (const Error& e) {
      raise("corrupt index file: ", e.what());
    }
  }

  // Throws KeyError-style (UnknownId) unless every id is present and unique in the batch.
  void check_existing(const idx_t* ids, size_t n) const;

  // Ids for a batch given none: consecutive after the largest id seen so far; refused (not wrapped
  // to negative ids) when they would pass 2^63 - 1.
  std::vector<idx_t> default_ids(size_t n) const {
    ADANNS_CHECK(n <= kMaxId + 1 - next_, "default ids for ", n, " vectors would pass 2^63 - 1 (the largest id "
                 "held is ", next_ - 1, "): pass ids explicitly");
    std::vector<idx_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<idx_t>(next_ + i);
    return out;
  }
  void note_added(idx_t id) {
    if (id >= 0 && static_cast<uint64_t>(id) >= next_) next_ = static_cast<uint64_t>(id) + 1;
  }

 private:
  static constexpr uint64_t kMaxId = static_cast<uint64_t>(std::numeric_limits<idx_t>::max());
  std::unordered_map<idx_t, Location> map_;
  uint64_t next_ = 0;  // up to 2^63, which no idx_t holds
};

// An id given to remove() that the index does not hold: the bindings raise KeyError.
class UnknownId : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

inline void IdMap::check_existing(const idx_t* ids, size_t n) const {
  std::unordered_set<idx_t> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!contains(ids[i])) raise<UnknownId>("id ", ids[i], " is not in the index (ids[", i, "])");
    ADANNS_CHECK(seen.insert(ids[i]).second, "duplicate id ", ids[i], " in the batch (ids[", i, "])");
  }
}

}  // namespace adanns
