// Reductions over any set of dimensions (empty dims = all).
#pragma once
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, int64_t dim, bool keepdim = false);  // gradient to the (first) max

}  // namespace peftcpp
