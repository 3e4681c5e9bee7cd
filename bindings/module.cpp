// pybind11 module adanns._core: thin wrappers. Arrays arrive validated and converted by the Python
// layer (python/adanns/_validate.py); here we read pointers, release the GIL and call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <new>
#include <string>

#include "adanns/common.h"
#include "adanns/distances.h"
#include "adanns/flat.h"
#include "adanns/graph.h"
#include "adanns/id_map.h"
#include "adanns/io.h"
#include "adanns/ivf.h"
#include "adanns/kmeans.h"
#include "adanns/pq_index.h"
#include "adanns/simd.h"

#include "helpers.h"

namespace py = pybind11;
using namespace adanns;
using namespace adanns_bind;

void bind_pq(py::module_& m);
void bind_graph(py::module_& m);  // bindings/graph.cpp
void bind_attributes(py::module_& m);  // bindings/attributes.cpp

// bindings/binary.cpp
void bind_binary(py::module_& m);
py::object binary_index_from_file(IndexFile file);

namespace {

py::array_t<float> block_result(size_t rows, size_t cols) { return py::array_t<float>({rows, cols}); }

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "adanns native core";
  // Resolve the SIMD level now, so a bad ADANNS_SIMD fails the import with its message.
  active_simd_level();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const UnknownId& e) {
      PyErr_SetString(PyExc_KeyError, e.what());
    } catch (const StateError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      // pybind11 alone says only "std::bad_alloc"; the usual cause is a request sized by the caller.
      PyErr_SetString(PyExc_MemoryError,
                      "out of memory in the native core: the request needs more memory than is available "
                      "(a search's results are queries x k float32 scores and int64 ids)");
    }
  });

  m.attr("DEFAULT_BRUTE_FORCE_BELOW") = kDefaultBruteForceBelow;
  m.def("simd_level", [] { return std::string(simd_level_name(active_simd_level())); });
  m.def("available_simd_levels", [] {
    std::vector<std::string> out;
    for (SimdLevel l : available_simd_levels()) out.push_back(simd_level_name(l));
    return out;
  });
  m.def("set_simd_level", [](const std::string& name) { set_simd_level(simd_level_from_name(name)); });

  // Index of the first row holding NaN or infinity, or -1: one pass, no temporary arrays.
  m.def("first_nonfinite_row", [](const FloatArray& x) -> int64_t {
    Matrix a = matrix(x, "x");
    py::gil_scoped_release release;
    for (size_t i = 0; i < a.rows; ++i) {
      const float* row = a.data + i * a.cols;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // lanes, so the loop vectorises
      size_t j = 0;
      for (; j + 8 <= a.cols; j += 8)
        for (size_t l = 0; l < 8; ++l) acc[l] += row[j + l] * 0.f;  // NaN or inf makes a lane NaN
      for (; j < a.cols; ++j) acc[0] += row[j] * 0.f;
      for (float v : acc)
        if (v != v) return static_cast<int64_t>(i);
    }
    return -1;
  });

  // ---- kernel hooks for the tests
  m.def("kernel_block", [](const FloatArray& q, const FloatArray& x, size_t dim, const std::string& metric) {
    Matrix a = matrix(q, "q"), b = matrix(x, "x");
    ADANNS_CHECK(dim <= a.cols && dim <= b.cols, "dim exceeds the row width");
    auto out = block_result(a.rows, b.rows);
    float* o = out.mutable_data();
    Metric mt = metric_from_name(metric);
    py::gil_scoped_release release;
    if (mt == Metric::L2)
      block_l2(a.data, a.rows, a.cols, b.data, b.rows, b.cols, dim, o, b.rows);
    else
      block_ip(a.data, a.rows, a.cols, b.data, b.rows, b.cols, dim, o, b.rows);
    return out;
  });
  m.def("kernel_one_to_many", [](const FloatArray& q, const FloatArray& x, size_t dim, const std::string& metric) {
    ADANNS_CHECK(q.ndim() == 1, "q must be 1-D");
    Matrix b = matrix(x, "x");
    ADANNS_CHECK(dim <= static_cast<size_t>(q.shape(0)) && dim <= b.cols, "dim exceeds the row width");
    py::array_t<float> out(b.rows);
    float* o = out.mutable_data();
    Metric mt = metric_from_name(metric);
    const float* qp = q.data();
    py::gil_scoped_release release;
    if (mt == Metric::L2)
      one_to_many_l2(qp, b.data, b.rows, b.cols, dim, o);
    else
      one_to_many_ip(qp, b.data, b.rows, b.cols, dim, o);
    return out;
  });
  m.def("kernel_gemm_ip", [](const FloatArray& q, const FloatArray& x, size_t dim) {
    Matrix a = matrix(q, "q"), b = matrix(x, "x");
    ADANNS_CHECK(dim <= a.cols && dim <= b.cols, "dim exceeds the row width");
    auto out = block_result(a.rows, b.rows);
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    gemm_ip(a.data, a.rows, a.cols, b.data, b.rows, b.cols, dim, o, b.rows);
    return out;
  });
  m.def("kernel_pair", [](const FloatArray& a, const FloatArray& b, const std::string& metric) {
    Matrix x = matrix(a, "a"), y = matrix(b, "b");
    ADANNS_CHECK(x.rows == y.rows && x.cols == y.cols, "a and b must have the same shape");
    py::array_t<float> out(x.rows);
    float* o = out.mutable_data();
    const bool l2 = metric_from_name(metric) == Metric::L2;
    py::gil_scoped_release release;
    for (size_t i = 0; i < x.rows; ++i)
      o[i] = l2 ? pair_l2(x.data + i * x.cols, y.data + i * y.cols, x.cols)
                : pair_ip(x.data + i * x.cols, y.data + i * y.cols, x.cols);
    return out;
  });
  m.def("kernel_dot_u8", [](const FloatArray& q, const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& codes) {
    Matrix a = matrix(q, "q");
    ADANNS_CHECK(codes.ndim() == 2 && static_cast<size_t>(codes.shape(1)) == a.cols,
                 "codes must be (n, ", a.cols, ") uint8");
    size_t n = static_cast<size_t>(codes.shape(0));
    auto out = block_result(a.rows, n);
    float* o = out.mutable_data();
    const uint8_t* c = codes.data();
    py::gil_scoped_release release;
    for (size_t i = 0; i < a.rows; ++i)
      for (size_t j = 0; j < n; ++j) o[i * n + j] = dot_u8(a.data + i * a.cols, c + j * a.cols, a.cols);
    return out;
  });
  m.def("kernel_norms_sq", [](const FloatArray& x, size_t dim) {
    Matrix b = matrix(x, "x");
    ADANNS_CHECK(dim <= b.cols, "dim exceeds the row width");
    py::array_t<float> out(b.rows);
    float* o = out.mutable_data();
    py::gil_scoped_release release;
    norms_sq(b.data, b.rows, b.cols, dim, o);
    return out;
  });

  m.def("kmeans", [](const FloatArray& x, size_t k, size_t dim, size_t niter, uint64_t seed, int threads,
                     size_t max_points_per_centroid) {
    Matrix a = matrix(x, "x");
    ADANNS_CHECK(dim >= 1 && dim <= a.cols, "dim must be in 1..", a.cols, ", got ", dim);
    KMeansParams p;
    p.k = k;
    p.niter = niter;
    p.seed = seed;
    p.threads = threads;
    p.max_points_per_centroid = max_points_per_centroid;
    KMeansResult r;
    {
      py::gil_scoped_release release;
      r = kmeans(a.data, a.rows, a.cols, dim, p);
    }
    py::array_t<float> c({k, dim});
    std::copy(r.centroids.begin(), r.centroids.end(), c.mutable_data());
    return py::make_tuple(c, r.objective);
  });

  py::class_<FlatIndex> flat(m, "FlatIndex");
  bind_stored_state<FlatIndex>(flat);
  flat
      .def(py::init([](size_t dim, const std::string& metric) {
        return std::make_unique<FlatIndex>(dim, metric_from_name(metric));
      }))
      .def_property_readonly("dim", &FlatIndex::dim)
      .def_property_readonly("metric", [](const FlatIndex& f) { return std::string(metric_name(f.metric())); })
      .def("size", &FlatIndex::size)
      .def("next_id", &FlatIndex::next_id)
      .def("bytes", &FlatIndex::bytes)
      .def("add", [](FlatIndex& f, const FloatArray& x, const py::object& ids) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.dim(), "vectors must have dimension ", f.dim(), ", got ", a.cols);
        IdArray holder;
        const int64_t* ip = optional_ids(ids, a.rows, holder);
        py::gil_scoped_release release;
        f.add(a.data, a.rows, ip);
      })
      .def("search", [](const FlatIndex& f, const FloatArray& q, size_t k, size_t search_dim, size_t rerank_dim,
                        size_t rerank_k, int threads, const Funnel& funnel, const py::object& filter,
                        double brute_force_below) {
        return run_filtered_search(f, q, make_params(k, 1, search_dim, rerank_dim, rerank_k, threads, funnel),
                                   filter, brute_force_below);
      }, py::arg("q"), py::arg("k"), py::arg("search_dim"), py::arg("rerank_dim"), py::arg("rerank_k"),
         py::arg("threads"), py::arg("funnel"), py::arg("filter") = py::none(),
         py::arg("brute_force_below") = kDefaultBruteForceBelow)
      .def("estimate_mflops", [](const FlatIndex& f, size_t k, size_t search_dim, size_t rerank_dim, size_t rerank_k,
                                 const Funnel& funnel) {
        return f.estimate_mflops(make_params(k, 1, search_dim, rerank_dim, rerank_k, 1, funnel));
      });

  py::class_<IVFIndex> ivf(m, "IVFIndex");
  bind_stored_state<IVFIndex>(ivf);
  ivf
      .def(py::init([](size_t dim, size_t nlist, const std::string& metric, size_t cluster_dim, uint64_t seed,
                       size_t niter) {
        return std::make_unique<IVFIndex>(dim, nlist, metric_from_name(metric), cluster_dim, seed, niter);
      }))
      .def_property_readonly("dim", &IVFIndex::dim)
      .def_property_readonly("nlist", &IVFIndex::nlist)
      .def_property_readonly("cluster_dim", &IVFIndex::cluster_dim)
      .def_property_readonly("seed", &IVFIndex::seed)
      .def_property_readonly("niter", &IVFIndex::niter)
      .def_property_readonly("metric", [](const IVFIndex& f) { return std::string(metric_name(f.metric())); })
      .def_property_readonly("is_trained", &IVFIndex::is_trained)
      .def("size", &IVFIndex::size)
      .def("next_id", &IVFIndex::next_id)
      .def("bytes", &IVFIndex::bytes)
      .def("list_sizes", [](const IVFIndex& f) { return py::array_t<int64_t>(py::cast(f.list_sizes())); })
      .def("centroids", [](const IVFIndex& f) {
        std::vector<float> c = f.centroids();
        py::array_t<float> out({c.size() / f.cluster_dim(), f.cluster_dim()});
        std::copy(c.begin(), c.end(), out.mutable_data());
        return out;
      })
      .def("train", [](IVFIndex& f, const FloatArray& x, int threads) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.dim(), "vectors must have dimension ", f.dim(), ", got ", a.cols);
        py::gil_scoped_release release;
        f.train(a.data, a.rows, threads);
      })
      .def("add", [](IVFIndex& f, const FloatArray& x, const py::object& ids, int threads) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.dim(), "vectors must have dimension ", f.dim(), ", got ", a.cols);
        IdArray holder;
        const int64_t* ip = optional_ids(ids, a.rows, holder);
        py::gil_scoped_release release;
        f.add(a.data, a.rows, ip, threads);
      })
      .def("search", [](const IVFIndex& f, const FloatArray& q, size_t k, size_t nprobe, size_t search_dim,
                        size_t rerank_dim, size_t rerank_k, int threads, const Funnel& funnel,
                        const py::object& filter, double brute_force_below) {
        return run_filtered_search(f, q, make_params(k, nprobe, search_dim, rerank_dim, rerank_k, threads, funnel),
                                   filter, brute_force_below);
      }, py::arg("q"), py::arg("k"), py::arg("nprobe"), py::arg("search_dim"), py::arg("rerank_dim"),
         py::arg("rerank_k"), py::arg("threads"), py::arg("funnel"), py::arg("filter") = py::none(),
         py::arg("brute_force_below") = kDefaultBruteForceBelow)
      .def("estimate_mflops", [](const IVFIndex& f, size_t qdim, size_t k, size_t nprobe, size_t search_dim,
                                 size_t rerank_dim, size_t rerank_k, const Funnel& funnel) {
        return f.estimate_mflops(make_params(k, nprobe, search_dim, rerank_dim, rerank_k, 1, funnel), qdim);
      });

  bind_binary(m);
  bind_pq(m);
  bind_graph(m);
  bind_attributes(m);

  m.def("load", [](const std::string& path, bool mmap, bool verify) -> py::object {
    IndexFile file;
    {
      py::gil_scoped_release release;
      file = read_index_file(path, mmap, verify);
    }
    if (file.kind == IndexKind::Flat) return py::cast(FlatIndex::from_file(std::move(file)));
    if (file.kind == IndexKind::Binary) return binary_index_from_file(std::move(file));
    if (file.kind == IndexKind::PQ) return py::cast(PQIndex::from_file(std::move(file)));
    if (file.kind == IndexKind::Graph) return py::cast(GraphIndex::from_file(std::move(file)));
    return py::cast(IVFIndex::from_file(std::move(file)));
  });
}
