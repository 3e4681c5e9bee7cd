// Bindings of AttributeIndex (wrapped by adanns.attributes.AttributeStore): the attribute indexes
// and the one-call filter compiler. Writes and compiles run without the GIL; the index's own lock
// orders them.
#include <cstring>

#include "adanns/attribute_index.h"
#include "helpers.h"

namespace py = pybind11;
using namespace adanns;
using namespace adanns_bind;

namespace {

template <class T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <class T>
const T* column(const Array<T>& a, size_t n, const char* name) {
  if (a.ndim() != 1 || static_cast<size_t>(a.shape(0)) != n) raise(name, " must be a 1-D array of length ", n);
  return a.data();
}

}  // namespace

void bind_attributes(py::module_& m) {
  py::class_<AttributeIndex>(m, "AttributeIndex")
      .def(py::init<>())
      .def("declare", [](AttributeIndex& a, size_t field, int kind) {
        ADANNS_CHECK(kind >= 0 && kind <= 2, "unknown attribute kind ", kind);
        a.declare(field, static_cast<AttributeKind>(kind));
      })
      .def("append_rows", [](AttributeIndex& a, const IdArray& ids) {
        const size_t n = static_cast<size_t>(ids.size());
        const int64_t* p = column(ids, n, "ids");
        py::gil_scoped_release release;
        return a.append_rows(p, n);
      })
      .def("set_keywords", [](AttributeIndex& a, size_t field, size_t first, const Array<int64_t>& offsets,
                              const Array<int32_t>& codes) {
        if (offsets.ndim() != 1 || offsets.shape(0) < 1) raise("keyword offsets must be a non-empty 1-D array");
        const size_t n = static_cast<size_t>(offsets.shape(0)) - 1;
        const int64_t* o = offsets.data();
        const size_t nc = static_cast<size_t>(codes.size());
        if (codes.ndim() != 1 || o[n] != static_cast<int64_t>(nc)) raise("keyword offsets must end at len(codes) = ", nc);
        const int32_t* c = codes.data();
        py::gil_scoped_release release;
        a.set_keywords(field, first, n, o, c);
      })
      .def("set_ints", [](AttributeIndex& a, size_t field, size_t first, const Array<int64_t>& values,
                          const Array<uint8_t>& present) {
        const size_t n = static_cast<size_t>(values.size());
        const int64_t* v = column(values, n, "values");
        const uint8_t* p = column(present, n, "present");
        py::gil_scoped_release release;
        a.set_ints(field, first, n, v, p);
      })
      .def("set_floats", [](AttributeIndex& a, size_t field, size_t first, const Array<double>& values,
                            const Array<uint8_t>& present) {
        const size_t n = static_cast<size_t>(values.size());
        const double* v = column(values, n, "values");
        const uint8_t* p = column(present, n, "present");
        py::gil_scoped_release release;
        a.set_floats(field, first, n, v, p);
      })
      .def("remove", [](AttributeIndex& a, const IdArray& ids) {
        const size_t n = static_cast<size_t>(ids.size());
        const int64_t* p = column(ids, n, "ids");
        py::gil_scoped_release release;
        return a.remove(p, n);
      })
      .def("slots_of", [](const AttributeIndex& a, const IdArray& ids) {
        const size_t n = static_cast<size_t>(ids.size());
        const int64_t* p = column(ids, n, "ids");
        py::array_t<int64_t> out(n);
        int64_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          a.slots_of(p, n, o);
        }
        return out;
      })
      .def("live", &AttributeIndex::live)
      .def("slots", &AttributeIndex::slots)
      // The allowed ids of a program: a packed uint8 bitset over ids (numpy.packbits little bit
      // order, what the searches take) when packed_ok and the result is one, else ascending int64 ids.
      .def("compile", [](const AttributeIndex& a, const Array<int64_t>& program, bool packed_ok) -> py::array {
        const int64_t* p = program.data();
        const size_t len = static_cast<size_t>(program.size());
        CompiledFilter f;
        {
          py::gil_scoped_release release;
          f = a.compile(p, len);
        }
        if (f.is_bitset && packed_ok) {
          py::array_t<uint8_t> out((f.nbits + 7) / 8);
          std::memcpy(out.mutable_data(), f.bits.data(), static_cast<size_t>(out.size()));  // little-endian words
          return out;
        }
        py::array_t<int64_t> out(f.count);
        int64_t* o = out.mutable_data();
        if (f.is_bitset) {
          size_t j = 0;
          for (size_t w = 0; w < f.bits.size(); ++w)
            for (uint64_t word = f.bits[w]; word; word &= word - 1)
              o[j++] = static_cast<int64_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(word)));
        } else if (f.count) {
          std::memcpy(o, f.ids.data(), f.count * sizeof(int64_t));
        }
        return out;
      }, py::arg("program"), py::arg("packed_ok") = false);
}
