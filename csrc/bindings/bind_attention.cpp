#include "bindings/common.h"
#include "ops/attention.h"
#include "ops/rope.h"
#include "ops/softmax.h"

namespace peftcpp {

void init_attention(py::module_& m) {
  using T = const Tensor&;
  m.def("softmax", &softmax, py::arg("x"), py::arg("dim") = -1, nogil());
  m.def("log_softmax", &log_softmax, py::arg("x"), py::arg("dim") = -1, nogil());
  m.def("rope", &rope, py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("interleaved") = false, nogil());
  m.def("scaled_dot_product_attention",
        [](T q, T k, T v, std::optional<Tensor> mask, bool is_causal, float scale, int64_t sliding_window,
           float softcap) {
          return scaled_dot_product_attention(q, k, v, mask ? *mask : Tensor(), is_causal, scale, sliding_window,
                                              softcap);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask") = py::none(), py::arg("is_causal") = true,
        py::arg("scale") = 0.f, py::arg("sliding_window") = 0, py::arg("softcap") = 0.f, nogil());
}

}  // namespace peftcpp
