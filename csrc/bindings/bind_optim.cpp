#include "bindings/common.h"

namespace peftcpp {
void init_optim(py::module_& m) {}
}  // namespace peftcpp
