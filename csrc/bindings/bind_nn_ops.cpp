#include "bindings/common.h"

namespace peftcpp {
void init_nn_ops(py::module_& m) {}
}  // namespace peftcpp
