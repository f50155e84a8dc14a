// What the optimizers share: which parameters take part in a step and the
// checks an in-place update needs. The update rules themselves live in
// adamw.h and sgd.h, gradient clipping in clip.h.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

// The gradient of param as a contiguous float32 tensor, or an undefined
// tensor when param has none (such parameters are skipped and get no state).
// Checks that param can be updated in place: float32, contiguous, writable,
// and that the gradient matches its shape. op and index name the parameter
// in the error message.
Tensor grad_for_update(const char* op, size_t index, const Tensor& param);

// param can be updated in place: float32, contiguous, writable.
void check_param(const char* op, size_t index, const Tensor& param);

// The gradient handed to an update kernel: contiguous float32 of param's shape.
void check_grad(const char* op, size_t index, const Tensor& param, const Tensor& grad);

// A state buffer for param (exp_avg, momentum, ...) must match it exactly.
void check_state(const char* op, size_t index, const char* what, const Tensor& param, const Tensor& state);

// Clears the gradients: dropped (set_to_none) or zeroed in place.
void zero_grad(const std::vector<Tensor>& params, bool set_to_none = true);

// Elementwise loops run on the OpenMP pool above this many elements; below
// it the threading overhead costs more than it saves.
constexpr int64_t kOptimParallelThreshold = 1 << 15;

}  // namespace peftcpp
