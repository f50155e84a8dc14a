// Float32 -> ggml block formats (quant/quantize.h) for the GGUF exporter and
// python/peftcpp/gguf/quants.py.
#include "bindings/common.h"
#include "core/error.h"
#include "quant/dequant.h"
#include "quant/quantize.h"

namespace peftcpp {

void init_quant(py::module_& m) {
  m.def(
      "quantize_rows",
      [](py::array src, const std::string& type, int nthreads) {
        const int id = ggml_type_from_name(type.c_str());
        PC_CHECK(id >= 0, "[quantize_rows] unknown ggml type '", type, "'");
        PC_CHECK(can_quantize(id), "[quantize_rows] quantizing to ", type,
                 " is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, "
                 "Q5_K, Q6_K)");
        PC_CHECK_TYPE(src.dtype().is(py::dtype::of<float>()), "[quantize_rows] expected a float32 array, got ",
                      py::str(src.dtype()).cast<std::string>());
        PC_CHECK(src.ndim() == 2, "[quantize_rows] expected a 2-D array (rows, n_per_row), got ", src.ndim(),
                 " dimensions");
        PC_CHECK(src.flags() & py::array::c_style, "[quantize_rows] the array must be C-contiguous");
        const int64_t nrows = src.shape(0), n_per_row = src.shape(1);
        const GGMLTypeTraits tt = ggml_type_traits(id);
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
