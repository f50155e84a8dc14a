#include "bindings/common.h"

namespace peftcpp {
void init_io(py::module_& m) {}
}  // namespace peftcpp
