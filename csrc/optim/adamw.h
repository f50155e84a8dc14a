// AdamW with decoupled weight decay, numerically the single-tensor
// (foreach=False) path of torch.optim.AdamW.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// Per-parameter state; the buffers are created (zeros) on the first step.
struct AdamWState {
  int64_t step = 0;
  Tensor exp_avg;
  Tensor exp_avg_sq;
};

// One update of one parameter with gradient grad (contiguous float32, same
// shape); increments state.step. index names the parameter in errors.
void adamw_update(const Tensor& param, const Tensor& grad, AdamWState& state, const AdamWOptions& o,
                  size_t index = 0);

// Updates every parameter that has a gradient; states[i] belongs to
// params[i] (resized to match). Parameters without a gradient are skipped and
// their state is left untouched (empty for one that never had a gradient).
void adamw_step(const std::vector<Tensor>& params, std::vector<AdamWState>& states, const AdamWOptions& o);

// The optimizer for C++ callers: the parameters, their state and the options.
class AdamW {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  void step() { adamw_step(params_, state_, options); }
  void zero_grad(bool set_to_none = true);
  const std::vector<Tensor>& params() const { return params_; }
  // Exposed so it can be saved and restored exactly.
  std::vector<AdamWState>& state() { return state_; }

  AdamWOptions options;

 private:
  std::vector<Tensor> params_;
  std::vector<AdamWState> state_;
};

}  // namespace peftcpp
