#include "bindings/common.h"
#include "ops/attention.h"
#include "ops/rope.h"
#include "ops/softmax.h"

namespace peftcpp {

void init_attention(py::module_& m) {
  using T = const Tensor&;
  m.def("softmax", &softmax, py::arg("x"), py::arg("dim") = -1, nogil(), "Softmax along dim");
  m.def("log_softmax", &log_softmax, py::arg("x"), py::arg("dim") = -1, nogil(), "log(softmax(x)) along dim, stably");
  m.def("rope", &rope, py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("interleaved") = false, nogil(),
        "Rotary position embedding of x [B, H, T, D] with cos/sin [T, R/2] or [B, T, R/2]: x[..., :R] turns in "
        "pairs (i, i + R/2), or (2i, 2i + 1) when interleaved; the rest passes through");
  m.def("scaled_dot_product_attention",
        [](T q, T k, T v, std::optional<Tensor> mask, bool is_causal, float scale, int64_t sliding_window,
           float softcap) {
          return scaled_dot_product_attention(q, k, v, mask ? *mask : Tensor(), is_causal, scale, sliding_window,
                                              softcap);
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask") = py::none(), py::arg("is_causal") = true,
        py::arg("scale") = 0.f, py::arg("sliding_window") = 0, py::arg("softcap") = 0.f, nogil(),
        "softmax(q @ k.T * scale + mask) @ v for q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] -> "
        "[B, Hq, T, Dv] (grouped-query when Hkv < Hq). scale <= 0: 1/sqrt(D); is_causal: bottom-right aligned; "
        "sliding_window > 0 and softcap > 0 (softcap * tanh(z / softcap)) as Gemma uses them");
}

}  // namespace peftcpp
