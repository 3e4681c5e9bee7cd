#include "adanns/attribute_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace adanns {

namespace {

bool test_bit(const std::vector<uint64_t>& bits, uint32_t s) {
  size_t w = s >> 6;
  return w < bits.size() && ((bits[w] >> (s & 63)) & 1);
}

void set_bit(std::vector<uint64_t>* bits, uint32_t s) {
  size_t w = s >> 6;
  if (w >= bits->size()) bits->resize(std::max(w + 1, bits->size() * 2), 0);
  (*bits)[w] |= uint64_t{1} << (s & 63);
}

size_t popcount(const std::vector<uint64_t>& bits) {
  size_t n = 0;
  for (uint64_t w : bits) n += static_cast<size_t>(__builtin_popcountll(w));
  return n;
}

// Keeps the rows whose flag is set (rows and flags aligned).
void keep_flagged(std::vector<uint32_t>* rows, const std::vector<char>& flag) {
  size_t o = 0;
  for (size_t i = 0; i < rows->size(); ++i)
    if (flag[i]) (*rows)[o++] = (*rows)[i];
  rows->resize(o);
}

constexpr size_t kMaxDepth = 200;  // nesting of the program (the Python encoder stays far below)

}  // namespace

bool AttributeIndex::Posting::contains(uint32_t s) const {
  if (dense) return test_bit(bits, s);
  return std::binary_search(slots.begin(), slots.end(), s);
}

template <class K>
void AttributeIndex::Sorted<K>::insert(std::vector<std::pair<K, uint32_t>> fresh) {
  std::sort(fresh.begin(), fresh.end());
  std::vector<std::pair<K, uint32_t>> merged(tail.size() + fresh.size());
  std::merge(tail.begin(), tail.end(), fresh.begin(), fresh.end(), merged.begin());
  // The tail stays small enough that a range costs two short binary searches more, and merging it
  // into the main run (O(main)) happens rarely enough that one-row adds stay O(sqrt(main)) each.
  const size_t limit = std::max<size_t>(1024, static_cast<size_t>(8 * std::sqrt(static_cast<double>(main.size()))));
  if (merged.size() <= limit) {
    for (const auto& p : fresh)  // value < cuts[j] for every cut above the value
      for (size_t j = static_cast<size_t>(std::upper_bound(cuts.begin(), cuts.end(), p.first) - cuts.begin());
           j < cuts.size(); ++j)
        set_bit(&below[j], p.second);
    tail = std::move(merged);
    return;
  }
  std::vector<std::pair<K, uint32_t>> all(main.size() + merged.size());
  std::merge(main.begin(), main.end(), merged.begin(), merged.end(), all.begin());
  main = std::move(all);
  tail.clear();
  rebuild_cuts();
}

template <class K>
void AttributeIndex::Sorted<K>::rebuild_cuts() {
  constexpr size_t kBuckets = 64;
  const size_t target = std::max<size_t>(64, main.size() / kBuckets);
  cuts.clear();
  below.clear();
  size_t max_slot = 0;
  for (const auto& p : main) max_slot = std::max<size_t>(max_slot, p.second);
  std::vector<uint64_t> cur((max_slot + 64) / 64, 0);
  size_t bucket = 0;
  for (size_t i = 0; i < main.size();) {
    size_t j = i;  // the run of equal values main[i..j)
    while (j < main.size() && !(main[i].first < main[j].first)) ++j;
    // A cut before this run when the bucket is full, or when the run alone would overfill one.
    if (bucket > 0 && (bucket >= target || j - i >= target)) {
      cuts.push_back(main[i].first);
      below.push_back(cur);
      bucket = 0;
    }
    for (size_t r = i; r < j; ++r) cur[main[r].second >> 6] |= uint64_t{1} << (main[r].second & 63);
    bucket += j - i;
    i = j;
  }
}

template <class K>
void AttributeIndex::Sorted<K>::set_range(K lo, K hi, std::vector<uint64_t>* bits) const {
  if (hi < lo) return;
  std::vector<uint32_t> edge;
  const size_t j1 = static_cast<size_t>(std::lower_bound(cuts.begin(), cuts.end(), lo) - cuts.begin());
  const size_t j2 = static_cast<size_t>(std::upper_bound(cuts.begin(), cuts.end(), hi) - cuts.begin());
  if (j2 >= j1 + 2) {  // cuts[j1] <= v < cuts[j2 - 1]: whole buckets, word-wise
    const auto& a = below[j1];
    const auto& b = below[j2 - 1];
    for (size_t w = 0; w < bits->size(); ++w) {
      const uint64_t bw = w < b.size() ? b[w] : 0, aw = w < a.size() ? a[w] : 0;
      (*bits)[w] |= bw & ~aw;
    }
    // The partial buckets: [lo, cuts[j1]) and [cuts[j2 - 1], hi].
    for (const auto* run : {&main, &tail}) {
      auto a0 = std::lower_bound(run->begin(), run->end(), lo, [](const auto& p, K v) { return p.first < v; });
      auto a1 = std::lower_bound(a0, run->end(), cuts[j1], [](const auto& p, K v) { return p.first < v; });
      for (; a0 != a1; ++a0) edge.push_back(a0->second);
      auto b0 = std::lower_bound(run->begin(), run->end(), cuts[j2 - 1], [](const auto& p, K v) { return p.first < v; });
      auto b1 = std::upper_bound(b0, run->end(), hi, [](K v, const auto& p) { return v < p.first; });
      for (; b0 != b1; ++b0) edge.push_back(b0->second);
    }
  } else {
    collect(lo, hi, &edge);
  }
  for (uint32_t x : edge) (*bits)[x >> 6] |= uint64_t{1} << (x & 63);
}

template <class K>
size_t AttributeIndex::Sorted<K>::count(K lo, K hi) const {
  if (hi < lo) return 0;
  size_t n = 0;
  for (const auto* run : {&main, &tail}) {
    auto a = std::lower_bound(run->begin(), run->end(), lo, [](const auto& p, K v) { return p.first < v; });
    auto b = std::upper_bound(a, run->end(), hi, [](K v, const auto& p) { return v < p.first; });
    n += static_cast<size_t>(b - a);
  }
  return n;
}

template <class K>
void AttributeIndex::Sorted<K>::collect(K lo, K hi, std::vector<uint32_t>* out) const {
  if (hi < lo) return;
  for (const auto* run : {&main, &tail}) {
    auto a = std::lower_bound(run->begin(), run->end(), lo, [](const auto& p, K v) { return p.first < v; });
    auto b = std::upper_bound(a, run->end(), hi, [](K v, const auto& p) { return v < p.first; });
    for (; a != b; ++a) out->push_back(a->second);
  }
}

// ---- writes

AttributeIndex::Field& AttributeIndex::field(size_t f, AttributeKind kind) {
  ADANNS_CHECK(f < fields_.size() && declared_[f], "attribute field ", f, " is not declared");
  ADANNS_CHECK(fields_[f].kind == kind, "attribute field ", f, " has another type");
  return fields_[f];
}

void AttributeIndex::check_slots(size_t first_slot, size_t n) const {
  ADANNS_CHECK(first_slot <= slot_ids_.size() && n <= slot_ids_.size() - first_slot, "attribute rows ", first_slot,
               "..", first_slot + n, " are not appended yet (", slot_ids_.size(), " slots)");
}

void AttributeIndex::declare(size_t f, AttributeKind kind) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  if (f >= fields_.size()) {
    fields_.resize(f + 1);
    declared_.resize(f + 1, false);
  }
  ADANNS_CHECK(!declared_[f] || fields_[f].kind == kind, "attribute field ", f, " is already declared with another type");
  fields_[f].kind = kind;
  declared_[f] = true;
}

size_t AttributeIndex::append_rows(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  const size_t first = slot_ids_.size();
  ADANNS_CHECK(first + n < (uint64_t{1} << 32), "an attribute index holds at most 2^32 - 1 rows");
  for (size_t i = 0; i < n; ++i)
    ADANNS_CHECK(slot_of_.find(ids[i]) == slot_of_.end(), "attribute rows: id ", ids[i], " is already held");
  for (size_t i = 0; i < n; ++i) {
    ADANNS_CHECK(slot_of_.emplace(ids[i], static_cast<uint32_t>(first + i)).second, "attribute rows: id ", ids[i],
                 " appears twice in one batch");
  }
  for (size_t i = 0; i < n; ++i) {
    const uint32_t s = static_cast<uint32_t>(first + i);
    if (ids[i] != static_cast<idx_t>(s)) identity_ = false;
    if (!slot_ids_.empty() && ids[i] <= slot_ids_.back()) ascending_ = false;
    slot_ids_.push_back(ids[i]);
    set_bit(&live_, s);
  }
  live_.resize((slot_ids_.size() + 63) / 64);
  live_count_ += n;
  return first;
}

void AttributeIndex::set_keywords(size_t f, size_t first_slot, size_t n, const int64_t* offsets, const int32_t* codes) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  Field& fd = field(f, AttributeKind::Keyword);
  check_slots(first_slot, n);
  ADANNS_CHECK(offsets[0] == 0, "keyword offsets must start at 0");
  for (size_t i = 0; i < n; ++i) {
    ADANNS_CHECK(offsets[i + 1] >= offsets[i], "keyword offsets must not decrease");
    const uint32_t s = static_cast<uint32_t>(first_slot + i);
    for (int64_t j = offsets[i]; j < offsets[i + 1]; ++j) {
      ADANNS_CHECK(codes[j] >= 0, "keyword codes must be >= 0, got ", codes[j]);
      const size_t c = static_cast<size_t>(codes[j]);
      if (c >= fd.postings.size()) fd.postings.resize(c + 1);
      Posting& p = fd.postings[c];
      if (p.contains(s)) continue;  // a value listed twice in one row
      ++p.count;
      if (p.dense) {
        set_bit(&p.bits, s);
        continue;
      }
      p.slots.push_back(s);  // slots arrive ascending, so the list stays sorted
      // Past 1/32 of the slots a bitset is no larger than the list: switch (see the header).
      if (p.count >= 64 && p.count * 32 > slot_ids_.size()) {
        p.bits.assign((slot_ids_.size() + 63) / 64, 0);
        for (uint32_t x : p.slots) p.bits[x >> 6] |= uint64_t{1} << (x & 63);
        p.slots = {};
        p.dense = true;
      }
    }
  }
}

void AttributeIndex::set_ints(size_t f, size_t first_slot, size_t n, const int64_t* values, const uint8_t* present) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  Field& fd = field(f, AttributeKind::Int);
  check_slots(first_slot, n);
  if (fd.ints.size() < first_slot + n) fd.ints.resize(first_slot + n, 0);
  std::vector<std::pair<int64_t, uint32_t>> fresh;
  for (size_t i = 0; i < n; ++i) {
    if (!present[i]) continue;
    const uint32_t s = static_cast<uint32_t>(first_slot + i);
    fd.ints[s] = values[i];
    set_bit(&fd.present, s);
    fresh.emplace_back(values[i], s);
  }
  fd.int_sorted.insert(std::move(fresh));
}

void AttributeIndex::set_floats(size_t f, size_t first_slot, size_t n, const double* values, const uint8_t* present) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  Field& fd = field(f, AttributeKind::Float);
  check_slots(first_slot, n);
  if (fd.floats.size() < first_slot + n) fd.floats.resize(first_slot + n, 0);
  std::vector<std::pair<double, uint32_t>> fresh;
  for (size_t i = 0; i < n; ++i) {
    if (!present[i]) continue;
    ADANNS_CHECK(std::isfinite(values[i]), "float attribute values must be finite, got ", values[i]);
    const uint32_t s = static_cast<uint32_t>(first_slot + i);
    fd.floats[s] = values[i];
    set_bit(&fd.present, s);
    fresh.emplace_back(values[i], s);
  }
  fd.float_sorted.insert(std::move(fresh));
}

size_t AttributeIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mutex_);
  size_t removed = 0;
  for (size_t i = 0; i < n; ++i) {
    auto it = slot_of_.find(ids[i]);
    if (it == slot_of_.end()) continue;
    const uint32_t s = it->second;
    live_[s >> 6] &= ~(uint64_t{1} << (s & 63));
    slot_of_.erase(it);
    ++removed;
  }
  live_count_ -= removed;
  if (removed) identity_ = false;
  return removed;
}

void AttributeIndex::slots_of(const idx_t* ids, size_t n, int64_t* out) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  for (size_t i = 0; i < n; ++i) {
    auto it = slot_of_.find(ids[i]);
    out[i] = it == slot_of_.end() ? -1 : static_cast<int64_t>(it->second);
  }
}

// ---- the program and its execution

struct AttributeIndex::Node {
  FilterOp op = FilterOp::All;
  size_t field = 0;
  const int64_t* args = nullptr;  // Keyword codes / Ids
  size_t nargs = 0;
  int64_t ilo = 0, ihi = 0;
  double flo = 0, fhi = 0;
  std::vector<Node> kids;
};

// A partial result: ascending slots while small, a bitset over the slots otherwise.
struct AttributeIndex::Set {
  bool dense = false;
  std::vector<uint32_t> slots;
  std::vector<uint64_t> bits;
};

class AttributeIndex::Executor {
 public:
  explicit Executor(const AttributeIndex& ix)
      : ix_(ix), nslots_(ix.slot_ids_.size()), words_((nslots_ + 63) / 64),
        small_(std::max<size_t>(64, nslots_ / 32)) {}

  Node parse(const int64_t* prog, size_t len, size_t* pos, size_t depth) const {
    ADANNS_CHECK(depth < kMaxDepth, "filter program nested deeper than ", kMaxDepth);
    auto next = [&]() {
      ADANNS_CHECK(*pos < len, "filter program ends early");
      return prog[(*pos)++];
    };
    Node n;
    const int64_t op = next();
    ADANNS_CHECK(op >= 0 && op <= 7, "filter program: unknown opcode ", op);
    n.op = static_cast<FilterOp>(op);
    auto field_of = [&](AttributeKind kind) {
      const int64_t f = next();
      ADANNS_CHECK(f >= 0 && static_cast<size_t>(f) < ix_.fields_.size() && ix_.declared_[f] &&
                       ix_.fields_[f].kind == kind,
                   "filter program: field ", f, " is not a declared field of that type");
      return static_cast<size_t>(f);
    };
    auto count = [&]() {  // an operand count: at most the words left (each operand or node takes one)
      const int64_t c = next();
      ADANNS_CHECK(c >= 0 && static_cast<size_t>(c) <= len - *pos, "filter program: bad count ", c);
      return static_cast<size_t>(c);
    };
    switch (n.op) {
      case FilterOp::All:
        break;
      case FilterOp::And:
      case FilterOp::Or: {
        const size_t c = count();
        for (size_t i = 0; i < c; ++i) n.kids.push_back(parse(prog, len, pos, depth + 1));
        break;
      }
      case FilterOp::Not:
        n.kids.push_back(parse(prog, len, pos, depth + 1));
        break;
      case FilterOp::Keyword:
        n.field = field_of(AttributeKind::Keyword);
        n.nargs = count();
        n.args = prog + *pos;
        *pos += n.nargs;
        break;
      case FilterOp::IntRange:
        n.field = field_of(AttributeKind::Int);
        n.ilo = next();
        n.ihi = next();
        break;
      case FilterOp::FloatRange: {
        n.field = field_of(AttributeKind::Float);
        int64_t lo = next(), hi = next();
        std::memcpy(&n.flo, &lo, sizeof lo);
        std::memcpy(&n.fhi, &hi, sizeof hi);
        break;
      }
      case FilterOp::Ids:
        n.nargs = count();
        n.args = prog + *pos;
        *pos += n.nargs;
        break;
    }
    return n;
  }

  // Rows the node matches, at most (dead rows included; the final result drops them).
  size_t estimate(const Node& n) const {
    switch (n.op) {
      case FilterOp::All:
        return ix_.live_count_;
      case FilterOp::And: {
        size_t m = ix_.live_count_;
        for (const Node& k : n.kids) m = std::min(m, estimate(k));
        return m;
      }
      case FilterOp::Or: {
        size_t s = 0;
        for (const Node& k : n.kids) s += estimate(k);
        return std::min(s, nslots_);
      }
      case FilterOp::Not:
        return nslots_ - std::min(nslots_, estimate(n.kids[0]));
      case FilterOp::Keyword: {
        size_t s = 0;
        for (size_t i = 0; i < n.nargs; ++i)
          if (const Posting* p = posting(n, i)) s += p->count;
        return std::min(s, nslots_);
      }
      case FilterOp::IntRange:
        return ix_.fields_[n.field].int_sorted.count(n.ilo, n.ihi);
      case FilterOp::FloatRange:
        return ix_.fields_[n.field].float_sorted.count(n.flo, n.fhi);
      case FilterOp::Ids:
        return n.nargs;
    }
    return nslots_;
  }

  Set materialise(const Node& n) const {
    switch (n.op) {
      case FilterOp::All:
        return dense(ix_.live_);
      case FilterOp::And:
        return conjunction(n);
      case FilterOp::Or:
        return disjunction(n);
      case FilterOp::Not: {
        Set s = dense_of(materialise(n.kids[0]));
        for (size_t w = 0; w < words_; ++w) s.bits[w] = ix_.live_[w] & ~s.bits[w];
        return s;
      }
      case FilterOp::Keyword: {
        std::vector<const Posting*> ps;
        size_t total = 0;
        bool any_dense = false;
        for (size_t i = 0; i < n.nargs; ++i)
          if (const Posting* p = posting(n, i)) {
            ps.push_back(p);
            total += p->count;
            any_dense |= p->dense;
          }
        if (!any_dense && total <= small_) {
          Set s;
          for (const Posting* p : ps) s.slots.insert(s.slots.end(), p->slots.begin(), p->slots.end());
          if (ps.size() > 1) sort_unique(&s.slots);
          return s;
        }
        Set s = dense({});
        for (const Posting* p : ps) {
          if (p->dense) {
            const size_t m = std::min(words_, p->bits.size());
            for (size_t w = 0; w < m; ++w) s.bits[w] |= p->bits[w];
          } else {
            for (uint32_t x : p->slots) s.bits[x >> 6] |= uint64_t{1} << (x & 63);
          }
        }
        return s;
      }
      case FilterOp::IntRange:
      case FilterOp::FloatRange: {
        const Field& fd = ix_.fields_[n.field];
        Set s;
        const size_t m = estimate(n);
        // Listing a range yields slots in value order; past a few hundred, setting them in a bitset
        // (whole buckets word-wise) and reading it back in slot order beats sorting them.
        if (m > 256) {
          s = dense({});
          if (n.op == FilterOp::IntRange)
            fd.int_sorted.set_range(n.ilo, n.ihi, &s.bits);
          else
            fd.float_sorted.set_range(n.flo, n.fhi, &s.bits);
          if (m <= small_) {
            s.slots = slots_of_set(std::move(s));
            s.dense = false;
            s.bits = {};
          }
          return s;
        }
        if (n.op == FilterOp::IntRange)
          fd.int_sorted.collect(n.ilo, n.ihi, &s.slots);
        else
          fd.float_sorted.collect(n.flo, n.fhi, &s.slots);
        std::sort(s.slots.begin(), s.slots.end());
        return s;
      }
      case FilterOp::Ids: {
        Set s;
        for (size_t i = 0; i < n.nargs; ++i) {
          auto it = ix_.slot_of_.find(n.args[i]);
          if (it != ix_.slot_of_.end()) s.slots.push_back(it->second);
        }
        sort_unique(&s.slots);
        return s;
      }
    }
    return dense({});
  }

  // Keeps the ascending `rows` the node matches.
  void filter(const Node& n, std::vector<uint32_t>* rows) const {
    if (rows->empty()) return;
    switch (n.op) {
      case FilterOp::All:
        return;
      case FilterOp::And:
        for (const Node* k : by_estimate(n)) filter(*k, rows);
        return;
      case FilterOp::Or: {
        std::vector<char> hit(rows->size(), 0);
        for (const Node& k : n.kids) {
          std::vector<uint32_t> open;
          for (size_t i = 0; i < rows->size(); ++i)
            if (!hit[i]) open.push_back((*rows)[i]);
          filter(k, &open);
          mark(*rows, open, &hit);
        }
        keep_flagged(rows, hit);
        return;
      }
      case FilterOp::Not: {
        std::vector<uint32_t> matched = *rows;
        filter(n.kids[0], &matched);
        std::vector<char> hit(rows->size(), 0);
        mark(*rows, matched, &hit);
        for (char& h : hit) h = !h;
        keep_flagged(rows, hit);
        return;
      }
      case FilterOp::Keyword: {
        std::vector<char> hit(rows->size(), 0);
        if (n.nargs > 1 && n.nargs * rows->size() > words_) {  // many values, many rows: one bitset, then bit tests
          const Set s = dense_of(materialise(n));
          for (size_t r = 0; r < rows->size(); ++r) hit[r] = test_bit(s.bits, (*rows)[r]);
          keep_flagged(rows, hit);
          return;
        }
        for (size_t i = 0; i < n.nargs; ++i) {
          const Posting* p = posting(n, i);
          if (!p) continue;
          if (p->dense) {
            for (size_t r = 0; r < rows->size(); ++r) hit[r] |= test_bit(p->bits, (*rows)[r]);
          } else if (p->slots.size() <= 16 * rows->size()) {  // a merge walk: rows + posting steps
            auto it = p->slots.begin();
            for (size_t r = 0; r < rows->size(); ++r) {
              while (it != p->slots.end() && *it < (*rows)[r]) ++it;
              if (it == p->slots.end()) break;
              if (*it == (*rows)[r]) hit[r] = 1;
            }
          } else {  // a long posting: binary searches, each starting where the last ended
            auto it = p->slots.begin();
            for (size_t r = 0; r < rows->size() && it != p->slots.end(); ++r) {
              it = std::lower_bound(it, p->slots.end(), (*rows)[r]);
              if (it != p->slots.end() && *it == (*rows)[r]) hit[r] = 1;
            }
          }
        }
        keep_flagged(rows, hit);
        return;
      }
      case FilterOp::IntRange:
      case FilterOp::FloatRange: {
        const Field& fd = ix_.fields_[n.field];
        std::vector<char> hit(rows->size(), 0);
        for (size_t r = 0; r < rows->size(); ++r) {
          const uint32_t s = (*rows)[r];
          if (!test_bit(fd.present, s)) continue;
          hit[r] = n.op == FilterOp::IntRange ? (fd.ints[s] >= n.ilo && fd.ints[s] <= n.ihi)
                                              : (fd.floats[s] >= n.flo && fd.floats[s] <= n.fhi);
        }
        keep_flagged(rows, hit);
        return;
      }
      case FilterOp::Ids: {
        Set s = materialise(n);
        std::vector<uint32_t> out;
        std::set_intersection(rows->begin(), rows->end(), s.slots.begin(), s.slots.end(), std::back_inserter(out));
        *rows = std::move(out);
        return;
      }
    }
  }

  CompiledFilter run(const Node& root) const {
    Set s = materialise(root);
    CompiledFilter out;
    if (s.dense) {
      for (size_t w = 0; w < words_; ++w) s.bits[w] &= ix_.live_[w];
      out.count = popcount(s.bits);
      if (ix_.identity_) {
        out.is_bitset = true;
        out.bits = std::move(s.bits);
        out.nbits = nslots_;
        return out;
      }
      out.ids.reserve(out.count);
      for (size_t w = 0; w < words_; ++w)
        for (uint64_t word = s.bits[w]; word; word &= word - 1)
          out.ids.push_back(ix_.slot_ids_[w * 64 + static_cast<size_t>(__builtin_ctzll(word))]);
    } else {
      out.ids.reserve(s.slots.size());
      for (uint32_t x : s.slots)
        if (test_bit(ix_.live_, x)) out.ids.push_back(ix_.slot_ids_[x]);
      out.count = out.ids.size();
    }
    if (!ix_.ascending_) std::sort(out.ids.begin(), out.ids.end());
    return out;
  }

 private:
  const Posting* posting(const Node& n, size_t i) const {
    const auto& ps = ix_.fields_[n.field].postings;
    const int64_t c = n.args[i];
    return c >= 0 && static_cast<size_t>(c) < ps.size() ? &ps[c] : nullptr;
  }

  Set dense(const std::vector<uint64_t>& bits) const {
    Set s;
    s.dense = true;
    s.bits.assign(words_, 0);
    std::copy(bits.begin(), bits.begin() + static_cast<std::ptrdiff_t>(std::min(words_, bits.size())), s.bits.begin());
    return s;
  }

  Set dense_of(Set s) const {
    if (s.dense) return s;
    Set d = dense({});
    for (uint32_t x : s.slots) d.bits[x >> 6] |= uint64_t{1} << (x & 63);
    return d;
  }

  static std::vector<uint32_t> slots_of_set(Set s) {
    if (!s.dense) return std::move(s.slots);
    std::vector<uint32_t> out;
    for (size_t w = 0; w < s.bits.size(); ++w)
      for (uint64_t word = s.bits[w]; word; word &= word - 1)
        out.push_back(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(word))));
    return out;
  }

  static void sort_unique(std::vector<uint32_t>* v) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }

  // hit[i] = 1 for rows[i] in `found` (both ascending; found is a subset of rows).
  static void mark(const std::vector<uint32_t>& rows, const std::vector<uint32_t>& found, std::vector<char>* hit) {
    size_t j = 0;
    for (size_t i = 0; i < rows.size() && j < found.size(); ++i)
      if (rows[i] == found[j]) {
        (*hit)[i] = 1;
        ++j;
      }
  }

  std::vector<const Node*> by_estimate(const Node& n) const {
    std::vector<std::pair<size_t, const Node*>> e;
    for (const Node& k : n.kids) e.emplace_back(estimate(k), &k);
    std::stable_sort(e.begin(), e.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<const Node*> out;
    for (const auto& x : e) out.push_back(x.second);
    return out;
  }

  // Smallest condition first: a selective one is listed and the others only test its rows; when
  // every condition is broad, bitsets ANDed word-wise (a negation as AND-NOT of its child).
  Set conjunction(const Node& n) const {
    if (n.kids.empty()) return dense(ix_.live_);
    std::vector<const Node*> order = by_estimate(n);
    if (estimate(*order[0]) <= small_) {
      Set s;
      s.slots = slots_of_set(materialise(*order[0]));
      for (size_t i = 1; i < order.size() && !s.slots.empty(); ++i) filter(*order[i], &s.slots);
      return s;
    }
    Set acc = dense(ix_.live_);
    for (const Node* k : order) {
      const bool negate = k->op == FilterOp::Not;
      Set part = dense_of(materialise(negate ? k->kids[0] : *k));
      if (negate)
        for (size_t w = 0; w < words_; ++w) acc.bits[w] &= ~part.bits[w];
      else
        for (size_t w = 0; w < words_; ++w) acc.bits[w] &= part.bits[w];
    }
    return acc;
  }

  Set disjunction(const Node& n) const {
    std::vector<Set> parts;
    size_t total = 0;
    bool any_dense = false;
    for (const Node& k : n.kids) {
      parts.push_back(materialise(k));
      total += parts.back().dense ? nslots_ : parts.back().slots.size();
      any_dense |= parts.back().dense;
    }
    if (!any_dense && total <= small_) {
      Set s;
      for (const Set& p : parts) s.slots.insert(s.slots.end(), p.slots.begin(), p.slots.end());
      sort_unique(&s.slots);
      return s;
    }
    Set acc = dense({});
    for (const Set& p : parts) {
      if (p.dense)
        for (size_t w = 0; w < words_; ++w) acc.bits[w] |= p.bits[w];
      else
        for (uint32_t x : p.slots) acc.bits[x >> 6] |= uint64_t{1} << (x & 63);
    }
    return acc;
  }

  const AttributeIndex& ix_;
  size_t nslots_, words_, small_;
};

CompiledFilter AttributeIndex::compile(const int64_t* program, size_t length) const {
  std::shared_lock<std::shared_mutex> lock(mutex_);
  Executor ex(*this);
  size_t pos = 0;
  Node root = ex.parse(program, length, &pos, 0);
  ADANNS_CHECK(pos == length, "filter program has ", length - pos, " words past its end");
  return ex.run(root);
}

}  // namespace adanns
