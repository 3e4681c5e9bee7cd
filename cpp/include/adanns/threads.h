// A minimal parallel-for: contiguous ranges on std::threads, the first exception re-thrown on the
// caller. Work is split by index, never by timing, so results do not depend on scheduling.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace adanns {

// threads <= 0 means all hardware threads.
inline int resolve_threads(int threads) {
  if (threads > 0) return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

// Calls fn(begin, end, worker) on [0, n) split into at most `threads` contiguous chunks.
inline void parallel_for(size_t n, int threads,
                         const std::function<void(size_t, size_t, int)>& fn) {
  if (n == 0) return;
  size_t t = static_cast<size_t>(resolve_threads(threads));
  if (t > n) t = n;
  if (t == 1) {
    fn(0, n, 0);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  pool.reserve(t);
  for (size_t w = 0; w < t; ++w) {
    size_t b = n * w / t, e = n * (w + 1) / t;
    pool.emplace_back([&, b, e, w] {
      try {
        fn(b, e, static_cast<int>(w));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace adanns
