// An allocator that starts every allocation on a cache line, for arrays of fixed-size rows that a
// walk fetches one row at a time: with 64-byte rows (or multiples) each row then spans whole lines.
// (malloc aligns to 16 bytes only, so a 192-byte row would touch four lines instead of three.)
// Allocations of kHugeFrom bytes or more start on a 2 MB boundary and ask for transparent huge pages
// (madvise; honoured where THP is "always" or "madvise"): a graph walk or re-ranking touches a few
// hundred random rows of a large array, and with 4 KB pages nearly every row also missed the TLB
// (measured: single-query p50 of the graph 0.92x -> 0.79x hnswlib's).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace adanns {

template <class T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  static constexpr size_t kHuge = size_t(2) << 20;
  static constexpr size_t kHugeFrom = size_t(8) << 20;

  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugeFrom) return static_cast<T*>(::operator new(bytes, kAlign));
    void* p = std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
    if (!p) throw std::bad_alloc();
    madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugeFrom) ::operator delete(p, kAlign);
    else std::free(p);
  }

  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace adanns
