// AdANNS graph index: an HNSW proximity graph built and walked on the first graph_dim coordinates
// (a Matryoshka prefix), re-ranked with the full stored vectors by the shared pipeline (search.h).
//
// Storage per node (a "slot"): the full vector (RowStore, may be memory-mapped), a fixed block of
// level-0 links (count + 2M slots) and, for the few nodes above level 0, M links per upper level.
// Distances between nodes use the first graph_dim coordinates of the stored vectors (ip, l2), or a
// unit-normalised copy of that prefix (cosine). Walks score nodes on those float prefixes (storage
// Float32) or on a compact copy of them as 8-bit codes (storage SQ8: one byte per coordinate, a
// per-coordinate range learnt from the first batch added, values outside it clamped): a node then
// costs graph_dim bytes of memory traffic instead of 4 * graph_dim. Searches re-rank the walk's
// candidates with the full float vectors; insertions walk the same way (codes with SQ8) and choose
// neighbours by the HNSW heuristic on exact float prefix distances.
//
// Removal marks a tombstone: traversal still walks through the node but never returns it. When
// tombstones pass kConsolidateFraction of the slots, consolidate() repairs every neighbour list
// that named one (the live neighbours stay; the freed places go to the dead nodes' live neighbours
// and to the results of a local beam search, by the HNSW heuristic and then nearest first) and
// compacts the slots, so recall does not decay under churn. It costs one walk of width
// ef_construction / 2 per repaired list (on the codes with SQ8).
//
// Threads: a build with one thread is deterministic for a seed (levels are drawn from the seed and
// the insertion counter, never from scheduling). With more threads nodes are inserted concurrently
// (striped locks on the adjacency lists), so the graph, and hence approximate results, depend on scheduling. Searches
// and consolidation do not depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "adanns/aligned.h"
#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/row_store.h"
#include "adanns/search.h"
#include "adanns/user_meta.h"

namespace adanns {

class NodeLocks;  // graph.cpp

enum class GraphStorage : uint32_t { Float32 = 0, SQ8 = 1 };

class GraphIndex {
 public:
  // M: links per node on upper levels (2M on level 0); ef_construction: beam width of insertion.
  GraphIndex(size_t dim, size_t graph_dim, size_t M, size_t ef_construction, Metric metric,
             uint64_t seed, GraphStorage storage = GraphStorage::Float32);

  size_t dim() const { return dim_; }
  size_t graph_dim() const { return graph_dim_; }
  size_t M() const { return M_; }
  size_t ef_construction() const { return ef_construction_; }
  Metric metric() const { return metric_; }
  uint64_t seed() const { return seed_; }
  GraphStorage storage() const { return storage_; }
  size_t size() const;           // live vectors
  size_t tombstones() const;     // removed but not yet consolidated
  size_t bytes() const;
  int max_level() const;

  // ids may be null: consecutive ids after the largest seen. With replace, ids already present are
  // removed first (upsert); otherwise they are an error. Rejected batches change nothing.
  void add(const float* x, size_t n, const idx_t* ids, int threads, bool replace = false);
  // Tombstones the ids (UnknownId if one is absent: nothing changes); consolidates when enough
  // tombstones have piled up.
  size_t remove(const idx_t* ids, size_t n);
  // Repairs the neighbourhoods of removed nodes and drops them from storage.
  void consolidate(int threads);

  // Walks the graph with beam max(p.ef, candidates kept) on the first graph_dim coordinates of
  // each query, then re-ranks (p.stages). A query shorter than graph_dim cannot walk the graph: it
  // is answered exactly by a scan of its prefix over every stored vector. p.search_dim is set
  // here. MFLOPs: graph_dim per node scored (qdim per row for the fallback) plus re-ranking.
  // With p.filter (filter.h), disallowed nodes are walked through but never kept, so the beam goes
  // on until it holds ef allowed nodes (hnswlib's rule; the walk widens as the filter narrows); a
  // filter below p.brute_force_below of the rows is answered by scoring its rows directly.
  void search(const float* q, size_t nq, size_t qdim, const SearchParams& p, float* scores,
              idx_t* ids, double* mflops) const;
  // The exact top-k over the live vectors for queries of width qdim (re-ranking stages ignored).
  void search_exact(const float* q, size_t nq, size_t qdim, size_t k, int threads, float* scores,
                    idx_t* ids, double* mflops) const;

  // Every live id, in storage order.
  std::vector<idx_t> ids() const;
  // The first of the ids an add without ids assigns (one past the largest id ever added).
  idx_t next_id() const {
    std::shared_lock<std::shared_mutex> lock(mu_);
    return ids_.next_id();
  }
  // Level-0 neighbour ids of a live id (tests check graph properties with it).
  std::vector<idx_t> neighbours(idx_t id) const;
  std::string user_meta() const { return user_meta_.get(); }
  void set_user_meta(std::string meta) { user_meta_.set(std::move(meta)); }

  void save(const std::string& path) const;
  static std::unique_ptr<GraphIndex> from_file(IndexFile file);

  // Fraction of slots that may be tombstones before remove() consolidates.
  static constexpr double kConsolidateFraction = 0.1;

 private:
  struct Walk;  // per-thread traversal state (graph.cpp)
  static Walk& thread_walk();
  size_t slots() const { return rows_.size(); }
  size_t cap(int level) const { return level == 0 ? 2 * M_ : M_; }
  const float* node_prefix(size_t slot) const {
    return alias_ ? rows_.row(slot, dim_) : prefix_.data() + slot * graph_dim_;
  }
  uint32_t* links(size_t slot, int level) {  // [count, neighbours...]
    if (level == 0) return links0_.data() + slot * (1 + 2 * M_);
    return upper_[slot].data() + (level - 1) * (1 + M_);
  }
  const uint32_t* links(size_t slot, int level) const { return const_cast<GraphIndex*>(this)->links(slot, level); }
  int draw_level(uint64_t counter) const;
  void append_node(const float* x, idx_t id);
  void insert(uint32_t node, Walk& w, NodeLocks& locks);
  std::vector<uint32_t> prune(uint32_t base, std::vector<std::pair<float, uint32_t>>& cand, size_t limit,
                              Walk& w) const;
  template <class Scorer>
  void walk_layer(const Scorer& score, size_t ef, int level, Walk& w, NodeLocks* locks,
                  const AllowedIds* filter = nullptr) const;
  template <class Scorer>
  std::pair<float, uint32_t> descend(const Scorer& score, uint32_t entry, int top, int stop, Walk& w,
                                     NodeLocks* locks) const;
  void set_code_ranges(const float* x, size_t n);
  void encode(size_t slot);  // SQ8 codes of one node from its prefix
  struct FloatScorer;
  struct CodeScorer;
  CodeScorer code_scorer(const float* q, Walk& w) const;  // SQ8: scores nodes' codes against q
  void rescore(const float* q, std::vector<std::pair<float, uint32_t>>& cand, Walk& w) const;
  void tombstone(idx_t id);
  void consolidate_locked(int threads);
  void scan_exact(const PreparedQueries& pq, std::vector<TopK>& heaps, const AllowedIds* filter = nullptr) const;

  size_t dim_, graph_dim_, M_, ef_construction_;
  Metric metric_;
  uint64_t seed_;
  GraphStorage storage_;
  bool alias_;  // node prefixes are read from the full vectors (ip, l2); cosine keeps a unit copy
  double level_mult_;

  RowStore rows_;                          // full vectors and ids, one per slot
  std::vector<float> prefix_;              // slots x graph_dim (empty when alias_)
  std::vector<float> code_min_, code_step_;  // SQ8: value = min + code * step, per coordinate
  AlignedVector<uint8_t> codes_;           // SQ8: slots x graph_dim
  std::vector<float> code_norms_;          // SQ8 with l2: |decoded prefix|^2 per slot
  AlignedVector<uint32_t> links0_;         // slots x (1 + 2M)
  std::vector<std::vector<uint32_t>> upper_;  // per slot: level x (1 + M), levels 1..top
  std::vector<uint8_t> levels_, deleted_;
  size_t n_deleted_ = 0;
  int64_t entry_ = -1;
  int max_level_ = -1;
  uint64_t inserted_ = 0;  // nodes ever inserted: the level draws' counter
  IdMap ids_;              // live id -> slot
  UserMeta user_meta_;
  std::shared_ptr<MappedFile> mapping_;
  mutable std::shared_mutex mu_;
};

}  // namespace adanns
