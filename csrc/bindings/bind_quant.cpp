// The ggml type table (quant/ggml_types.h) and float32 -> ggml block formats
// (quant/quantize.h) for the GGUF exporter and python/peftcpp/gguf.
#include "bindings/common.h"
#include "core/error.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"

namespace peftcpp {

void init_quant(py::module_& m) {
  py::class_<GGMLTypeTraits>(m, "GGMLTypeTraits", "One row of the ggml type table (ggml.h's enum ggml_type)")
      .def_readonly("id", &GGMLTypeTraits::id, "ggml type id (ggml.h numbering, as stored in GGUF files)")
      .def_property_readonly("name", [](const GGMLTypeTraits& t) { return std::string(t.name); },
                             "Type name: 'F32', 'Q4_K', ...")
      .def_readonly("block_size", &GGMLTypeTraits::block_size, "Elements per block (1 for unblocked types)")
      .def_readonly("type_size", &GGMLTypeTraits::type_size, "Bytes per block")
      .def_property_readonly("dequantizable", &GGMLTypeTraits::dequantizable,
                             "Whether peftcpp decodes this type to float32")
      .def_property_readonly("quantizable", &GGMLTypeTraits::quantizable,
                             "Whether peftcpp writes this type from float32 (quantize_rows)")
      .def("__repr__", [](const GGMLTypeTraits& t) {
        return "GGMLTypeTraits(" + std::string(t.name) + ", id=" + std::to_string(t.id) +
               ", block_size=" + std::to_string(t.block_size) + ", type_size=" + std::to_string(t.type_size) + ")";
      }, "GGMLTypeTraits(NAME, id=..., block_size=..., type_size=...)");

  m.def(
      "ggml_types",
      []() {
        std::vector<GGMLTypeTraits> rows;
        for (const GGMLTypeTraits* t : ggml_types()) rows.push_back(*t);
        return rows;
      },
      "Every known ggml type: the unblocked types (F32, F16, ..., BF16) first, then the block types, each by id");

  m.def(
      "quantize_rows",
      [](py::array src, const std::string& type, int nthreads) {
        const int id = ggml_type_from_name(type.c_str());
        PC_CHECK(id >= 0, "[quantize_rows] unknown ggml type '", type, "'");
        PC_CHECK(can_quantize(id), "[quantize_rows] quantizing to ", type, " is not supported (supported: ",
                 ggml_type_names(&GGMLTypeTraits::quantizable), ")");
        PC_CHECK_TYPE(src.dtype().is(py::dtype::of<float>()), "[quantize_rows] expected a float32 array, got ",
                      py::str(src.dtype()).cast<std::string>());
        PC_CHECK(src.ndim() == 2, "[quantize_rows] expected a 2-D array (rows, n_per_row), got ", src.ndim(),
                 " dimensions");
        PC_CHECK(src.flags() & py::array::c_style, "[quantize_rows] the array must be C-contiguous");
        const int64_t nrows = src.shape(0), n_per_row = src.shape(1);
        const GGMLTypeTraits& tt = ggml_type_traits(id);
        PC_CHECK(n_per_row % tt.block_size == 0, "[quantize_rows] ", type, " quantizes blocks of ", tt.block_size,
                 " values: row length ", n_per_row, " (shape ", nrows, "x", n_per_row, ") is not a multiple of ",
                 tt.block_size);
        const size_t row_bytes = quantized_row_bytes(id, n_per_row);
        py::array_t<uint8_t> out({static_cast<ssize_t>(nrows), static_cast<ssize_t>(row_bytes)});
        const float* p = static_cast<const float*>(src.data());
        uint8_t* q = out.mutable_data();
        {
          py::gil_scoped_release nogil_;
          quantize_rows(id, p, q, nrows, n_per_row, nthreads);
        }
        return out;
      },
      py::arg("array"), py::arg("type"), py::arg("nthreads") = 0,
      "Quantizes each row of a C-contiguous float32 (rows, n) array to a ggml type ('Q4_K', 'Q8_0', 'F16', ...) "
      "exactly as ggml's reference quantizers; returns uint8 (rows, row_bytes). nthreads <= 0: engine default");
}

}  // namespace peftcpp
