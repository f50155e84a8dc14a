// Gradient clipping by the global norm, as torch.nn.utils.clip_grad_norm_.
#pragma once
#include <limits>
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

// The norm of all gradients taken together (parameters without a gradient
// are skipped). When it exceeds max_norm every gradient is scaled in place by
// max_norm / (total + 1e-6). norm_type is p > 0 or infinity. Returns the
// total norm before clipping (as float32, like torch). With
// error_if_nonfinite a NaN/inf norm throws std::runtime_error instead.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

}  // namespace peftcpp
