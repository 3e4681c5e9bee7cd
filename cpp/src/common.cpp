#include "adanns/common.h"

namespace adanns {

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::IP: return "ip";
    case Metric::L2: return "l2";
    case Metric::Cosine: return "cosine";
  }
  return "unknown";
}

Metric metric_from_name(const std::string& name) {
  if (name == "ip") return Metric::IP;
  if (name == "l2") return Metric::L2;
  if (name == "cosine") return Metric::Cosine;
  raise("unknown metric '", name, "' (expected 'ip', 'l2' or 'cosine')");
}

}  // namespace adanns
