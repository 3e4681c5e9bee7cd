// Helpers shared by the binding files: array access, search parameters, the GIL-free search call.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "adanns/common.h"
#include "adanns/search.h"

namespace adanns_bind {

namespace py = pybind11;
using namespace adanns;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

struct Matrix {
  const float* data;
  size_t rows, cols;
};

inline Matrix matrix(const FloatArray& a, const char* name) {
  if (a.ndim() != 2) raise(name, " must be 2-D, got ", a.ndim(), "-D");
  return {a.data(), static_cast<size_t>(a.shape(0)), static_cast<size_t>(a.shape(1))};
}

// Re-ranking stages as (dim, keep) pairs; empty: plain re-ranking by rerank_dim (0: none).
using Funnel = std::vector<std::pair<size_t, size_t>>;

inline SearchParams make_params(size_t k, size_t nprobe, size_t search_dim, size_t rerank_dim,
                                size_t rerank_k, int threads, const Funnel& funnel = {}) {
  SearchParams p;
  p.k = k;
  p.nprobe = nprobe;
  p.search_dim = search_dim;
  p.threads = threads;
  p.set_rerank(rerank_dim, rerank_k);
  for (const auto& st : funnel) p.stages.push_back({st.first, st.second});
  ADANNS_CHECK(funnel.empty() || rerank_dim == 0, "give either rerank_dim or funnel, not both");
  return p;
}

// Allocates (scores, ids, mflops) for the queries and calls search(m, scores, ids, mflops) with the GIL
// released; returns the three arrays.
template <class Search>
py::tuple search_arrays(const FloatArray& q, size_t k, Search&& search) {
  Matrix m = matrix(q, "queries");
  py::array_t<float> scores({m.rows, k});
  py::array_t<int64_t> ids({m.rows, k});
  py::array_t<double> mflops(m.rows);
  float* s = scores.mutable_data();
  int64_t* i = ids.mutable_data();
  double* f = mflops.mutable_data();
  {
    py::gil_scoped_release release;
    search(m, s, i, f);
  }
  return py::make_tuple(scores, ids, mflops);
}

// Runs index.search with the GIL released and returns (scores, ids, mflops) as new arrays.
template <class Index, class... Extra>
py::tuple run_search(const Index& index, const FloatArray& q, const SearchParams& p) {
  return search_arrays(q, p.k, [&](const Matrix& m, float* s, int64_t* i, double* f) {
    index.search(m.data, m.rows, m.cols, p, s, i, f);
  });
}

// A search's filter argument, read with the GIL held: None, a packed uint8 bitset over ids, or the
// allowed ids (ascending, unique int64). make() builds the AllowedIds (checked; call it without the GIL).
struct __attribute__((visibility("hidden"))) FilterArg {  // hidden, as the pybind11 types it holds
  bool given = false, packed = false;
  py::array_t<uint8_t, py::array::c_style | py::array::forcecast> bits;
  IdArray allowed;

  FilterArg(const py::object& filter, double brute_force_below) {
    ADANNS_CHECK(brute_force_below >= 0 && brute_force_below <= 1, "brute_force_below must be in [0, 1], got ",
                 brute_force_below);
    if (filter.is_none()) return;
    given = true;
    packed = py::isinstance<py::array>(filter) && filter.cast<py::array>().dtype().is(py::dtype::of<uint8_t>());
    if (packed) {
      bits = filter.cast<py::array_t<uint8_t, py::array::c_style | py::array::forcecast>>();
      if (bits.ndim() != 1) raise("filter bitset must be 1-D, got ", bits.ndim(), "-D");
    } else {
      allowed = filter.cast<IdArray>();
      if (allowed.ndim() != 1) raise("filter ids must be 1-D, got ", allowed.ndim(), "-D");
    }
  }
  AllowedIds make() const {
    return packed ? AllowedIds(bits.data(), static_cast<size_t>(bits.shape(0)))
                  : AllowedIds(allowed.data(), static_cast<size_t>(allowed.shape(0)));
  }
};

// run_search with an optional filter (FilterArg), turned into the search's AllowedIds with the GIL
// released.
template <class Index>
py::tuple run_filtered_search(const Index& index, const FloatArray& q, SearchParams p, const py::object& filter,
                              double brute_force_below) {
  FilterArg arg(filter, brute_force_below);
  if (!arg.given) return run_search(index, q, p);
  return search_arrays(q, p.k, [&](const Matrix& m, float* s, int64_t* i, double* f) {
    AllowedIds set = arg.make();
    p.filter = &set;
    p.brute_force_below = brute_force_below;
    index.search(m.data, m.rows, m.cols, p, s, i, f);
  });
}

inline const int64_t* optional_ids(const py::object& ids, size_t n, IdArray& holder) {
  if (ids.is_none()) return nullptr;
  holder = ids.cast<IdArray>();
  if (holder.ndim() != 1 || static_cast<size_t>(holder.shape(0)) != n)
    raise("ids must be a 1-D array of length ", n);
  return holder.data();
}

// The methods every index binds alike: remove by id, the stored ids, the user metadata, save.
template <class Index, class Class>
void bind_stored_state(Class& cls) {
  cls.def("remove", [](Index& f, const IdArray& ids) {
       const int64_t* p = ids.data();
       size_t n = static_cast<size_t>(ids.size());
       py::gil_scoped_release release;
       return f.remove(p, n);
     })
      .def("ids", [](const Index& f) {
        std::vector<idx_t> v = f.ids();
        return py::array_t<int64_t>(v.size(), v.data());
      })
      .def("user_meta", [](const Index& f) { return py::bytes(f.user_meta()); })
      .def("set_user_meta", [](Index& f, const py::bytes& b) { f.set_user_meta(std::string(b)); })
      .def("save", [](const Index& f, const std::string& path) {
        py::gil_scoped_release release;
        f.save(path);
      });
}

}  // namespace adanns_bind
