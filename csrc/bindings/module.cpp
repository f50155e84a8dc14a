#include "bindings/common.h"
#include "core/error.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "peftcpp native engine: tensors, autograd, kernels, optimizers";
  py::register_exception<peftcpp::TypeError>(m, "DTypeError", PyExc_TypeError)
      .attr("__doc__") = "A tensor or value of the wrong dtype or type for an op (a TypeError)";
  peftcpp::init_tensor(m);
  peftcpp::init_ops(m);
  peftcpp::init_nn_ops(m);
  peftcpp::init_attention(m);
  peftcpp::init_loss(m);
  peftcpp::init_optim(m);
  peftcpp::init_io(m);
  peftcpp::init_gguf(m);
  peftcpp::init_quant(m);
  peftcpp::init_gguf_writer(m);
  peftcpp::init_quantize_model(m);
}
