#include "optim/fp_exact.h"  // first: the pragma must precede the kernels
#include "optim/adamw.h"

#include <cmath>

#include "optim/optimizer.h"

namespace peftcpp {

namespace {
void check_options(const AdamWOptions& o) {
  PC_CHECK(o.lr >= 0, "[AdamW] invalid learning rate: ", o.lr);
  PC_CHECK(o.eps >= 0, "[AdamW] invalid epsilon value: ", o.eps);
  PC_CHECK(o.beta1 >= 0 && o.beta1 < 1, "[AdamW] invalid beta parameter at index 0: ", o.beta1);
  PC_CHECK(o.beta2 >= 0 && o.beta2 < 1, "[AdamW] invalid beta parameter at index 1: ", o.beta2);
  PC_CHECK(o.weight_decay >= 0, "[AdamW] invalid weight_decay value: ", o.weight_decay);
}
}  // namespace

void adamw_update(const Tensor& param, const Tensor& grad, AdamWState& st, const AdamWOptions& o,
                  size_t index) {
  check_param("AdamW", index, param);
  check_grad("AdamW", index, param, grad);
  if (!st.exp_avg.defined()) st.exp_avg = Tensor::zeros(param.shape());
  if (!st.exp_avg_sq.defined()) st.exp_avg_sq = Tensor::zeros(param.shape());
  check_state("AdamW", index, "exp_avg", param, st.exp_avg);
  check_state("AdamW", index, "exp_avg_sq", param, st.exp_avg_sq);
  st.step += 1;

  // Scalars exactly as torch forms them: Python doubles, each cast to float
  // where it meets a float32 tensor.
  const double step = static_cast<double>(st.step);
  const double bias_correction1 = 1 - std::pow(o.beta1, step);
  const double bias_correction2 = 1 - std::pow(o.beta2, step);
  const float neg_step_size = static_cast<float>(-(o.lr / bias_correction1));
  const float bc2_sqrt = static_cast<float>(std::pow(bias_correction2, 0.5));
  const float eps = static_cast<float>(o.eps);
  const bool decay = o.weight_decay != 0;
  const float decay_mul = static_cast<float>(1 - o.lr * o.weight_decay);
  // exp_avg.lerp_(grad, 1 - beta1): torch's lerp picks its formula by the
  // weight's size, both with one FMA.
  const float w = static_cast<float>(1 - o.beta1);
  const bool small_w = std::abs(w) < 0.5f;
  const float lerp_coeff = small_w ? w : w - 1.f;
  const float beta2 = static_cast<float>(o.beta2);
  const float one_minus_beta2 = static_cast<float>(1 - o.beta2);

  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* m = st.exp_avg.data<float>();
  float* v = st.exp_avg_sq.data<float>();
  const int64_t n = param.numel();
#pragma omp parallel for if (n > kOptimParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float pi = p[i];
    if (decay) pi = pi * decay_mul;                         // param.mul_(1 - lr * wd)
    const float gi = g[i];
    const float mi = m[i];
    const float m_new = std::fma(lerp_coeff, gi - mi, small_w ? mi : gi);  // lerp_
    const float v_new = std::fma(one_minus_beta2 * gi, gi, v[i] * beta2);  // mul_(b2).addcmul_(g, g, 1 - b2)
    const float denom = std::sqrt(v_new) / bc2_sqrt + eps;                 // (sqrt(v) / bc2_sqrt).add_(eps)
    p[i] = pi + (neg_step_size * m_new) / denom;                           // addcdiv_(m, denom, -step_size)
    m[i] = m_new;
    v[i] = v_new;
  }
}

void adamw_step(const std::vector<Tensor>& params, std::vector<AdamWState>& states, const AdamWOptions& o) {
  check_options(o);
  states.resize(params.size());
  // Validate everything first so that a bad parameter leaves none updated.
  std::vector<Tensor> grads(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    grads[i] = grad_for_update("AdamW", i, params[i]);
    if (!grads[i].defined()) continue;
    if (states[i].exp_avg.defined()) check_state("AdamW", i, "exp_avg", params[i], states[i].exp_avg);
    if (states[i].exp_avg_sq.defined()) check_state("AdamW", i, "exp_avg_sq", params[i], states[i].exp_avg_sq);
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (grads[i].defined()) adamw_update(params[i], grads[i], states[i], o, i);
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions opts) : options(opts), params_(std::move(params)) {
  check_options(options);
  state_.resize(params_.size());
}

void AdamW::zero_grad(bool set_to_none) { peftcpp::zero_grad(params_, set_to_none); }

}  // namespace peftcpp
