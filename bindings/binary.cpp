// pybind11 wrappers for the binary-code index (adanns._core.BinaryIndex) and the Hamming kernel
// hook the tests use. Arrays arrive validated by python/adanns/binary.py; here we read pointers,
// release the GIL and call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "adanns/binary_index.h"
#include "adanns/common.h"
#include "adanns/hamming.h"
#include "adanns/io.h"
#include "helpers.h"

namespace py = pybind11;
using namespace adanns;

namespace {

using CodeArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

struct Codes {
  const uint8_t* data;
  size_t rows, bytes;
};

Codes codes_of(const CodeArray& a, const char* name) {
  if (a.ndim() != 2) raise(name, " must be 2-D, got ", a.ndim(), "-D");
  return {a.data(), static_cast<size_t>(a.shape(0)), static_cast<size_t>(a.shape(1))};
}

RangeMethod range_method(const std::string& m) {
  if (m == "auto") return RangeMethod::Auto;
  if (m == "hash") return RangeMethod::Hash;
  if (m == "scan") return RangeMethod::Scan;
  raise("unknown range method '", m, "' (expected auto, hash or scan)");
}

}  // namespace

py::object binary_index_from_file(IndexFile file) { return py::cast(BinaryIndex::from_file(std::move(file))); }

void bind_binary(py::module_& m) {
  m.def("hamming_kernel_name", [] { return std::string(hamming_kernel_name()); });
  m.def("cpu_has_vpopcntdq", &cpu_has_vpopcntdq);
  // Test hook: (nq, nx) distances over the first `bits` bits (a multiple of 8) of packed codes.
  m.def("kernel_hamming", [](const CodeArray& q, const CodeArray& x, size_t bits) {
    Codes a = codes_of(q, "q"), b = codes_of(x, "x");
    ADANNS_CHECK(bits % 8 == 0 && bits >= 8 && bits / 8 <= a.bytes && bits / 8 <= b.bytes,
                 "bits must be a multiple of 8 within the code width");
    const size_t w = words_for_bits(8 * std::max(a.bytes, b.bytes));
    std::vector<uint64_t> qw(a.rows * w, 0), xw(b.rows * w, 0);
    for (size_t i = 0; i < a.rows; ++i) std::memcpy(qw.data() + i * w, a.data + i * a.bytes, a.bytes);
    for (size_t i = 0; i < b.rows; ++i) std::memcpy(xw.data() + i * w, b.data + i * b.bytes, b.bytes);
    py::array_t<int32_t> out({a.rows, b.rows});
    int32_t* o = out.mutable_data();
    py::gil_scoped_release release;
    std::vector<uint64_t> mask = prefix_mask(bits);
    for (size_t i = 0; i < a.rows; ++i)
      hamming_distances(qw.data() + i * w, xw.data(), b.rows, w, words_for_bits(bits),
                        mask.empty() ? nullptr : mask.data(), o + i * b.rows);
    return out;
  });

  // Benchmark hook: seconds to compute nq x nrows distances over `bits`-bit random codes resident in
  // cache (one reused output row): the kernel's own throughput, with no top-k and no memory traffic.
  m.def("kernel_hamming_seconds", [](size_t bits, size_t nrows, size_t nq) {
    ADANNS_CHECK(bits % 8 == 0 && bits >= 8 && bits <= kMaxCodeBits, "bits must be a multiple of 8");
    const size_t w = words_for_bits(bits);
    std::vector<uint64_t> x(nrows * w), q(w);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (auto& v : x) v = (s = s * 6364136223846793005ull + 1442695040888963407ull);
    for (auto& v : q) v = (s = s * 6364136223846793005ull + 1442695040888963407ull);
    std::vector<int32_t> out(nrows);
    std::vector<uint64_t> mask = prefix_mask(bits);
    py::gil_scoped_release release;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < nq; ++i) {
      q[0] ^= i;  // a different query each pass
      hamming_distances(q.data(), x.data(), nrows, w, w, mask.empty() ? nullptr : mask.data(), out.data());
    }
    volatile int32_t sink = out[nrows / 2];
    (void)sink;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });

  py::class_<BinaryIndex> binary(m, "BinaryIndex");
  adanns_bind::bind_stored_state<BinaryIndex>(binary);
  binary
      .def(py::init([](size_t nbits, size_t dim) { return std::make_unique<BinaryIndex>(nbits, dim); }))
      .def_property_readonly("nbits", &BinaryIndex::nbits)
      .def_property_readonly("dim", &BinaryIndex::dim)
      .def("size", &BinaryIndex::size)
      .def("bytes", &BinaryIndex::bytes)
      .def("add", [](BinaryIndex& f, const CodeArray& codes, const py::object& vectors, const py::object& ids) {
        Codes c = codes_of(codes, "codes");
        ADANNS_CHECK(c.bytes * 8 == f.nbits(), "codes must have ", f.nbits() / 8, " bytes, got ", c.bytes);
        FloatArray vh;
        const float* vp = nullptr;
        if (!vectors.is_none()) {
          vh = vectors.cast<FloatArray>();
          ADANNS_CHECK(vh.ndim() == 2 && static_cast<size_t>(vh.shape(0)) == c.rows &&
                           static_cast<size_t>(vh.shape(1)) == f.dim(),
                       "vectors must have shape (", c.rows, ", ", f.dim(), ")");
          vp = vh.data();
        }
        IdArray ih;
        const int64_t* ip = nullptr;
        if (!ids.is_none()) {
          ih = ids.cast<IdArray>();
          ADANNS_CHECK(ih.ndim() == 1 && static_cast<size_t>(ih.shape(0)) == c.rows, "ids must have length ", c.rows);
          ip = ih.data();
        }
        py::gil_scoped_release release;
        f.add(c.data, c.rows, vp, ip);
      })
      .def("search", [](const BinaryIndex& f, const CodeArray& q, size_t k, size_t search_bits, int threads) {
        Codes c = codes_of(q, "queries");
        py::array_t<int32_t> dist({c.rows, k});
        py::array_t<int64_t> ids({c.rows, k});
        py::array_t<double> cost(c.rows);
        int32_t* d = dist.mutable_data();
        int64_t* i = ids.mutable_data();
        double* o = cost.mutable_data();
        {
          py::gil_scoped_release release;
          f.search(c.data, c.rows, c.bytes, k, search_bits, threads, d, i, o);
        }
        return py::make_tuple(dist, ids, cost);
      })
      .def("range_search", [](const BinaryIndex& f, const CodeArray& q, int radius, size_t search_bits,
                              const std::string& method, int threads) {
        Codes c = codes_of(q, "queries");
        RangeMethod rm = range_method(method);
        RangeResult r;
        {
          py::gil_scoped_release release;
          r = f.range_search(c.data, c.rows, c.bytes, radius, search_bits, rm, threads);
        }
        return py::make_tuple(py::array_t<int64_t>(r.lims.size(), r.lims.data()),
                              py::array_t<int32_t>(r.dist.size(), r.dist.data()),
                              py::array_t<int64_t>(r.ids.size(), r.ids.data()),
                              py::array_t<double>(r.cost.size(), r.cost.data()), r.used_hash);
      })
      .def("next_id", &BinaryIndex::next_id)
      .def("search_rerank", [](const BinaryIndex& f, const CodeArray& q, const FloatArray& qv, size_t k,
                               size_t shortlist, size_t search_bits, size_t rerank_dim, int threads,
                               const py::object& filter, double brute_force_below) {
        adanns_bind::FilterArg arg(filter, brute_force_below);
        Codes c = codes_of(q, "queries");
        ADANNS_CHECK(qv.ndim() == 2 && static_cast<size_t>(qv.shape(0)) == c.rows,
                     "query vectors must be 2-D with one row per query code");
        const size_t qdim = static_cast<size_t>(qv.shape(1));
        py::array_t<float> scores({c.rows, k});
        py::array_t<int64_t> ids({c.rows, k});
        py::array_t<double> cost(c.rows);
        float* s = scores.mutable_data();
        int64_t* i = ids.mutable_data();
        double* o = cost.mutable_data();
        const float* qp = qv.data();
        {
          py::gil_scoped_release release;
          if (arg.given) {
            AllowedIds set = arg.make();
            f.search_rerank(c.data, c.rows, c.bytes, qp, qdim, k, shortlist, search_bits, rerank_dim, threads, s, i,
                            o, &set, brute_force_below);
          } else {
            f.search_rerank(c.data, c.rows, c.bytes, qp, qdim, k, shortlist, search_bits, rerank_dim, threads, s, i,
                            o);
          }
        }
        return py::make_tuple(scores, ids, cost);
      }, py::arg("q"), py::arg("qv"), py::arg("k"), py::arg("shortlist"), py::arg("search_bits"),
         py::arg("rerank_dim"), py::arg("threads"), py::arg("filter") = py::none(),
         py::arg("brute_force_below") = kDefaultBruteForceBelow)
      .def("build_hash", [](BinaryIndex& f, size_t substrings) {
        py::gil_scoped_release release;
        f.build_hash(substrings);
      })
      .def("hash_substrings", &BinaryIndex::hash_substrings)
      .def("codes", [](const BinaryIndex& f) {
        std::vector<uint8_t> v = f.codes();
        py::array_t<uint8_t> out({v.size() / (f.nbits() / 8), f.nbits() / 8});
        std::copy(v.begin(), v.end(), out.mutable_data());
        return out;
      })
      .def("vectors", [](const BinaryIndex& f) {
        std::vector<float> v = f.vectors();
        size_t d = std::max<size_t>(f.dim(), 1);
        py::array_t<float> out({v.size() / d, f.dim()});
        std::copy(v.begin(), v.end(), out.mutable_data());
        return out;
      });
}
