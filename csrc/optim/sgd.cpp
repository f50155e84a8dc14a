#include "optim/fp_exact.h"  // first: the pragma must precede the kernels
#include "optim/sgd.h"

#include <cmath>

#include "optim/optimizer.h"

namespace peftcpp {

namespace {
void check_options(const SGDOptions& o) {
  PC_CHECK(o.lr >= 0, "[SGD] invalid learning rate: ", o.lr);
  PC_CHECK(o.momentum >= 0, "[SGD] invalid momentum value: ", o.momentum);
  PC_CHECK(o.weight_decay >= 0, "[SGD] invalid weight_decay value: ", o.weight_decay);
  PC_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
           "[SGD] Nesterov momentum requires a momentum and zero dampening");
}
}  // namespace

// torch's add(x, alpha=a) is fma(x, a, self) on CPU, so every "+ alpha * x"
// below is one std::fma; other products round on their own.
void sgd_update(const Tensor& param, const Tensor& grad, SGDState& st, const SGDOptions& o, size_t index) {
  check_param("SGD", index, param);
  check_grad("SGD", index, param, grad);
  const bool use_momentum = o.momentum != 0;
  const bool first = use_momentum && !st.momentum_buffer.defined();
  if (first) st.momentum_buffer = Tensor::empty(param.shape());
  if (use_momentum) check_state("SGD", index, "momentum_buffer", param, st.momentum_buffer);

  const bool decay = o.weight_decay != 0;
  const float wd = static_cast<float>(o.weight_decay);
  const float mom = static_cast<float>(o.momentum);
  const float one_minus_damp = static_cast<float>(1 - o.dampening);
  const float neg_lr = static_cast<float>(-o.lr);
  const bool nesterov = o.nesterov;

  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* buf = use_momentum ? st.momentum_buffer.data<float>() : nullptr;
  const int64_t n = param.numel();
#pragma omp parallel for if (n > kOptimParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    if (decay) gi = std::fma(p[i], wd, gi);  // grad.add(param, alpha=wd)
    if (buf) {
      float b;
      if (first) {
        b = gi;  // buf = grad.clone()
      } else {
        b = std::fma(gi, one_minus_damp, buf[i] * mom);  // buf.mul_(m).add_(grad, alpha=1-d)
      }
      buf[i] = b;
      gi = nesterov ? std::fma(b, mom, gi) : b;  // grad.add(buf, alpha=m) or buf
    }
    p[i] = std::fma(gi, neg_lr, p[i]);  // param.add_(grad, alpha=-lr)
  }
}

void sgd_step(const std::vector<Tensor>& params, std::vector<SGDState>& states, const SGDOptions& o) {
  check_options(o);
  states.resize(params.size());
  std::vector<Tensor> grads(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    grads[i] = grad_for_update("SGD", i, params[i]);
    if (grads[i].defined() && states[i].momentum_buffer.defined() && o.momentum != 0)
      check_state("SGD", i, "momentum_buffer", params[i], states[i].momentum_buffer);
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (grads[i].defined()) sgd_update(params[i], grads[i], states[i], o, i);
}

SGD::SGD(std::vector<Tensor> params, SGDOptions opts) : options(opts), params_(std::move(params)) {
  check_options(options);
  state_.resize(params_.size());
}

void SGD::zero_grad(bool set_to_none) { peftcpp::zero_grad(params_, set_to_none); }

}  // namespace peftcpp
