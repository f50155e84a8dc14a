// Optimizer kernels. The Python optimizers (peftcpp.optim) keep the
// param_groups and the per-parameter state dicts in torch's layout; one call
// here updates a whole group in place without the GIL. State entries are
// None until a parameter's first step, and are returned (created where a
// parameter had a gradient, untouched where it had none).
#include "bindings/common.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/sgd.h"

namespace peftcpp {

namespace {
using OptTensor = std::optional<Tensor>;
Tensor or_undefined(const OptTensor& t) { return t ? *t : Tensor(); }
OptTensor or_none(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }
}  // namespace

void init_optim(py::module_& m) {
  m.def(
      "adamw_step",
      [](const std::vector<Tensor>& params, const std::vector<OptTensor>& exp_avgs,
         const std::vector<OptTensor>& exp_avg_sqs, const std::vector<int64_t>& steps, double lr, double beta1,
         double beta2, double eps, double weight_decay) {
        const size_t n = params.size();
        PC_CHECK(exp_avgs.size() == n && exp_avg_sqs.size() == n && steps.size() == n,
                 "[adamw_step] expected one exp_avg, exp_avg_sq and step per parameter (", n, " parameters)");
        std::vector<AdamWState> states(n);
        for (size_t i = 0; i < n; ++i) {
          PC_CHECK(steps[i] >= 0, "[adamw_step] step of parameter ", i, " is negative");
          states[i] = {steps[i], or_undefined(exp_avgs[i]), or_undefined(exp_avg_sqs[i])};
        }
        adamw_step(params, states, {lr, beta1, beta2, eps, weight_decay});
        std::vector<OptTensor> m_out(n), v_out(n);
        std::vector<int64_t> s_out(n);
        for (size_t i = 0; i < n; ++i) {
          m_out[i] = or_none(states[i].exp_avg);
          v_out[i] = or_none(states[i].exp_avg_sq);
          s_out[i] = states[i].step;
        }
        return std::make_tuple(m_out, v_out, s_out);
      },
      py::arg("params"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("steps"), py::arg("lr"),
      py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), nogil(),
      "One AdamW step (torch.optim.AdamW, foreach=False) over params that have a .grad; returns the updated "
      "(exp_avgs, exp_avg_sqs, steps)");

  m.def(
      "sgd_step",
      [](const std::vector<Tensor>& params, const std::vector<OptTensor>& momentum_buffers, double lr,
         double momentum, double dampening, double weight_decay, bool nesterov) {
        const size_t n = params.size();
        PC_CHECK(momentum_buffers.size() == n, "[sgd_step] expected one momentum buffer (or None) per parameter (",
                 n, " parameters)");
        std::vector<SGDState> states(n);
        for (size_t i = 0; i < n; ++i) states[i].momentum_buffer = or_undefined(momentum_buffers[i]);
        sgd_step(params, states, {lr, momentum, dampening, weight_decay, nesterov});
        std::vector<OptTensor> out(n);
        for (size_t i = 0; i < n; ++i) out[i] = or_none(states[i].momentum_buffer);
        return out;
      },
      py::arg("params"), py::arg("momentum_buffers"), py::arg("lr"), py::arg("momentum") = 0.0,
      py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, nogil(),
      "One SGD step (torch.optim.SGD, foreach=False); returns the momentum buffers");

  m.def("clip_grad_norm", &clip_grad_norm, py::arg("params"), py::arg("max_norm"), py::arg("norm_type") = 2.0,
        py::arg("error_if_nonfinite") = false, nogil(),
        "Scales the gradients in place so their global norm is at most max_norm; returns the norm before");
}

}  // namespace peftcpp
