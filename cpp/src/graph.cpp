#include "adanns/graph.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "adanns/random.h"
#include "adanns/threads.h"
#include "adanns/visited_set.h"
#include "simd/kernels.h"

namespace adanns {

namespace {

constexpr int kMaxLevel = 30;
constexpr size_t kMaxM = 256;
constexpr size_t kLockStripes = size_t(1) << 14;
constexpr size_t kPrefetchLines = 24;

using Scored = std::pair<float, uint32_t>;  // (distance, slot); pair order breaks ties by slot
// A functor, not a function: the heap algorithms then inline it (a function pointer was called).
struct Farther {
  bool operator()(const Scored& a, const Scored& b) const { return a > b; }
};
constexpr Farther farther{};

inline void prefetch_l2(const void* row, size_t bytes) {
  const char* p = static_cast<const char*>(row);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 2);
}

// Rows to request ahead of the one being scored so that about kPrefetchLines lines are in flight.
inline size_t rows_ahead(size_t row_bytes) {
  const size_t lines = (row_bytes + 63) / 64;
  return std::max<size_t>(1, kPrefetchLines / lines);
}

void normalise(float* x, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += static_cast<double>(x[j]) * x[j];
  if (s <= 0) return;
  float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (size_t j = 0; j < d; ++j) x[j] *= inv;
}

}  // namespace

// Striped locks over the adjacency lists while nodes are inserted concurrently. A thread holds at
// most one stripe at a time, so striping cannot deadlock; `entry` guards the entry point.
class NodeLocks {
 public:
  std::mutex& operator[](size_t slot) { return stripes_[slot % kLockStripes]; }
  std::mutex entry;

 private:
  std::mutex stripes_[kLockStripes];
};

// One thread's traversal state: the visited set, the two heaps and the kernel of the metric.
struct GraphIndex::Walk {
  simd::PairFn kernel = nullptr;
  simd::DotU8Fn dot_u8 = nullptr;
  bool l2 = false;
  std::vector<float> scaled;  // SQ8: the query times the code steps
  VisitedSet visited;
  std::vector<Scored> cand, top, entries;
  std::vector<uint32_t> list, todo;
  size_t scored = 0;  // distances computed (for MFLOPs)

  void use(Metric metric) {
    l2 = metric == Metric::L2;
    kernel = l2 ? simd::kernels().pair_l2 : simd::kernels().pair_ip;
    dot_u8 = simd::kernels().dot_u8;
  }
  float distance(const float* a, const float* b, size_t d) {
    const float v = kernel(a, b, d);
    ++scored;
    return l2 ? v : -v;
  }
};

// How a walk scores a node against its query: on the float prefixes (construction, storage Float32)...
struct GraphIndex::FloatScorer {
  const GraphIndex& g;
  const float* q;
  float operator()(uint32_t u, Walk& w) const { return w.distance(q, g.node_prefix(u), g.graph_dim_); }
  const void* row(uint32_t u) const { return g.node_prefix(u); }
  size_t row_bytes() const { return g.graph_dim_ * sizeof(float); }
};

// ... or on the SQ8 codes: <q, min + code * step> = <q, min> + <q * step, code>; l2 expands the square
// with the decoded row's norm, kept per node.
struct GraphIndex::CodeScorer {
  const GraphIndex& g;
  const float* scaled;  // q * step
  float offset;         // <q, min>
  float q_norm;         // |q|^2
  float operator()(uint32_t u, Walk& w) const {
    ++w.scored;
    float ip = offset + w.dot_u8(scaled, g.codes_.data() + size_t(u) * g.graph_dim_, g.graph_dim_);
    return w.l2 ? q_norm - 2 * ip + g.code_norms_[u] : -ip;
  }
  const void* row(uint32_t u) const { return g.codes_.data() + size_t(u) * g.graph_dim_; }
  size_t row_bytes() const { return g.graph_dim_; }
};

// Out of line on purpose: when the walk could see that its state is a thread_local, the compiler
// re-derived the address on every visited-set insert, a call to __tls_get_addr in a shared library
// (measured: 7% of a single query's time).
__attribute__((noinline)) GraphIndex::Walk& GraphIndex::thread_walk() {
  thread_local Walk walk;
  return walk;
}

GraphIndex::GraphIndex(size_t dim, size_t graph_dim, size_t M, size_t ef_construction, Metric metric,
                       uint64_t seed, GraphStorage storage)
    : dim_(dim), graph_dim_(graph_dim), M_(M), ef_construction_(ef_construction), metric_(metric), seed_(seed),
      storage_(storage) {
  ADANNS_CHECK(dim >= 1, "dim must be >= 1, got ", dim);
  ADANNS_CHECK(graph_dim >= 1 && graph_dim <= dim, "graph_dim must be in 1..", dim, " (dim), got ", graph_dim);
  ADANNS_CHECK(M >= 2 && M <= kMaxM, "M must be in 2..", kMaxM, ", got ", M);
  ADANNS_CHECK(ef_construction >= 1, "ef_construction must be >= 1, got ", ef_construction);
  ADANNS_CHECK(storage == GraphStorage::Float32 || storage == GraphStorage::SQ8, "unknown graph storage");
  alias_ = metric != Metric::Cosine;
  level_mult_ = 1.0 / std::log(static_cast<double>(M));
}

size_t GraphIndex::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return slots() - n_deleted_;
}

size_t GraphIndex::tombstones() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return n_deleted_;
}

int GraphIndex::max_level() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return max_level_;
}

size_t GraphIndex::bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  size_t upper = 0;
  for (const auto& u : upper_) upper += u.size();
  return rows_.vector_bytes(dim_) + (prefix_.size() + links0_.size() + upper + code_norms_.size()) * 4 +
         codes_.size() + slots() * (sizeof(idx_t) + 2);
}

int GraphIndex::draw_level(uint64_t counter) const {
  Rng rng(seed_ + counter * 0xD1B54A32D192ED03ull);
  double u = 1.0 - rng.uniform();  // (0, 1]
  double level = std::floor(-std::log(u) * level_mult_);
  return level >= kMaxLevel ? kMaxLevel : static_cast<int>(level);
}

void GraphIndex::append_node(const float* x, idx_t id) {
  size_t slot = slots();
  rows_.append(x, id, dim_);
  if (!alias_) {
    prefix_.insert(prefix_.end(), x, x + graph_dim_);
    if (metric_ == Metric::Cosine) normalise(prefix_.data() + slot * graph_dim_, graph_dim_);
  }
  links0_.resize(links0_.size() + 1 + 2 * M_, 0);
  if (storage_ == GraphStorage::SQ8) {
    codes_.resize(codes_.size() + graph_dim_);
    if (metric_ == Metric::L2) code_norms_.push_back(0.f);
    encode(slot);
  }
  int level = draw_level(inserted_++);
  levels_.push_back(static_cast<uint8_t>(level));
  upper_.emplace_back(static_cast<size_t>(level) * (1 + M_), 0);
  deleted_.push_back(0);
  ids_.set(id, Location{0, slot});
  ids_.note_added(id);
}

// Per-coordinate ranges of the SQ8 codes, from a batch of vectors (their traversal prefixes).
void GraphIndex::set_code_ranges(const float* x, size_t n) {
  code_min_.assign(graph_dim_, std::numeric_limits<float>::infinity());
  std::vector<float> high(graph_dim_, -std::numeric_limits<float>::infinity()), row(graph_dim_);
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(x + i * dim_, graph_dim_, row.data());
    if (metric_ == Metric::Cosine) normalise(row.data(), graph_dim_);
    for (size_t j = 0; j < graph_dim_; ++j) {
      code_min_[j] = std::min(code_min_[j], row[j]);
      high[j] = std::max(high[j], row[j]);
    }
  }
  code_step_.resize(graph_dim_);
  for (size_t j = 0; j < graph_dim_; ++j) {
    float step = (high[j] - code_min_[j]) / 255.f;
    code_step_[j] = step > 0 ? step : 1.f;  // a constant coordinate: code 0 decodes to it exactly
  }
}

void GraphIndex::encode(size_t slot) {
  const float* p = node_prefix(slot);
  uint8_t* code = codes_.data() + slot * graph_dim_;
  double norm = 0;
  for (size_t j = 0; j < graph_dim_; ++j) {
    float c = std::nearbyint((p[j] - code_min_[j]) / code_step_[j]);
    code[j] = static_cast<uint8_t>(c < 0 ? 0 : c > 255 ? 255 : c);
    double v = code_min_[j] + code[j] * static_cast<double>(code_step_[j]);
    norm += v * v;
  }
  if (metric_ == Metric::L2) code_norms_[slot] = static_cast<float>(norm);
}

// The HNSW neighbour heuristic: walking candidates nearest first, keep one unless a kept node is
// nearer to it than `base` is (it would be reached through that node anyway), up to `limit`.
std::vector<uint32_t> GraphIndex::prune(uint32_t base, std::vector<Scored>& cand, size_t limit,
                                        Walk& w) const {
  std::sort(cand.begin(), cand.end());
  std::vector<uint32_t> kept;
  kept.reserve(limit);
  uint32_t previous = std::numeric_limits<uint32_t>::max();
  for (const Scored& c : cand) {
    if (kept.size() >= limit) break;
    if (c.second == base || c.second == previous) continue;  // sorted: duplicates are adjacent
    previous = c.second;
    const float* x = node_prefix(c.second);
    bool keep = true;
    for (uint32_t r : kept)
      if (w.distance(x, node_prefix(r), graph_dim_) < c.first) {
        keep = false;
        break;
      }
    if (keep) kept.push_back(c.second);
  }
  return kept;
}

// Beam search on one level from w.entries: leaves the best `ef` live nodes found in w.top (a max-heap).
// Tombstones, and nodes a filter does not allow, are walked through but never kept. `locks` is set
// while nodes are being inserted.
template <class Scorer>
void GraphIndex::walk_layer(const Scorer& score, size_t ef, int level, Walk& w, NodeLocks* locks,
                            const AllowedIds* filter) const {
  auto keepable = [&](uint32_t u) { return !deleted_[u] && (!filter || filter->allows(rows_.ids()[u])); };
  w.visited.begin();
  w.cand.clear();
  w.top.clear();
  for (const Scored& e : w.entries) {
    if (!w.visited.insert(e.second)) continue;
    w.cand.push_back(e);
    std::push_heap(w.cand.begin(), w.cand.end(), farther);
    if (keepable(e.second)) {
      w.top.push_back(e);
      std::push_heap(w.top.begin(), w.top.end());
    }
  }
  while (!w.cand.empty()) {
    Scored c = w.cand.front();
    if (w.top.size() >= ef && c.first > w.top.front().first) break;
    std::pop_heap(w.cand.begin(), w.cand.end(), farther);
    w.cand.pop_back();
    const uint32_t* list = links(c.second, level);
    if (locks) {
      std::lock_guard<std::mutex> g((*locks)[c.second]);
      w.list.assign(list, list + 1 + list[0]);
      list = w.list.data();
    }
    w.todo.clear();
    for (uint32_t j = 1; j <= list[0]; ++j)
      if (w.visited.insert(list[j])) w.todo.push_back(list[j]);
    // The walk is bound by memory latency: request the next candidate's links now, and the new
    // neighbours' rows a window ahead of the one being scored, into L2. The window holds about
    // kPrefetchLines cache lines: requesting every row at once (24 lines each for a float d384
    // prefix) fills the miss buffers and stalls the loop on the prefetches themselves (measured on
    // SPR: 30% of a d384 build's time); into L1, a few rows already stall it.
    if (!w.cand.empty()) {
      const uint32_t* next = links(w.cand.front().second, level);
      for (size_t off = 0; off < (1 + cap(level)) * sizeof(uint32_t); off += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(next) + off, 0, 3);
    }
    const size_t ahead = rows_ahead(score.row_bytes());
    for (size_t j = 0; j < std::min(ahead, w.todo.size()); ++j) prefetch_l2(score.row(w.todo[j]), score.row_bytes());
    for (size_t j = 0; j < w.todo.size(); ++j) {
      if (j + ahead < w.todo.size()) prefetch_l2(score.row(w.todo[j + ahead]), score.row_bytes());
      uint32_t u = w.todo[j];
      float d = score(u, w);
      if (w.top.size() < ef || d < w.top.front().first) {
        w.cand.push_back({d, u});
        std::push_heap(w.cand.begin(), w.cand.end(), farther);
        if (keepable(u)) {
          w.top.push_back({d, u});
          std::push_heap(w.top.begin(), w.top.end());
          if (w.top.size() > ef) {
            std::pop_heap(w.top.begin(), w.top.end());
            w.top.pop_back();
          }
        }
      }
    }
  }
}

// Greedy descent from `entry` through levels top..stop+1; returns the nearest node found.
template <class Scorer>
Scored GraphIndex::descend(const Scorer& score, uint32_t entry, int top, int stop, Walk& w,
                           NodeLocks* locks) const {
  uint32_t cur = entry;
  float dcur = score(cur, w);
  for (int level = top; level > stop; --level) {
    for (bool moved = true; moved;) {
      moved = false;
      const uint32_t* list = links(cur, level);
      if (locks) {
        std::lock_guard<std::mutex> g((*locks)[cur]);
        w.list.assign(list, list + 1 + list[0]);
        list = w.list.data();
      }
      for (uint32_t j = 1; j <= list[0]; ++j) {
        float d = score(list[j], w);
        if (d < dcur) {
          dcur = d;
          cur = list[j];
          moved = true;
        }
      }
    }
  }
  return {dcur, cur};
}

GraphIndex::CodeScorer GraphIndex::code_scorer(const float* q, Walk& w) const {
  w.scaled.resize(graph_dim_);
  double offset = 0, norm = 0;
  for (size_t j = 0; j < graph_dim_; ++j) {
    w.scaled[j] = q[j] * code_step_[j];
    offset += static_cast<double>(q[j]) * code_min_[j];
    norm += static_cast<double>(q[j]) * q[j];
  }
  return CodeScorer{*this, w.scaled.data(), static_cast<float>(offset), static_cast<float>(norm)};
}

// Exact prefix distances from q for candidates a walk scored on codes (prefetched a few rows ahead:
// they are scattered).
void GraphIndex::rescore(const float* q, std::vector<Scored>& cand, Walk& w) const {
  constexpr size_t kAhead = 4;
  const size_t bytes = graph_dim_ * sizeof(float);
  for (size_t i = 0; i < std::min(kAhead, cand.size()); ++i) prefetch_l2(node_prefix(cand[i].second), bytes);
  for (size_t i = 0; i < cand.size(); ++i) {
    if (i + kAhead < cand.size()) prefetch_l2(node_prefix(cand[i + kAhead].second), bytes);
    cand[i].first = w.distance(q, node_prefix(cand[i].second), graph_dim_);
  }
}

void GraphIndex::insert(uint32_t node, Walk& w, NodeLocks& locks) {
  const int level = levels_[node];
  std::unique_lock<std::mutex> entry_lock(locks.entry);
  const int top = max_level_;
  const int64_t entry = entry_;  // read under the lock: another insertion may move it
  if (entry < 0) {
    entry_ = node;
    max_level_ = level;
    return;
  }
  // A node that raises the top level keeps the entry lock until it is linked, so no other thread
  // starts from an entry point whose levels are still empty.
  if (level <= top) entry_lock.unlock();
  const float* q = node_prefix(node);
  // With SQ8 storage the insertion walks score the codes, like searches: a quarter of the memory
  // traffic of the float prefixes, which bounds a build. The neighbour heuristic then works on exact
  // distances: the walk's candidates are re-scored with the float prefixes.
  const bool coded = storage_ == GraphStorage::SQ8;
  const FloatScorer exact{*this, q};
  const CodeScorer codes = coded ? code_scorer(q, w) : CodeScorer{*this, nullptr, 0.f, 0.f};
  w.entries.assign(1, coded ? descend(codes, static_cast<uint32_t>(entry), top, level, w, &locks)
                            : descend(exact, static_cast<uint32_t>(entry), top, level, w, &locks));
  std::vector<Scored> cand;
  for (int l = std::min(level, top); l >= 0; --l) {
    if (coded)
      walk_layer(codes, ef_construction_, l, w, &locks);
    else
      walk_layer(exact, ef_construction_, l, w, &locks);
    cand = w.top;
    if (coded) rescore(q, cand, w);
    std::vector<uint32_t> chosen = prune(node, cand, M_, w);
    {
      std::lock_guard<std::mutex> g(locks[node]);
      uint32_t* own = links(node, l);
      own[0] = static_cast<uint32_t>(chosen.size());
      std::copy(chosen.begin(), chosen.end(), own + 1);
    }
    for (uint32_t u : chosen) {
      std::lock_guard<std::mutex> g(locks[u]);
      uint32_t* theirs = links(u, l);
      if (theirs[0] < cap(l)) {
        theirs[++theirs[0]] = node;
        continue;
      }
      // Full: the newcomer competes with the current neighbours (tombstones give way).
      const float* x = node_prefix(u);
      cand.clear();
      cand.push_back({w.distance(x, q, graph_dim_), node});
      for (uint32_t j = 1; j <= theirs[0]; ++j)
        if (!deleted_[theirs[j]]) cand.push_back({w.distance(x, node_prefix(theirs[j]), graph_dim_), theirs[j]});
      std::vector<uint32_t> kept = prune(u, cand, cap(l), w);
      theirs[0] = static_cast<uint32_t>(kept.size());
      std::copy(kept.begin(), kept.end(), theirs + 1);
    }
    w.entries = w.top;
  }
  if (level > top) {
    entry_ = node;
    max_level_ = level;
  }
}

void GraphIndex::add(const float* x, size_t n, const idx_t* ids, int threads, bool replace) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> given;
  if (ids && replace) {
    IdMap batch;  // ids must be valid and unique in the batch; present ones are replaced
    batch.check_new(ids, n);
  } else if (ids) {
    ids_.check_new(ids, n);
  } else {
    given.resize(n);
    for (size_t i = 0; i < n; ++i) given[i] = ids_.next_id() + static_cast<idx_t>(i);
    ids = given.data();
  }
  ADANNS_CHECK(slots() + n < std::numeric_limits<uint32_t>::max(), "the graph index holds at most 2^32 - 2 nodes");
  if (n == 0) return;
  if (replace)
    for (size_t i = 0; i < n; ++i)
      if (ids_.contains(ids[i])) tombstone(ids[i]);
  if (storage_ == GraphStorage::SQ8 && code_min_.empty()) set_code_ranges(x, n);
  const size_t first = slots();
  rows_.reserve_more(n, dim_);
  if (!alias_) prefix_.reserve(prefix_.size() + n * graph_dim_);
  links0_.reserve(links0_.size() + n * (1 + 2 * M_));
  ids_.reserve(ids_.size() + n);
  for (size_t i = 0; i < n; ++i) append_node(x + i * dim_, ids[i]);

  auto locks = std::make_unique<NodeLocks>();
  std::atomic<size_t> next{0};
  size_t workers = std::min(static_cast<size_t>(resolve_threads(threads)), n);
  parallel_for(workers, static_cast<int>(workers), [&](size_t, size_t, int) {
    Walk w;
    w.use(metric_);
    // Claimed in order: with one worker the insertion order is the input order.
    for (size_t i; (i = next.fetch_add(1)) < n;) insert(static_cast<uint32_t>(first + i), w, *locks);
  });
  if (n_deleted_ > kConsolidateFraction * slots()) consolidate_locked(threads);
}

void GraphIndex::tombstone(idx_t id) {
  size_t slot = ids_.at(id).offset;
  deleted_[slot] = 1;
  ++n_deleted_;
  ids_.erase(id);
}

size_t GraphIndex::remove(const idx_t* ids, size_t n) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  ids_.check_existing(ids, n);
  for (size_t i = 0; i < n; ++i) tombstone(ids[i]);
  if (n_deleted_ > kConsolidateFraction * slots()) consolidate_locked(0);
  return n;
}

void GraphIndex::consolidate(int threads) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  consolidate_locked(threads);
}

void GraphIndex::consolidate_locked(int threads) {
  if (n_deleted_ == 0) return;
  const size_t n = slots();
  // 1. New neighbour lists for every (live node, level) that points at a tombstone, computed from
  //    the old graph only: the result does not depend on the thread count.
  struct Fix {
    uint32_t slot;
    int level;
    std::vector<uint32_t> list;
  };
  int t = resolve_threads(threads);
  const size_t repair_ef = std::max<size_t>(ef_construction_ / 2, 2 * M_);
  std::vector<std::vector<Fix>> fixes(static_cast<size_t>(t));
  parallel_for(n, t, [&](size_t b, size_t e, int worker) {
    Walk w;
    w.use(metric_);
    std::vector<Scored> cand;
    std::vector<uint32_t> pool;
    for (size_t p = b; p < e; ++p) {
      if (deleted_[p]) continue;
      for (int l = 0; l <= levels_[p]; ++l) {
        const uint32_t* list = links(p, l);
        // The live neighbours stay (they include the back-links insertion added); the places of
        // the dead ones go to their own live neighbours, chosen by the HNSW heuristic against the
        // kept list, then the nearest, up to the old degree.
        std::vector<uint32_t> chosen;
        pool.clear();
        for (uint32_t j = 1; j <= list[0]; ++j) {
          uint32_t u = list[j];
          if (!deleted_[u]) {
            chosen.push_back(u);
            continue;
          }
          const uint32_t* theirs = links(u, l);
          for (uint32_t i = 1; i <= theirs[0]; ++i)
            if (!deleted_[theirs[i]] && theirs[i] != p) pool.push_back(theirs[i]);
        }
        if (chosen.size() == list[0]) continue;  // no dead neighbour
        std::sort(pool.begin(), pool.end());
        pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
        const float* x = node_prefix(p);
        cand.clear();
        for (uint32_t u : pool)
          if (std::find(chosen.begin(), chosen.end(), u) == chosen.end())
            cand.push_back({w.distance(x, node_prefix(u), graph_dim_), u});
        // A local beam search from p itself finds near nodes the two-hop pool misses. Half of
        // ef_construction, on the codes with SQ8 storage: measured on 200k x 768 (M 16, d192 sq8, 30%
        // churn), a quarter of the width on the float prefixes left recall 0.011 below a fresh build at
        // ef 16; this takes the same time (23 s for the removals) and stays within 0.004. The full width
        // on floats: +0.003, in 4x the time.
        if (storage_ == GraphStorage::SQ8) {  // walk the codes, as insertions do; re-score exactly
          const CodeScorer codes = code_scorer(x, w);
          w.entries.assign(1, {codes(static_cast<uint32_t>(p), w), static_cast<uint32_t>(p)});
          walk_layer(codes, repair_ef, l, w, nullptr);
          rescore(x, w.top, w);
        } else {
          w.entries.assign(1, {w.distance(x, x, graph_dim_), static_cast<uint32_t>(p)});
          walk_layer(FloatScorer{*this, x}, repair_ef, l, w, nullptr);
        }
        for (const Scored& c : w.top)
          if (c.second != p && std::find(chosen.begin(), chosen.end(), c.second) == chosen.end()) cand.push_back(c);
        std::sort(cand.begin(), cand.end());
        cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
        const size_t degree = list[0];
        std::vector<uint8_t> taken(cand.size(), 0);
        for (size_t i = 0; i < cand.size() && chosen.size() < cap(l); ++i) {
          const float* y = node_prefix(cand[i].second);
          bool keep = true;
          for (uint32_t r : chosen)
            if (w.distance(y, node_prefix(r), graph_dim_) < cand[i].first) {
              keep = false;
              break;
            }
          if (keep) {
            chosen.push_back(cand[i].second);
            taken[i] = 1;
          }
        }
        for (size_t i = 0; i < cand.size() && chosen.size() < degree; ++i)
          if (!taken[i]) chosen.push_back(cand[i].second);
        fixes[worker].push_back({static_cast<uint32_t>(p), l, std::move(chosen)});
      }
    }
  });
  for (const auto& part : fixes)
    for (const Fix& f : part) {
      uint32_t* own = links(f.slot, f.level);
      own[0] = static_cast<uint32_t>(f.list.size());
      std::copy(f.list.begin(), f.list.end(), own + 1);
    }

  // 2. Compact: live nodes keep their order; every link now names a live node.
  std::vector<uint32_t> renum(n, std::numeric_limits<uint32_t>::max());
  size_t live = 0;
  for (size_t s = 0; s < n; ++s)
    if (!deleted_[s]) renum[s] = static_cast<uint32_t>(live++);
  const size_t block = 1 + 2 * M_;
  AlignedVector<float> vectors(live * dim_);
  std::vector<float> prefix(alias_ ? 0 : live * graph_dim_);
  AlignedVector<uint32_t> links0(live * block);
  std::vector<std::vector<uint32_t>> upper(live);
  std::vector<uint8_t> levels(live);
  AlignedVector<uint8_t> codes(codes_.empty() ? 0 : live * graph_dim_);
  std::vector<float> code_norms(code_norms_.empty() ? 0 : live);
  std::vector<idx_t> ids(live);
  for (size_t s = 0; s < n; ++s) {
    if (deleted_[s]) continue;
    size_t r = renum[s];
    std::copy_n(rows_.row(s, dim_), dim_, vectors.data() + r * dim_);
    if (!alias_) std::copy_n(prefix_.data() + s * graph_dim_, graph_dim_, prefix.data() + r * graph_dim_);
    ids[r] = rows_.ids()[s];
    levels[r] = levels_[s];
    if (!codes.empty()) std::copy_n(codes_.data() + s * graph_dim_, graph_dim_, codes.data() + r * graph_dim_);
    if (!code_norms.empty()) code_norms[r] = code_norms_[s];
    upper[r] = std::move(upper_[s]);
    std::copy_n(links0_.data() + s * block, block, links0.data() + r * block);
    auto remap = [&](uint32_t* list) {
      for (uint32_t j = 1; j <= list[0]; ++j) list[j] = renum[list[j]];
    };
    remap(links0.data() + r * block);
    for (int l = 1; l <= levels[r]; ++l) remap(upper[r].data() + (l - 1) * (1 + M_));
  }
  // The entry point: the old one if it lives, else the first live node of the highest level.
  int64_t entry = -1;
  int top = -1;
  if (entry_ >= 0 && !deleted_[entry_]) {
    entry = renum[entry_];
    top = max_level_;
  } else {
    for (size_t r = 0; r < live; ++r)
      if (levels[r] > top) {
        top = levels[r];
        entry = static_cast<int64_t>(r);
      }
  }
  ids_.clear();
  for (size_t r = 0; r < live; ++r) ids_.set(ids[r], Location{0, r});
  rows_.set_owned(std::move(vectors), std::move(ids));
  prefix_ = std::move(prefix);
  codes_ = std::move(codes);
  code_norms_ = std::move(code_norms);
  links0_ = std::move(links0);
  upper_ = std::move(upper);
  levels_ = std::move(levels);
  deleted_.assign(live, 0);
  n_deleted_ = 0;
  entry_ = entry;
  max_level_ = top;
}

void GraphIndex::scan_exact(const PreparedQueries& pq, std::vector<TopK>& heaps, const AllowedIds* filter) const {
  std::vector<size_t> which(pq.nq);
  for (size_t i = 0; i < pq.nq; ++i) which[i] = i;
  ScanScratch scratch;
  const size_t n = slots();
  for (size_t s = 0; s < n;) {  // runs of live slots
    if (deleted_[s]) {
      ++s;
      continue;
    }
    size_t e = s;
    while (e < n && !deleted_[e]) ++e;
    Segment seg{rows_.row(s, dim_), rows_.ids() + s, e - s};
    scan_segment(metric_, pq, which.data(), pq.nq, seg, dim_, false, heaps, scratch, filter);
    s = e;
  }
}

void GraphIndex::search(const float* q, size_t nq, size_t qdim, const SearchParams& params, float* scores,
                        idx_t* out_ids, double* mflops) const {
  SearchParams p = params;
  const bool walk = qdim >= graph_dim_;
  p.search_dim = walk ? graph_dim_ : qdim;
  validate_search(p, dim_, qdim);
  ADANNS_CHECK(p.ef >= 1, "ef must be >= 1, got ", p.ef);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t live = slots() - n_deleted_;
  if (live == 0) raise<StateError>("the graph index is empty: add vectors before searching");
  const size_t keep = p.scan_keep();
  const size_t beam = std::max(p.ef, keep);
  const FilterPlan plan = plan_filter(p.filter, live, keep, p.brute_force_below);
  const AllowedIds* filter = plan == FilterPlan::Scan ? p.filter : nullptr;
  std::vector<const float*> direct_rows;  // the direct plan: the allowed live rows, found by id
  std::vector<idx_t> direct_ids;
  if (plan == FilterPlan::Direct) {
    for (size_t i = 0; i < p.filter->count(); ++i) {
      const idx_t id = p.filter->ids()[i];
      if (!ids_.contains(id) || deleted_[ids_.at(id).offset]) continue;
      direct_rows.push_back(rows_.row(ids_.at(id).offset, dim_));
      direct_ids.push_back(id);
    }
  }
  parallel_for(nq, p.threads, [&](size_t b, size_t e, int) {
    const size_t nc = e - b;
    // The direct plan scores with the whole query: exact over the allowed rows.
    const size_t scan_dim = plan == FilterPlan::Direct ? qdim : p.search_dim;
    PreparedQueries pq(metric_, q + b * qdim, nc, qdim, scan_dim, p.stages);
    std::vector<TopK> heaps(nc, TopK(keep));
    if (plan == FilterPlan::Direct) {
      std::vector<size_t> which(nc);
      for (size_t i = 0; i < nc; ++i) which[i] = i;
      ScanScratch scratch;
      scan_rows(metric_, pq, which.data(), nc, direct_rows.data(), direct_ids.data(), direct_rows.size(), false,
                heaps, scratch);
      for (size_t i = 0; i < nc; ++i)
        mflops[b + i] = static_cast<double>(direct_rows.size()) * qdim * 1e-6;
    } else if (!walk) {  // a prefix shorter than the graph's: exact scan
      scan_exact(pq, heaps, filter);
      for (size_t i = 0; i < nc; ++i) mflops[b + i] = static_cast<double>(live) * qdim * 1e-6;
    } else {
      Walk& w = thread_walk();
      w.use(metric_);
      for (size_t i = 0; i < nc; ++i) {
        const float* qi = pq.scan.data() + i * graph_dim_;
        w.scored = 0;
        if (storage_ == GraphStorage::SQ8) {
          const CodeScorer score = code_scorer(qi, w);
          w.entries.assign(1, descend(score, static_cast<uint32_t>(entry_), max_level_, 0, w, nullptr));
          walk_layer(score, beam, 0, w, nullptr, filter);
        } else {
          const FloatScorer score{*this, qi};
          w.entries.assign(1, descend(score, static_cast<uint32_t>(entry_), max_level_, 0, w, nullptr));
          walk_layer(score, beam, 0, w, nullptr, filter);
        }
        for (const Scored& s : w.top) heaps[i].push(s.first, rows_.ids()[s.second], rows_.row(s.second, dim_));
        mflops[b + i] = static_cast<double>(w.scored) * graph_dim_ * 1e-6;
      }
    }
    finish_search(metric_, pq, p, heaps, scores + b * p.k, out_ids + b * p.k, mflops + b);
  });
}

void GraphIndex::search_exact(const float* q, size_t nq, size_t qdim, size_t k, int threads, float* scores,
                              idx_t* out_ids, double* mflops) const {
  SearchParams p;
  p.k = k;
  p.search_dim = qdim;
  p.threads = threads;
  validate_search(p, dim_, qdim);
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t live = slots() - n_deleted_;
  parallel_for(nq, threads, [&](size_t b, size_t e, int) {
    PreparedQueries pq(metric_, q + b * qdim, e - b, qdim, qdim);
    std::vector<TopK> heaps(e - b, TopK(k));
    scan_exact(pq, heaps);
    for (size_t i = b; i < e; ++i) mflops[i] = static_cast<double>(live) * qdim * 1e-6;
    finish_search(metric_, pq, p, heaps, scores + b * k, out_ids + b * k, mflops + b);
  });
}

std::vector<idx_t> GraphIndex::ids() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<idx_t> out;
  out.reserve(slots() - n_deleted_);
  for (size_t s = 0; s < slots(); ++s)
    if (!deleted_[s]) out.push_back(rows_.ids()[s]);
  return out;
}

std::vector<idx_t> GraphIndex::neighbours(idx_t id) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!ids_.contains(id)) raise<UnknownId>("id ", id, " is not in the index");
  const uint32_t* list = links(ids_.at(id).offset, 0);
  std::vector<idx_t> out;
  for (uint32_t j = 1; j <= list[0]; ++j) out.push_back(rows_.ids()[list[j]]);
  return out;
}

void GraphIndex::save(const std::string& path) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  const size_t n = slots();
  MetaWriter m;
  for (uint64_t v : {uint64_t(dim_), uint64_t(graph_dim_), uint64_t(M_), uint64_t(ef_construction_),
                     uint64_t(metric_), seed_, uint64_t(storage_), uint64_t(n), inserted_})
    m.u64(v);
  m.u64(code_min_.size());  // SQ8 ranges (0 until the first add)
  m.f32s(code_min_.data(), code_min_.size());
  m.f32s(code_step_.data(), code_step_.size());
  m.i64(entry_);
  m.i64(max_level_);
  m.i64(ids_.next_id());
  m.i64s(rows_.ids(), n);
  m.str(std::string(levels_.begin(), levels_.end()));
  m.str(std::string(deleted_.begin(), deleted_.end()));
  std::string upper;
  for (const auto& u : upper_) upper.append(reinterpret_cast<const char*>(u.data()), u.size() * 4);
  m.str(upper);
  m.str(user_meta_.get());
  write_index_file(path, IndexKind::Graph, m.bytes(),
                   {{rows_.vectors(), rows_.vector_bytes(dim_)},
                    {prefix_.data(), prefix_.size() * sizeof(float)},
                    {links0_.data(), links0_.size() * sizeof(uint32_t)}});
}

std::unique_ptr<GraphIndex> GraphIndex::from_file(IndexFile f) {
  MetaReader r(f.meta.data(), f.meta.size());
  size_t dim = r.count(1u << 24, "dimension");
  size_t graph_dim = r.count(dim, "graph dimension");
  size_t M = r.count(kMaxM, "M");
  size_t ef_c = r.count(uint64_t(1) << 32, "ef_construction");
  uint64_t metric = r.count(2, "metric");
  uint64_t seed = r.u64();
  uint64_t storage = r.count(1, "graph storage");
  ADANNS_CHECK(dim >= 1 && graph_dim >= 1 && M >= 2 && ef_c >= 1, "corrupt index file: bad graph parameters");
  auto index = std::make_unique<GraphIndex>(dim, graph_dim, M, ef_c, static_cast<Metric>(metric), seed,
                                            static_cast<GraphStorage>(storage));
  GraphIndex& g = *index;
  const size_t per_node = dim + (g.alias_ ? 0 : graph_dim) + 1 + 2 * M;
  size_t n = r.count(f.data_floats / per_node, "node count");
  ADANNS_CHECK(n * per_node == f.data_floats, "corrupt index file: ", f.data_floats,
               " stored words do not match ", n, " graph nodes");
  g.inserted_ = r.u64();
  size_t ranges = r.count(graph_dim, "code range count");
  ADANNS_CHECK(ranges == 0 || (ranges == graph_dim && g.storage_ == GraphStorage::SQ8),
               "corrupt index file: code ranges without SQ8 storage");
  g.code_min_.resize(ranges);
  g.code_step_.resize(ranges);
  r.f32s(g.code_min_.data(), ranges);
  r.f32s(g.code_step_.data(), ranges);
  for (size_t j = 0; j < ranges; ++j)
    ADANNS_CHECK(std::isfinite(g.code_min_[j]) && std::isfinite(g.code_step_[j]) && g.code_step_[j] > 0,
                 "corrupt index file: bad code range");
  g.entry_ = r.i64();
  int64_t top = r.i64();
  idx_t next = r.i64();
  std::vector<idx_t> ids(n);
  r.i64s(ids.data(), n);
  std::string levels = r.str(), deleted = r.str(), upper = r.str();
  g.user_meta_.set(r.str());
  r.expect_end();
  ADANNS_CHECK(levels.size() == n && deleted.size() == n, "corrupt index file: per-node arrays of the wrong length");
  g.levels_.assign(levels.begin(), levels.end());
  g.deleted_.assign(deleted.begin(), deleted.end());
  size_t upper_words = 0;
  int highest = -1;
  for (size_t s = 0; s < n; ++s) {
    ADANNS_CHECK(g.levels_[s] <= kMaxLevel && g.deleted_[s] <= 1, "corrupt index file: bad level or tombstone");
    upper_words += g.levels_[s] * (1 + M);
    highest = std::max(highest, static_cast<int>(g.levels_[s]));
    g.n_deleted_ += g.deleted_[s];
  }
  ADANNS_CHECK(upper.size() == upper_words * 4, "corrupt index file: upper levels of the wrong size");
  ADANNS_CHECK(n == 0 ? (g.entry_ == -1 && top == -1)
                      : (g.entry_ >= 0 && static_cast<size_t>(g.entry_) < n && top == g.levels_[g.entry_] &&
                         top == highest),
               "corrupt index file: bad entry point");
  g.max_level_ = static_cast<int>(top);
  const uint8_t* up = reinterpret_cast<const uint8_t*>(upper.data());
  g.upper_.resize(n);
  for (size_t s = 0; s < n; ++s) {
    g.upper_[s].resize(g.levels_[s] * (1 + M));
    if (g.upper_[s].empty()) continue;
    std::memcpy(g.upper_[s].data(), up, g.upper_[s].size() * 4);
    up += g.upper_[s].size() * 4;
  }
  const float* data = f.data;
  const float* prefix = data + n * dim;
  const float* links0 = prefix + (g.alias_ ? 0 : n * graph_dim);
  g.links0_.resize(n * (1 + 2 * M));
  if (n) std::memcpy(g.links0_.data(), links0, g.links0_.size() * 4);
  if (!g.alias_) g.prefix_.assign(prefix, prefix + n * graph_dim);
  for (size_t s = 0; s < n; ++s)
    for (int l = 0; l <= g.levels_[s]; ++l) {
      const uint32_t* list = g.links(s, l);
      ADANNS_CHECK(list[0] <= g.cap(l), "corrupt index file: node ", s, " has ", list[0], " links");
      for (uint32_t j = 1; j <= list[0]; ++j)
        ADANNS_CHECK(list[j] < n && g.levels_[list[j]] >= l, "corrupt index file: bad link at node ", s);
    }
  std::vector<idx_t> live;
  for (size_t s = 0; s < n; ++s)
    if (!g.deleted_[s]) live.push_back(ids[s]);
  g.ids_.check_new(live.data(), live.size());
  g.ids_.reserve(live.size());
  for (size_t s = 0; s < n; ++s) {
    g.ids_.note_added(ids[s]);
    if (!g.deleted_[s]) g.ids_.set(ids[s], Location{0, s});
  }
  if (next > g.ids_.next_id()) g.ids_.set_next_id(next);
  if (f.mapping) {
    g.rows_.set_view(data, std::move(ids));
    g.mapping_ = f.mapping;
  } else {
    g.rows_.set_owned(AlignedVector<float>(data, data + n * dim), std::move(ids));
  }
  if (g.storage_ == GraphStorage::SQ8) {  // codes are derived data: re-encoded, not stored
    ADANNS_CHECK(n == 0 || ranges == graph_dim, "corrupt index file: SQ8 nodes without code ranges");
    g.codes_.resize(n * graph_dim);
    if (g.metric_ == Metric::L2) g.code_norms_.resize(n);
    for (size_t s = 0; s < n; ++s) g.encode(s);
  }
  return index;
}

}  // namespace adanns
