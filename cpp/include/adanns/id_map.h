// Where each id lives (list, offset), for removal and for rejecting duplicate ids.
#pragma once

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
  idx_t next_id() const { return next_id_; }
  void set_next_id(idx_t v) { next_id_ = v; }

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

  // Throws KeyError-style (UnknownId) unless every id is present and unique in the batch.
  void check_existing(const idx_t* ids, size_t n) const;

  // Ids for a batch added without ids: consecutive ones after the largest id seen so far. Refused
  // (ValueError) when they would pass 2^63-1 rather than wrap to negative ids.
  std::vector<idx_t> default_ids(size_t n) const {
    ADANNS_CHECK(n == 0 || (!exhausted_ && static_cast<uint64_t>(next_id_) + n <= (uint64_t{1} << 63)),
                 "cannot assign ", n, " default ids after the largest id so far: they would pass 2^63-1; "
                 "pass ids explicitly");
    std::vector<idx_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = next_id_ + static_cast<idx_t>(i);
    return out;
  }

  void note_added(idx_t id) {
    if (id < next_id_) return;
    if (id == std::numeric_limits<idx_t>::max()) {
      exhausted_ = true;  // no default id is left after this one
    } else {
      next_id_ = id + 1;
    }
  }

 private:
  std::unordered_map<idx_t, Location> map_;
  idx_t next_id_ = 0;
  bool exhausted_ = false;
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
