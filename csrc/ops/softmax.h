// Numerically stable softmax and log-softmax along one dimension.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

}  // namespace peftcpp
