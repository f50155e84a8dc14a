#include "bindings/common.h"
#include "ops/loss.h"

namespace peftcpp {

void init_loss(py::module_& m) {
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("targets"), py::arg("ignore_index") = -100,
        py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.f, nogil(),
        "torch.nn.functional.cross_entropy for logits [N, V] and class-index targets [N]");
  m.def("linear_cross_entropy", &linear_cross_entropy, py::arg("hidden"), py::arg("weight"), py::arg("targets"),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean", py::arg("chunk_size") = 4096,
        py::arg("softcap") = 0.f, nogil(),
        "cross_entropy(hidden @ weight.T, targets) (optionally softcapped) without materialising the logits: "
        "the vocabulary is processed chunk_size columns at a time");
}

}  // namespace peftcpp
