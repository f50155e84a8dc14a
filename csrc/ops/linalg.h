// Dense linear algebra on Eigen (not differentiable: used for initialisation).
#pragma once
#include <tuple>

#include "core/tensor.h"

namespace peftcpp {

// Thin SVD of a 2-D float matrix W [m, n] = U·diag(S)·Vh, computed in double
// precision (LAPACK dgesdd from OpenBLAS): U [m, k], S [k] descending, Vh [k, n],
// k = min(m, n). Returned as float32. PiSSA initialises LoRA from it.
std::tuple<Tensor, Tensor, Tensor> svd(const Tensor& W);

}  // namespace peftcpp
