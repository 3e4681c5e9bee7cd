// Bindings of GraphIndex (wrapped by adanns.GraphIndex): every native loop runs without the GIL.
#include <memory>
#include <string>

#include "adanns/graph.h"
#include "helpers.h"

namespace py = pybind11;
using namespace adanns;
using namespace adanns_bind;

void bind_graph(py::module_& m) {
  py::class_<GraphIndex> g(m, "GraphIndex");
  bind_stored_state<GraphIndex>(g);
  g.def(py::init([](size_t dim, size_t graph_dim, size_t M, size_t ef_construction, const std::string& metric,
                    uint64_t seed, const std::string& storage) {
     ADANNS_CHECK(storage == "float32" || storage == "sq8", "storage must be 'float32' or 'sq8', got '", storage, "'");
     return std::make_unique<GraphIndex>(dim, graph_dim, M, ef_construction, metric_from_name(metric), seed,
                                         storage == "sq8" ? GraphStorage::SQ8 : GraphStorage::Float32);
   }))
      .def_property_readonly("dim", &GraphIndex::dim)
      .def_property_readonly("graph_dim", &GraphIndex::graph_dim)
      .def_property_readonly("M", &GraphIndex::M)
      .def_property_readonly("ef_construction", &GraphIndex::ef_construction)
      .def_property_readonly("seed", &GraphIndex::seed)
      .def_property_readonly("storage", [](const GraphIndex& f) {
        return std::string(f.storage() == GraphStorage::SQ8 ? "sq8" : "float32");
      })
      .def_property_readonly("metric", [](const GraphIndex& f) { return std::string(metric_name(f.metric())); })
      .def_property_readonly("max_level", &GraphIndex::max_level)
      .def("size", &GraphIndex::size)
      .def("tombstones", &GraphIndex::tombstones)
      .def("bytes", &GraphIndex::bytes)
      .def("add", [](GraphIndex& f, const FloatArray& x, const py::object& ids, int threads, bool replace) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.dim(), "vectors must have dimension ", f.dim(), ", got ", a.cols);
        IdArray holder;
        const int64_t* ip = optional_ids(ids, a.rows, holder);
        py::gil_scoped_release release;
        f.add(a.data, a.rows, ip, threads, replace);
      })
      .def("consolidate", [](GraphIndex& f, int threads) {
        py::gil_scoped_release release;
        f.consolidate(threads);
      })
      .def("neighbours", [](const GraphIndex& f, int64_t id) {
        std::vector<idx_t> v = f.neighbours(id);
        return py::array_t<int64_t>(v.size(), v.data());
      })
      .def("next_id", &GraphIndex::next_id)
      .def("search", [](const GraphIndex& f, const FloatArray& q, size_t k, size_t ef, size_t rerank_dim,
                        size_t rerank_k, int threads, const Funnel& funnel, const py::object& filter,
                        double brute_force_below) {
        SearchParams p = make_params(k, 1, 1, rerank_dim, rerank_k, threads, funnel);
        p.ef = ef;
        return run_filtered_search(f, q, p, filter, brute_force_below);
      }, py::arg("q"), py::arg("k"), py::arg("ef"), py::arg("rerank_dim"), py::arg("rerank_k"), py::arg("threads"),
         py::arg("funnel"), py::arg("filter") = py::none(), py::arg("brute_force_below") = kDefaultBruteForceBelow)
      .def("search_exact", [](const GraphIndex& f, const FloatArray& q, size_t k, int threads) {
        return search_arrays(q, k, [&](const Matrix& a, float* s, int64_t* i, double* fl) {
          f.search_exact(a.data, a.rows, a.cols, k, threads, s, i, fl);
        });
      });
}
