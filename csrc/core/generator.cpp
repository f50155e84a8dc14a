#include "core/generator.h"

namespace peftcpp {
Generator& Generator::global() {
  static Generator g;
  return g;
}
}  // namespace peftcpp
