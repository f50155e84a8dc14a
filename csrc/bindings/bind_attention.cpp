#include "bindings/common.h"

namespace peftcpp {
void init_attention(py::module_& m) {}
}  // namespace peftcpp
