#include "bindings/common.h"

namespace peftcpp {
void init_loss(py::module_& m) {}
}  // namespace peftcpp
