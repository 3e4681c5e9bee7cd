#include "adanns/mih.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "adanns/common.h"

namespace adanns {

namespace {

inline uint64_t mix(uint64_t k) {  // splitmix64 finaliser: substrings of real codes are far from uniform
  k ^= k >> 30;
  k *= 0xBF58476D1CE4E5B9ull;
  k ^= k >> 27;
  k *= 0x94D049BB133111EBull;
  return k ^ (k >> 31);
}

double binomial(size_t n, size_t k) {
  double r = 1;
  for (size_t i = 0; i < k; ++i) r = r * static_cast<double>(n - i) / static_cast<double>(i + 1);
  return r;
}

// Calls fn(key') for every key' within `left` bit flips of key among bits >= from (bits < nbits).
template <class Fn>
void neighbours(uint64_t key, size_t nbits, size_t from, int left, Fn& fn) {
  fn(key);
  if (left == 0) return;
  for (size_t b = from; b < nbits; ++b) neighbours(key ^ (1ull << b), nbits, b + 1, left - 1, fn);
}

}  // namespace

MultiIndexHash::MultiIndexHash(const uint64_t* codes, size_t n, size_t stride, size_t code_bytes,
                               size_t substrings)
    : n_(n) {
  ADANNS_CHECK(n < std::numeric_limits<uint32_t>::max(), "multi-index hashing holds at most 2^32 - 1 codes");
  if (substrings == 0) substrings = auto_substrings(n, code_bytes);
  bounds_ = layout(code_bytes, substrings);
  tables_.resize(substrings);
  std::vector<std::pair<uint64_t, uint32_t>> kr(n);
  for (size_t t = 0; t < substrings; ++t) {
    Table& tb = tables_[t];
    for (size_t i = 0; i < n; ++i) kr[i] = {key_of(t, codes + i * stride), static_cast<uint32_t>(i)};
    std::sort(kr.begin(), kr.end());
    size_t distinct = 0;
    for (size_t i = 0; i < n; ++i) distinct += (i == 0 || kr[i].first != kr[i - 1].first);
    size_t cap = 16;
    while (cap < 2 * distinct) cap *= 2;
    tb.mask = cap - 1;
    tb.keys.assign(cap, 0);
    tb.used.assign(cap, 0);
    tb.begin.assign(cap, 0);
    tb.count.assign(cap, 0);
    tb.rows.resize(n);
    for (size_t i = 0; i < n;) {
      size_t e = i;
      while (e < n && kr[e].first == kr[i].first) ++e;
      size_t s = mix(kr[i].first) & tb.mask;
      while (tb.used[s]) s = (s + 1) & tb.mask;
      tb.used[s] = 1;
      tb.keys[s] = kr[i].first;
      tb.begin[s] = static_cast<uint32_t>(i);
      tb.count[s] = static_cast<uint32_t>(e - i);
      for (size_t r = i; r < e; ++r) tb.rows[r] = kr[r].second;
      i = e;
    }
  }
}

size_t MultiIndexHash::auto_substrings(size_t n, size_t code_bytes) {
  // About log2(n) bits per substring keeps buckets near one entry on well-spread codes.
  double bits = std::max(8.0, std::log2(std::max<double>(2.0, static_cast<double>(n))));
  size_t sub_bytes = std::min<size_t>(8, std::max<size_t>(1, static_cast<size_t>(std::lround(bits / 8.0))));
  return (code_bytes + sub_bytes - 1) / sub_bytes;
}

std::vector<size_t> MultiIndexHash::layout(size_t code_bytes, size_t substrings) {
  ADANNS_CHECK(substrings >= 1 && substrings <= code_bytes, "substrings must be in 1..", code_bytes, ", got ",
               substrings);
  ADANNS_CHECK((code_bytes + substrings - 1) / substrings <= 8, "substrings must be at most 8 bytes: need >= ",
               (code_bytes + 7) / 8, " substrings for ", code_bytes, "-byte codes");
  std::vector<size_t> b(substrings + 1);
  for (size_t t = 0; t <= substrings; ++t) b[t] = code_bytes * t / substrings;  // lengths differ by <= 1
  return b;
}

double MultiIndexHash::probes_for(const std::vector<size_t>& bounds, size_t bytes, int radius) {
  size_t m = 0;
  while (m + 1 < bounds.size() && bounds[m + 1] <= bytes) ++m;
  if (m == 0) return std::numeric_limits<double>::infinity();
  size_t r = static_cast<size_t>(radius) / m;
  double probes = 0;
  for (size_t t = 0; t < m; ++t) {
    size_t bits = 8 * (bounds[t + 1] - bounds[t]);
    for (size_t i = 0; i <= std::min(r, bits); ++i) probes += binomial(bits, i);
  }
  return probes;
}

double MultiIndexHash::estimate_probes(size_t code_bytes, size_t substrings, size_t bytes, int radius) {
  return probes_for(layout(code_bytes, substrings), bytes, radius);
}

uint64_t MultiIndexHash::key_of(size_t t, const uint64_t* code) const {
  uint64_t k = 0;
  std::memcpy(&k, reinterpret_cast<const uint8_t*>(code) + bounds_[t], bounds_[t + 1] - bounds_[t]);
  return k;
}

size_t MultiIndexHash::usable(size_t bytes) const {
  size_t u = 0;
  while (u < substrings() && bounds_[u + 1] <= bytes) ++u;
  return u;
}

size_t MultiIndexHash::find(const Table& tb, uint64_t key) const {
  size_t s = mix(key) & tb.mask;
  while (tb.used[s]) {
    if (tb.keys[s] == key) return s;
    s = (s + 1) & tb.mask;
  }
  return static_cast<size_t>(-1);
}

void MultiIndexHash::bucket(size_t t, uint64_t key, std::vector<uint32_t>& rows) const {
  const Table& tb = tables_[t];
  size_t s = find(tb, key);
  if (s == static_cast<size_t>(-1)) return;
  rows.insert(rows.end(), tb.rows.begin() + tb.begin[s], tb.rows.begin() + tb.begin[s] + tb.count[s]);
}

size_t MultiIndexHash::bucket_size(size_t t, uint64_t key) const {
  size_t s = find(tables_[t], key);
  return s == static_cast<size_t>(-1) ? 0 : tables_[t].count[s];
}

double MultiIndexHash::expected_probes(size_t bytes, int radius) const {
  return probes_for(bounds_, bytes, radius);
}

bool MultiIndexHash::candidates(const uint64_t* q, size_t bytes, int radius, std::vector<uint32_t>& rows,
                                size_t* probes) const {
  rows.clear();
  size_t m = usable(bytes);
  if (m == 0) return false;
  size_t count = 0;
  if (radius == 0) {
    // An exact match agrees on every substring: the smallest bucket alone holds every answer.
    size_t best = 0, best_size = static_cast<size_t>(-1);
    for (size_t t = 0; t < m; ++t) {
      size_t s = bucket_size(t, key_of(t, q));
      ++count;
      if (s < best_size) best = t, best_size = s;
    }
    if (best_size) bucket(best, key_of(best, q), rows);
  } else {
    int r = radius / static_cast<int>(m);
    for (size_t t = 0; t < m; ++t) {
      auto probe = [&](uint64_t key) {
        ++count;
        bucket(t, key, rows);
      };
      neighbours(key_of(t, q), 8 * (hi(t) - lo(t)), 0, r, probe);
    }
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  if (probes) *probes = count;
  return true;
}

}  // namespace adanns
