#include "adanns/filter.h"

#include <algorithm>
#include <cstring>

namespace adanns {

AllowedIds::AllowedIds(const idx_t* ids, size_t n) : ids_(ids), n_(n) {
  for (size_t i = 0; i < n; ++i) {
    ADANNS_CHECK(ids[i] >= 0, "filter ids must be >= 0; ids[", i, "] = ", ids[i]);
    ADANNS_CHECK(i == 0 || ids[i] > ids[i - 1], "filter ids must be ascending and unique; ids[", i, "] = ",
                 ids[i], " follows ", ids[i - 1]);
  }
}

AllowedIds::AllowedIds(const uint8_t* bits, size_t nbytes) : ids_(nullptr), n_(0) {
  words_.assign((nbytes + 7) / 8, 0);
  if (nbytes) std::memcpy(words_.data(), bits, nbytes);  // little-endian words: byte j holds ids 8j..8j+7
  nbits_ = static_cast<uint64_t>(nbytes) * 8;
  for (size_t w = 0; w < words_.size(); ++w) n_ += static_cast<size_t>(__builtin_popcountll(words_[w]));
  given_bitset_ = true;
}

void AllowedIds::list_ids() {
  if (!given_bitset_ || ids_) return;
  owned_ids_.reserve(n_);
  for (size_t w = 0; w < words_.size(); ++w)
    for (uint64_t word = words_[w]; word; word &= word - 1)
      owned_ids_.push_back(static_cast<idx_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(word))));
  ids_ = owned_ids_.data();
}

bool AllowedIds::build_bitset(size_t max_bits) {
  if (given_bitset_) return true;
  uint64_t bits = n_ ? static_cast<uint64_t>(ids_[n_ - 1]) + 1 : 0;
  if (bits > max_bits) return false;
  nbits_ = bits;
  words_.assign((bits + 63) / 64, 0);
  for (size_t i = 0; i < n_; ++i) {
    uint64_t u = static_cast<uint64_t>(ids_[i]);
    words_[u >> 6] |= uint64_t{1} << (u & 63);
  }
  return true;
}

FilterPlan plan_filter(AllowedIds* filter, size_t total, size_t keep, double brute_force_below) {
  if (!filter) return FilterPlan::None;
  const size_t m = filter->count();
  const size_t max_bits = std::max<size_t>(size_t{1} << 20, 32 * total);
  if (m > keep && static_cast<double>(m) > brute_force_below * static_cast<double>(total) &&
      filter->build_bitset(max_bits))
    return FilterPlan::Scan;
  filter->list_ids();
  return FilterPlan::Direct;
}

}  // namespace adanns
