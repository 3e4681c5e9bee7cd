// Bindings of the PQ layer: the quantizer primitives (used by the Python OPQ trainer and the tests)
// and PQIndex (wrapped by adanns.OPQIndex and adanns.IVFOPQIndex).
#include <algorithm>
#include <memory>
#include <string>

#include "adanns/adc.h"
#include "adanns/fastscan.h"
#include "adanns/pq.h"
#include "adanns/pq_index.h"
#include "helpers.h"

namespace py = pybind11;
using namespace adanns;
using namespace adanns_bind;

namespace {

using CodeArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

ProductQuantizer quantizer(size_t pq_dim, size_t m, size_t nbits, const FloatArray& codebook) {
  ProductQuantizer pq(pq_dim, m, nbits);
  pq.set_centroids(std::vector<float>(codebook.data(), codebook.data() + codebook.size()));
  return pq;
}

py::array_t<float> to_array(const std::vector<float>& v, size_t cols) {
  py::array_t<float> out({cols ? v.size() / cols : 0, cols});
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

// A code beyond ksub would read outside the lookup table.
void check_codes(const CodeArray& codes, size_t ksub) {
  const uint8_t* c = codes.data();
  uint8_t top = 0;
  for (ssize_t i = 0, n = codes.size(); i < n; ++i) top = std::max(top, c[i]);
  ADANNS_CHECK(codes.size() == 0 || top < ksub, "code ", int(top), " exceeds ksub - 1 = ", ksub - 1);
}

Matrix rows_of(const FloatArray& x, size_t min_cols) {
  Matrix a = matrix(x, "x");
  ADANNS_CHECK(a.cols >= min_cols, "x must have at least ", min_cols, " columns, got ", a.cols);
  return a;
}

}  // namespace

void bind_pq(py::module_& m) {
  // Trains a codebook (m x ksub x dsub, flattened) on the first pq_dim columns of x.
  m.def("pq_train", [](const FloatArray& x, size_t pq_dim, size_t mm, size_t nbits, size_t niter, uint64_t seed,
                       int threads) {
    Matrix a = rows_of(x, pq_dim);
    ProductQuantizer pq(pq_dim, mm, nbits);
    {
      py::gil_scoped_release release;
      pq.train(a.data, a.rows, a.cols, niter, seed, threads);
    }
    return to_array(pq.centroids(), pq.dsub());
  });
  // Lloyd iterations from `codebook`, then the codes of x: (codebook, codes).
  m.def("pq_refine", [](const FloatArray& x, const FloatArray& codebook, size_t pq_dim, size_t mm, size_t nbits,
                        size_t niter, int threads) {
    Matrix a = rows_of(x, pq_dim);
    ProductQuantizer pq = quantizer(pq_dim, mm, nbits, codebook);
    py::array_t<uint8_t> codes({a.rows, mm});
    uint8_t* c = codes.mutable_data();
    {
      py::gil_scoped_release release;
      pq.refine(a.data, a.rows, a.cols, niter, threads);
      pq.encode(a.data, a.rows, a.cols, c, threads);
    }
    return py::make_tuple(to_array(pq.centroids(), pq.dsub()), codes);
  });
  m.def("pq_encode", [](const FloatArray& x, const FloatArray& codebook, size_t pq_dim, size_t mm, size_t nbits,
                        int threads) {
    Matrix a = rows_of(x, pq_dim);
    ProductQuantizer pq = quantizer(pq_dim, mm, nbits, codebook);
    py::array_t<uint8_t> codes({a.rows, mm});
    uint8_t* c = codes.mutable_data();
    py::gil_scoped_release release;
    pq.encode(a.data, a.rows, a.cols, c, threads);
    return codes;
  });
  m.def("pq_decode", [](const CodeArray& codes, const FloatArray& codebook, size_t pq_dim, size_t mm, size_t nbits) {
    ADANNS_CHECK(codes.ndim() == 2 && static_cast<size_t>(codes.shape(1)) == mm, "codes must be (n, m)");
    ProductQuantizer pq = quantizer(pq_dim, mm, nbits, codebook);
    size_t n = static_cast<size_t>(codes.shape(0));
    check_codes(codes, pq.ksub());
    py::array_t<float> out({n, pq_dim});
    pq.decode(codes.data(), n, out.mutable_data());
    return out;
  });
  // Lookup table (m x ksub) of one query prefix, "ip" or "l2".
  m.def("pq_lut", [](const FloatArray& q, const FloatArray& codebook, size_t pq_dim, size_t mm, size_t nbits,
                     const std::string& metric) {
    ADANNS_CHECK(q.ndim() == 1 && static_cast<size_t>(q.shape(0)) >= pq_dim, "q must be 1-D with >= pq_dim values");
    ProductQuantizer pq = quantizer(pq_dim, mm, nbits, codebook);
    py::array_t<float> out({mm, pq.ksub()});
    if (metric_from_name(metric) == Metric::L2) pq.lut_l2(q.data(), out.mutable_data());
    else pq.lut_ip(q.data(), out.mutable_data());
    return out;
  });
  // The dispatched ADC kernel: sums of table entries for (n, m) codes.
  m.def("kernel_adc_scan", [](const FloatArray& lut, const CodeArray& codes) {
    ADANNS_CHECK(lut.ndim() == 2 && codes.ndim() == 2 && codes.shape(1) == lut.shape(0), "lut (m, ksub), codes (n, m)");
    size_t mm = lut.shape(0), ksub = lut.shape(1), n = codes.shape(0);
    check_codes(codes, ksub);
    py::array_t<float> out(n);
    float* o = out.mutable_data();
    const float* l = lut.data();
    const uint8_t* c = codes.data();
    py::gil_scoped_release release;
    adc_scan(l, ksub, c, n, mm, o);
    return out;
  });

  // Fast-scan (4-bit) primitives, for tests: the quantized table of an (m, 16) float table
  // (negated first when `negate`) as ((m, 16) uint8, inv_scale, bias), and the dispatched kernel on
  // (n, m) plain codes packed into blocks here: (sums (n,) uint16, sum <= threshold (n,) bool).
  m.def("fastscan_quantize", [](const FloatArray& lut, bool negate) {
    ADANNS_CHECK(lut.ndim() == 2 && lut.shape(1) == 16 && lut.shape(0) >= 1, "lut must be (m, 16)");
    const size_t mm = lut.shape(0);
    FastScanLut q;
    fastscan_quantize(lut.data(), mm, negate, &q);
    py::array_t<uint8_t> table({mm, size_t(16)});
    std::copy_n(q.table.data(), mm * 16, table.mutable_data());
    return py::make_tuple(table, q.inv_scale, q.bias);
  });
  m.def("kernel_fastscan", [](const CodeArray& table, const CodeArray& codes, int threshold) {
    ADANNS_CHECK(table.ndim() == 2 && table.shape(1) == 16 && codes.ndim() == 2 && codes.shape(1) == table.shape(0),
                 "table (m, 16), codes (n, m)");
    ADANNS_CHECK(threshold >= 0 && threshold <= 65535, "threshold must be in 0..65535, got ", threshold);
    check_codes(codes, 16);
    const size_t mm = table.shape(0), n = codes.shape(0);
    std::vector<uint8_t> t(fastscan_pairs(mm) * 32, 0);
    std::copy_n(table.data(), mm * 16, t.data());
    const size_t nb = fastscan_blocks(n);
    std::vector<uint16_t> sums(nb * kFastScanBlock);
    std::vector<uint32_t> masks(nb);
    std::vector<uint8_t> blocks = fastscan_pack(codes.data(), n, mm);
    {
      py::gil_scoped_release release;
      fastscan_scan(blocks.data(), nb, mm, t.data(), static_cast<uint16_t>(threshold), sums.data(), masks.data());
    }
    py::array_t<uint16_t> out(n);
    py::array_t<bool> pass(n);
    for (size_t i = 0; i < n; ++i) {
      out.mutable_data()[i] = sums[i];
      pass.mutable_data()[i] = (masks[i / kFastScanBlock] >> (i % kFastScanBlock)) & 1u;
    }
    return py::make_tuple(out, pass);
  });
  m.def("fastscan_kernel_name", [] { return std::string(fastscan_kernel_name()); });

  py::class_<PQIndex> pq(m, "PQIndex");
  bind_stored_state<PQIndex>(pq);
  pq
      .def(py::init([](size_t dim, size_t nlist, size_t cluster_dim, size_t pq_dim, size_t mm, size_t nbits,
                       const std::string& metric, bool residual, bool store_vectors, uint64_t seed, size_t niter) {
        PQIndexConfig c;
        c.dim = dim, c.nlist = nlist, c.cluster_dim = cluster_dim, c.pq_dim = pq_dim, c.m = mm, c.nbits = nbits;
        c.metric = metric_from_name(metric), c.residual = residual, c.store_vectors = store_vectors;
        c.seed = seed, c.niter = niter;
        return std::make_unique<PQIndex>(c);
      }))
      .def_property_readonly("dim", [](const PQIndex& f) { return f.config().dim; })
      .def_property_readonly("nlist", [](const PQIndex& f) { return f.config().nlist; })
      .def_property_readonly("cluster_dim", [](const PQIndex& f) { return f.config().cluster_dim; })
      .def_property_readonly("pq_dim", [](const PQIndex& f) { return f.config().pq_dim; })
      .def_property_readonly("m", [](const PQIndex& f) { return f.config().m; })
      .def_property_readonly("nbits", [](const PQIndex& f) { return f.config().nbits; })
      .def_property_readonly("residual", [](const PQIndex& f) { return f.config().residual; })
      .def_property_readonly("store_vectors", [](const PQIndex& f) { return f.config().store_vectors; })
      .def_property_readonly("seed", [](const PQIndex& f) { return f.config().seed; })
      .def_property_readonly("niter", [](const PQIndex& f) { return f.config().niter; })
      .def_property_readonly("metric", [](const PQIndex& f) { return std::string(metric_name(f.config().metric)); })
      .def_property_readonly("is_trained", &PQIndex::is_trained)
      .def_property_readonly("has_rotation", &PQIndex::has_rotation)
      .def("size", &PQIndex::size)
      .def("bytes", &PQIndex::bytes)
      .def("list_sizes", [](const PQIndex& f) { return py::array_t<int64_t>(py::cast(f.list_sizes())); })
      .def("centroids", [](const PQIndex& f) { return to_array(f.centroids(), f.config().cluster_dim); })
      .def("rotation", [](const PQIndex& f) { return to_array(f.rotation(), f.config().pq_dim); })
      .def("codebook", [](const PQIndex& f) { return to_array(f.codebook(), f.config().pq_dim / f.config().m); })
      .def("coarse_kmeans", [](const PQIndex& f, const FloatArray& x, int threads) {
        Matrix a = rows_of(x, f.config().dim);
        std::vector<float> c;
        {
          py::gil_scoped_release release;
          c = f.coarse_kmeans(a.data, a.rows, threads);
        }
        return to_array(c, f.config().cluster_dim);
      })
      .def("training_targets", [](const PQIndex& f, const FloatArray& x, const FloatArray& centroids, int threads) {
        Matrix a = rows_of(x, f.config().dim);
        std::vector<float> y;
        {
          py::gil_scoped_release release;
          y = f.training_targets(a.data, a.rows, centroids.data(), threads);
        }
        return to_array(y, f.config().pq_dim);
      })
      .def("set_trained", [](PQIndex& f, const FloatArray& centroids, const py::object& rotation,
                             const FloatArray& codebook) {
        const PQIndexConfig& c = f.config();
        ADANNS_CHECK(static_cast<size_t>(centroids.size()) == c.nlist * c.cluster_dim, "centroids must be (nlist, cluster_dim)");
        FloatArray rot;
        const float* rp = nullptr;
        if (!rotation.is_none()) {
          rot = rotation.cast<FloatArray>();
          ADANNS_CHECK(static_cast<size_t>(rot.size()) == c.pq_dim * c.pq_dim, "rotation must be (pq_dim, pq_dim)");
          rp = rot.data();
        }
        f.set_trained(centroids.data(), rp, std::vector<float>(codebook.data(), codebook.data() + codebook.size()));
      })
      .def("add", [](PQIndex& f, const FloatArray& x, const py::object& ids, int threads) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.config().dim, "vectors must have dimension ", f.config().dim, ", got ", a.cols);
        IdArray holder;
        const int64_t* ip = optional_ids(ids, a.rows, holder);
        py::gil_scoped_release release;
        f.add(a.data, a.rows, ip, threads);
      })
      .def("encode", [](const PQIndex& f, const FloatArray& x, int threads) {
        Matrix a = matrix(x, "x");
        ADANNS_CHECK(a.cols == f.config().dim, "vectors must have dimension ", f.config().dim, ", got ", a.cols);
        std::vector<uint8_t> codes;
        {
          py::gil_scoped_release release;
          codes = f.encode(a.data, a.rows, threads);
        }
        py::array_t<uint8_t> out({a.rows, f.config().m});
        std::copy(codes.begin(), codes.end(), out.mutable_data());
        return out;
      })
      .def("next_id", &PQIndex::next_id)
      .def("search", [](const PQIndex& f, const FloatArray& q, size_t k, size_t nprobe, size_t rerank_dim,
                        size_t rerank_k, int threads, const Funnel& funnel, const py::object& filter,
                        double brute_force_below) {
        return run_filtered_search(f, q, make_params(k, nprobe, 1, rerank_dim, rerank_k, threads, funnel), filter,
                                   brute_force_below);
      }, py::arg("q"), py::arg("k"), py::arg("nprobe"), py::arg("rerank_dim"), py::arg("rerank_k"),
         py::arg("threads"), py::arg("funnel"), py::arg("filter") = py::none(),
         py::arg("brute_force_below") = kDefaultBruteForceBelow);
}
