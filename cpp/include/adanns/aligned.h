// An allocator that starts every allocation on a cache line, for arrays of fixed-size rows that a
// walk fetches one row at a time: with 64-byte rows (or multiples) each row then spans whole lines.
// (malloc aligns to 16 bytes only, so a 192-byte row would touch four lines instead of three.)
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace adanns {

template <class T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};

  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) {}

  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }

  template <class U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace adanns
