// Shared vocabulary of the core: id type, metrics and the error type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace adanns {

using idx_t = int64_t;

enum class Metric : uint32_t { IP = 0, L2 = 1, Cosine = 2 };

// True when larger scores are better (ip, cosine); l2 distances are smaller-better.
inline bool larger_is_better(Metric m) { return m != Metric::L2; }

const char* metric_name(Metric m);
Metric metric_from_name(const std::string& name);  // throws Error on unknown names

// Every precondition failure in the core throws this; the bindings turn it into ValueError.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Raised for calls that are valid but made in the wrong state (search before train): RuntimeError.
class StateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... R>
void append(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <class E = Error, class... A>
[[noreturn]] void raise(const A&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw E(os.str());
}

}  // namespace adanns

// Precondition check with a message built from its arguments: ADANNS_CHECK(k > 0, "k must be > 0, got ", k).
#define ADANNS_CHECK(cond, ...)            \
  do {                                     \
    if (!(cond)) ::adanns::raise(__VA_ARGS__); \
  } while (0)
