// The allowed ids of a filtered search and the planner's choice between its two strategies.
//
// A filter arrives as the sorted ids its expression matched (the Python layer compiles expressions
// over the attributes; the core knows ids only). The scan tests a bitset over *ids*, not over
// storage slots: the id is read right next to the row anyway, the bit sits in a bitset of a few
// bits per row that stays in cache, and ids do not move when rows are swapped on removal or live
// in other lists, so the same compiled filter serves every index kind with no translation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adanns/common.h"

namespace adanns {

// Default fraction of the stored rows below which a filter's allowed rows are scored directly
// (looked up by id, exact) instead of scanned with the bitset; measured in
// benchmarks/filtered_vs_faiss.py (README "Filtered search").
constexpr double kDefaultBruteForceBelow = 0.02;

class AllowedIds {
 public:
  // ids: ascending, unique, >= 0 (checked: ValueError). Not copied: must outlive the search.
  AllowedIds(const idx_t* ids, size_t n);
  // A bitset over ids as numpy.packbits(mask, bitorder="little") writes it: bit i%8 of byte i/8 set
  // means id i is allowed (the Python layer's result when row r holds id r: no id list to build).
  AllowedIds(const uint8_t* bits, size_t nbytes);

  size_t count() const { return n_; }
  // The allowed ids, ascending; for a given bitset only after list_ids() (the direct plan's need).
  const idx_t* ids() const { return ids_; }
  void list_ids();

  // Builds the bitset over [0, max id] unless it would exceed `max_bits` (ids too sparse); returns
  // whether it exists. Called once per search, before the workers start.
  bool build_bitset(size_t max_bits);
  bool allows(idx_t id) const {
    uint64_t u = static_cast<uint64_t>(id);
    return u < nbits_ && ((words_[u >> 6] >> (u & 63)) & 1);
  }

 private:
  const idx_t* ids_;
  size_t n_;
  std::vector<idx_t> owned_ids_;  // the ids of a bitset given as such
  bool given_bitset_ = false;
  std::vector<uint64_t> words_;
  uint64_t nbits_ = 0;
};

enum class FilterPlan { None, Direct, Scan };

// Direct (exact scoring of the allowed rows) when the filter allows at most `brute_force_below` x
// `total` rows or at most `keep` (every allowed row is a candidate anyway), or when its ids are too
// sparse for a bitset (at most 32 bits per stored row, or 2^20); otherwise Scan. Builds the bitset
// for Scan.
FilterPlan plan_filter(AllowedIds* filter, size_t total, size_t keep, double brute_force_below);

}  // namespace adanns
