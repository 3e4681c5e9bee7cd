// Free-form bytes an index carries into its file for the Python layer (JSON: tuned frontiers, a
// binarizer). Guarded by a lock of its own: it changes independently of the rows, and reading it
// need not wait for a long add.
#pragma once

#include <mutex>
#include <string>
#include <utility>

namespace adanns {

class UserMeta {
 public:
  std::string get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  void set(std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    text_ = std::move(text);
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

}  // namespace adanns
