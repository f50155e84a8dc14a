// Norms, activations, embedding and dropout.
#include "bindings/common.h"
#include "ops/activation.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/norm.h"

namespace peftcpp {

void init_nn_ops(py::module_& m) {
  using T = const Tensor&;
  using Opt = std::optional<Tensor>;
  m.def("layer_norm",
        [](T x, Opt w, Opt b, float eps) { return layer_norm(x, w ? *w : Tensor(), b ? *b : Tensor(), eps); },
        py::arg("x"), py::arg("weight") = py::none(), py::arg("bias") = py::none(), py::arg("eps") = 1e-5f, nogil(),
        "Layer norm over the last dim (like torch.nn.functional.layer_norm)");
  m.def("rms_norm", [](T x, Opt w, float eps, float offset) { return rms_norm(x, w ? *w : Tensor(), eps, offset); },
        py::arg("x"), py::arg("weight") = py::none(), py::arg("eps") = 1e-6f, py::arg("offset") = 0.f, nogil(),
        "x / sqrt(mean(x^2) + eps) * (offset + weight); offset=1 for Gemma");

  m.def("gelu", &gelu, py::arg("x"), py::arg("approximate") = "none", nogil(),
        "GELU, exact (erf) or approximate='tanh' (like torch.nn.functional.gelu)");
  m.def("silu", &silu, py::arg("x"), nogil(), "x * sigmoid(x)");
  m.def("swiglu", &swiglu, py::arg("gate"), py::arg("up"), nogil(), "silu(gate) * up as one op");
  m.def("gelu_mul", &gelu_mul, py::arg("gate"), py::arg("up"), py::arg("approximate") = "tanh", nogil(),
        "gelu(gate) * up as one op (GeGLU)");

  m.def("embedding", &embedding, py::arg("ids"), py::arg("weight"), nogil(),
        "Rows ids (int32/int64, any shape) of weight [V, C]: float32 [..., C]; the gradient scatter-adds into weight");
  m.def("dropout", &dropout, py::arg("x"), py::arg("p") = 0.5f, py::arg("training") = true, nogil(),
        "Zeroes elements with probability p and scales the rest by 1/(1-p) when training (seeded generator)");
}

}  // namespace peftcpp
