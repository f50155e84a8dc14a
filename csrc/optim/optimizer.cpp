#include "optim/optimizer.h"

namespace peftcpp {

void check_param(const char* op, size_t index, const Tensor& param) {
  PC_CHECK(param.defined(), "[", op, "] parameter ", index, " is undefined");
  PC_CHECK_TYPE(param.dtype() == DType::F32, "[", op, "] parameter ", index, " of shape ",
                shape_str(param.shape()), " is ", dtype_name(param.dtype()), "; only float32 parameters are trained");
  PC_CHECK(param.is_contiguous(), "[", op, "] parameter ", index, " of shape ", shape_str(param.shape()),
           " is not contiguous; it cannot be updated in place");
  PC_CHECK(param.storage()->writable, "[", op, "] parameter ", index, " of shape ", shape_str(param.shape()),
           " is read-only (memory-mapped); clone it before training it");
}

void check_grad(const char* op, size_t index, const Tensor& param, const Tensor& grad) {
  PC_CHECK(grad.defined() && grad.dtype() == DType::F32 && grad.is_contiguous() && grad.shape() == param.shape(),
           "[", op, "] the gradient of parameter ", index, " must be a contiguous float32 tensor of shape ",
           shape_str(param.shape()));
}

Tensor grad_for_update(const char* op, size_t index, const Tensor& param) {
  PC_CHECK(param.defined(), "[", op, "] parameter ", index, " is undefined");
  Tensor g = param.grad();
  if (!g.defined()) return g;
  check_param(op, index, param);
  PC_CHECK(g.shape() == param.shape(), "[", op, "] gradient of shape ", shape_str(g.shape()), " for parameter ",
           index, " of shape ", shape_str(param.shape()));
  return as_f32_contiguous(g);
}

void check_state(const char* op, size_t index, const char* what, const Tensor& param, const Tensor& state) {
  PC_CHECK(state.defined(), "[", op, "] ", what, " of parameter ", index, " is missing");
  PC_CHECK_TYPE(state.dtype() == DType::F32, "[", op, "] ", what, " of parameter ", index, " is ",
                dtype_name(state.dtype()), ", expected float32");
  PC_CHECK(state.shape() == param.shape(), "[", op, "] ", what, " of parameter ", index, " has shape ",
           shape_str(state.shape()), " but the parameter has shape ", shape_str(param.shape()));
  PC_CHECK(state.is_contiguous() && state.storage()->writable, "[", op, "] ", what, " of parameter ", index,
           " must be a contiguous writable tensor");
  PC_CHECK(state.storage() != param.storage(), "[", op, "] ", what, " of parameter ", index,
           " shares memory with the parameter");
}

void zero_grad(const std::vector<Tensor>& params, bool set_to_none) {
  for (Tensor p : params) {  // a handle copy: set_grad acts on the shared impl
    if (!p.defined() || !p.grad().defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      p.grad().zero_();
    }
  }
}

}  // namespace peftcpp
