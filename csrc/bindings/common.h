// Shared by the binding files. Each file binds one area with init_<area>(m);
// module.cpp assembles them. Heavy ops release the GIL (call_guard below).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <optional>

#include "core/tensor.h"

namespace py = pybind11;
using nogil = py::call_guard<py::gil_scoped_release>;

namespace peftcpp {
void init_tensor(py::module_& m);
void init_ops(py::module_& m);       // elementwise, reduce, shape, linear
void init_nn_ops(py::module_& m);    // norms, activations, embedding, dropout
void init_attention(py::module_& m); // softmax, rope, attention
void init_loss(py::module_& m);      // cross-entropy (fused with the output projection)
void init_optim(py::module_& m);     // AdamW, SGD, clipping
void init_io(py::module_& m);        // safetensors
void init_gguf(py::module_& m);      // GGUF files
void init_quant(py::module_& m);     // float32 -> ggml quantized rows
void init_gguf_writer(py::module_& m);  // GGUF writing
void init_quantize_model(py::module_& m);  // whole-file GGUF quantization
}  // namespace peftcpp
