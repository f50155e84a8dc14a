// Inverted dropout with a mask regenerated from the counter-based generator.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// Zeroes each element with probability p and scales the kept ones by
// 1/(1-p). Returns x itself (no copy, no node) when !training or p == 0.
// p must be in [0, 1). The mask is drawn from Generator::global() and never
// stored: the backward regenerates it from (seed, base offset).
Tensor dropout(const Tensor& x, float p, bool training);

}  // namespace peftcpp
