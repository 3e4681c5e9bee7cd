// Multi-index hashing (Norouzi, Punjani & Fleet): codes are cut into m byte-aligned substrings with
// one hash table each. A code within Hamming distance r of a query agrees with it to within
// floor(r / m') bits on at least one of any m' substrings (pigeonhole), so probing every key within
// that distance in each table yields a superset of the answer, which is then verified exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace adanns {

class MultiIndexHash {
 public:
  // Tables over rows of `codes` (n rows, `stride` words each, the first code_bytes bytes used), cut
  // into `substrings` pieces of whole bytes (0: chosen from n, about log2(n) bits each).
  MultiIndexHash(const uint64_t* codes, size_t n, size_t stride, size_t code_bytes, size_t substrings);

  size_t substrings() const { return bounds_.size() - 1; }
  // Byte range [lo, hi) of substring t.
  size_t lo(size_t t) const { return bounds_[t]; }
  size_t hi(size_t t) const { return bounds_[t + 1]; }
  // Substrings that lie inside the first `bytes` bytes (usable for a prefix search).
  size_t usable(size_t bytes) const;

  // Appends to `rows` every row whose substring t equals `key` (row indices, unsorted).
  void bucket(size_t t, uint64_t key, std::vector<uint32_t>& rows) const;
  size_t bucket_size(size_t t, uint64_t key) const;
  // The key of substring t of a code (bytes lo..hi, little-endian).
  uint64_t key_of(size_t t, const uint64_t* code) const;

  // Rows whose distance to `q` over the first `bytes` bytes may be <= radius: the candidates for a
  // range search, sorted and unique. Returns false (and leaves rows empty) when no substring lies in
  // the prefix. `probes` counts the keys looked up.
  bool candidates(const uint64_t* q, size_t bytes, int radius, std::vector<uint32_t>& rows, size_t* probes) const;
  // Keys probed per query for this radius and prefix (cost model for choosing MIH or a scan).
  double expected_probes(size_t bytes, int radius) const;
  // The same for a layout not built yet, and the substring count chosen for n codes.
  static double estimate_probes(size_t code_bytes, size_t substrings, size_t bytes, int radius);
  static size_t auto_substrings(size_t n, size_t code_bytes);
  size_t rows() const { return n_; }

 private:
  struct Table {
    std::vector<uint64_t> keys;      // open addressing, capacity a power of two; kEmpty = unused
    std::vector<uint32_t> begin;     // per slot: first index into `rows`
    std::vector<uint32_t> count;     // per slot: number of rows
    std::vector<uint32_t> rows;      // row indices grouped by key
    std::vector<uint8_t> used;
    uint64_t mask = 0;
  };
  static std::vector<size_t> layout(size_t code_bytes, size_t substrings);
  static double probes_for(const std::vector<size_t>& bounds, size_t bytes, int radius);
  size_t find(const Table& tb, uint64_t key) const;  // slot or SIZE_MAX
  size_t n_;
  std::vector<size_t> bounds_;
  std::vector<Table> tables_;
};

}  // namespace adanns
