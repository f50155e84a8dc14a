// SGD with momentum, dampening, Nesterov and L2 weight decay, numerically the
// single-tensor (foreach=False) path of torch.optim.SGD.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

// The momentum buffer is created on the first step (a copy of the gradient,
// as torch does) and only when momentum != 0.
struct SGDState {
  Tensor momentum_buffer;
};

void sgd_update(const Tensor& param, const Tensor& grad, SGDState& state, const SGDOptions& o, size_t index = 0);

// Updates every parameter that has a gradient; states[i] belongs to params[i].
void sgd_step(const std::vector<Tensor>& params, std::vector<SGDState>& states, const SGDOptions& o);

class SGD {
 public:
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  void step() { sgd_step(params_, state_, options); }
  void zero_grad(bool set_to_none = true);
  const std::vector<Tensor>& params() const { return params_; }
  std::vector<SGDState>& state() { return state_; }

  SGDOptions options;

 private:
  std::vector<Tensor> params_;
  std::vector<SGDState> state_;
};

}  // namespace peftcpp
