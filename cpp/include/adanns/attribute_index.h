// Attribute indexes and the native filter compiler: a filter program in, the allowed ids out.
//
// Rows live in *slots*, numbered in the order they were added; a removed row's slot stays (dead,
// skipped) until the owner rebuilds the index, so writes never renumber anything and every index
// below is maintained incrementally:
// - keyword fields: a posting per value code, kept either as ascending slots (uint32) or, once the
//   value covers more than 1/32 of the slots, as a bitset over slots. The bitset then costs no more
//   memory than the slot list would, and a frequent value ANDs/ORs word-wise. This is roaring's
//   array/bitmap container choice made per posting instead of per 2^16 chunk: no dependency, and
//   the result is the plain bitset the search takes.
// - int/bool and float fields: the value per slot (for testing candidate rows) and the column sorted
//   by (value, slot) in two runs, a large main run and a small tail that absorbs adds and is merged
//   into the main run when it exceeds ~8 sqrt(main) entries, so listing a range is four binary
//   searches; plus range-encoded bitmaps ("value < cut" per bucket boundary, ~64 of them) so that a
//   broad range is two bitsets combined word-wise and two partial buckets, not a bit per row.
//
// A filter arrives as a compact prefix program (FilterOp below; the Python layer validates the
// expression and encodes it) and is executed in one call: in a conjunction the most selective
// condition is materialised as ascending slots and the others only test those slots; broad results
// are bitsets combined word-wise (AND / OR / AND-NOT).
#pragma once

#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "adanns/common.h"

namespace adanns {

enum class AttributeKind : int { Keyword = 0, Int = 1, Float = 2 };  // bool is stored as Int 0/1

// The program's opcodes, each followed by its operands (all int64; doubles as their bit patterns):
//   All                                   every live row
//   And n <n nodes>, Or n <n nodes>       (And 0 = All, Or 0 = no row)
//   Not <node>                            live rows the node does not match
//   Keyword field n code...               rows holding any of the codes
//   IntRange field lo hi                  lo <= value <= hi (int64, inclusive)
//   FloatRange field lo_bits hi_bits      lo <= value <= hi (double, inclusive)
//   Ids n id...                           rows holding any of the ids
enum class FilterOp : int64_t { All = 0, And = 1, Or = 2, Not = 3, Keyword = 4, IntRange = 5, FloatRange = 6, Ids = 7 };

// The allowed ids of a compiled filter: a bitset over ids (bit i of word i/64 = id i; used when
// slot s holds id s for every live slot, so the slot bitset is the answer) or ascending ids.
struct CompiledFilter {
  bool is_bitset = false;
  std::vector<uint64_t> bits;  // is_bitset: covers ids [0, nbits)
  size_t nbits = 0;
  std::vector<idx_t> ids;      // otherwise
  size_t count = 0;            // allowed ids
};

class AttributeIndex {
 public:
  // ---- writes (exclusive lock)
  // Declares field number `field` (fields are numbered 0, 1, ... by the caller).
  void declare(size_t field, AttributeKind kind);
  // Appends rows with these ids (not present yet: ValueError); returns the first new slot. Their
  // values are then given per field with set_*; a field not given is missing for them.
  size_t append_rows(const idx_t* ids, size_t n);
  // Keyword values of rows first_slot.. : row i holds codes[offsets[i] .. offsets[i+1]).
  void set_keywords(size_t field, size_t first_slot, size_t n, const int64_t* offsets, const int32_t* codes);
  // Numeric values of rows first_slot.. (present[i] == 0: missing).
  void set_ints(size_t field, size_t first_slot, size_t n, const int64_t* values, const uint8_t* present);
  void set_floats(size_t field, size_t first_slot, size_t n, const double* values, const uint8_t* present);
  // Marks the rows of these ids dead; unknown ids are skipped. Returns how many were removed.
  size_t remove(const idx_t* ids, size_t n);

  // ---- reads (shared lock)
  // The slot of each id (-1: not held).
  void slots_of(const idx_t* ids, size_t n, int64_t* out) const;
  size_t live() const { return live_count_; }
  size_t slots() const { return slot_ids_.size(); }
  // Executes a program (ValueError when malformed).
  CompiledFilter compile(const int64_t* program, size_t length) const;

 private:
  struct Posting {
    std::vector<uint32_t> slots;  // ascending, while sparse
    std::vector<uint64_t> bits;   // once dense
    bool dense = false;
    size_t count = 0;
    bool contains(uint32_t s) const;
  };
  template <class K>
  struct Sorted {  // (value, slot) pairs in a main run and a tail run, each ascending
    std::vector<std::pair<K, uint32_t>> main, tail;
    // Range-encoded bitmaps: below[j] = slots whose value is < cuts[j]. The cuts split the main
    // run into ~64 buckets (a value too frequent for one bucket gets its own), so a broad range is
    // below[j2] AND NOT below[j1] plus two partial buckets listed from the runs.
    std::vector<K> cuts;
    std::vector<std::vector<uint64_t>> below;
    void insert(std::vector<std::pair<K, uint32_t>> fresh);
    void rebuild_cuts();
    size_t count(K lo, K hi) const;
    void collect(K lo, K hi, std::vector<uint32_t>* out) const;  // unsorted slots
    // Sets the bits of the slots holding a value in [lo, hi] in `bits` (words cover every slot).
    void set_range(K lo, K hi, std::vector<uint64_t>* bits) const;
  };
  struct Field {
    AttributeKind kind = AttributeKind::Keyword;
    std::vector<Posting> postings;  // keyword: by code
    std::vector<int64_t> ints;      // per slot
    std::vector<double> floats;     // per slot
    std::vector<uint64_t> present;  // bit per slot (numeric)
    Sorted<int64_t> int_sorted;
    Sorted<double> float_sorted;
  };
  struct Node;
  struct Set;
  class Executor;

  Field& field(size_t f, AttributeKind kind);
  void check_slots(size_t first_slot, size_t n) const;

  mutable std::shared_mutex mutex_;
  std::vector<Field> fields_;
  std::vector<bool> declared_;
  std::vector<idx_t> slot_ids_;   // id per slot (dead slots included)
  std::vector<uint64_t> live_;    // bit per slot
  size_t live_count_ = 0;
  std::unordered_map<idx_t, uint32_t> slot_of_;
  bool identity_ = true;          // slot s holds id s for every slot and none is dead
  bool ascending_ = true;         // ids ascend with slots
};

}  // namespace adanns
