#include "optim/fp_exact.h"
#include "optim/clip.h"

#include <cmath>
#include <stdexcept>

#include "optim/optimizer.h"

namespace peftcpp {

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  const bool inf_norm = std::isinf(norm_type) && norm_type > 0;
  PC_CHECK(inf_norm || (norm_type > 0 && std::isfinite(norm_type)),
           "[clip_grad_norm] norm_type must be > 0 or inf, got ", norm_type);
  std::vector<Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    PC_CHECK(params[i].defined(), "[clip_grad_norm] parameter ", i, " is undefined");
    Tensor g = params[i].grad();
    if (!g.defined()) continue;
    PC_CHECK_TYPE(g.dtype() == DType::F32, "[clip_grad_norm] the gradient of parameter ", i, " is ",
                  dtype_name(g.dtype()), ", expected float32");
    PC_CHECK(g.is_contiguous() && g.storage()->writable, "[clip_grad_norm] the gradient of parameter ", i,
             " of shape ", shape_str(g.shape()), " must be contiguous and writable to be scaled in place");
    grads.push_back(g);
  }
  if (grads.empty()) return 0.0;

  // Accumulated in double: the float32 result then matches torch's to
  // rounding, whatever the number of elements.
  double acc = 0.0;
  bool any_nan = false;  // max() would drop a NaN
  for (const Tensor& g : grads) {
    const float* d = g.data<float>();
    const int64_t n = g.numel();
    if (inf_norm) {
      double m = 0.0;
      int nan = 0;
#pragma omp parallel for if (n > kOptimParallelThreshold) reduction(max : m) reduction(|| : nan) schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        double a = std::fabs(static_cast<double>(d[i]));
        if (a != a) nan = 1;
        else if (a > m) m = a;
      }
      if (nan) any_nan = true;
      if (m > acc) acc = m;
    } else if (norm_type == 2.0) {
      double s = 0.0;
#pragma omp parallel for if (n > kOptimParallelThreshold) reduction(+ : s) schedule(static)
      for (int64_t i = 0; i < n; ++i) s += static_cast<double>(d[i]) * d[i];
      acc += s;
    } else {
      double s = 0.0;
#pragma omp parallel for if (n > kOptimParallelThreshold) reduction(+ : s) schedule(static)
      for (int64_t i = 0; i < n; ++i) s += std::pow(std::fabs(static_cast<double>(d[i])), norm_type);
      acc += s;
    }
  }
  double total_d;
  if (inf_norm) total_d = any_nan ? std::nan("") : acc;
  else total_d = norm_type == 2.0 ? std::sqrt(acc) : std::pow(acc, 1.0 / norm_type);
  const float total = static_cast<float>(total_d);
  if (error_if_nonfinite && !std::isfinite(total))
    throw std::runtime_error(detail::cat(
        "[clip_grad_norm] the total norm of order ", norm_type,
        " of the gradients is non-finite, so it cannot be clipped; pass error_if_nonfinite=False to scale "
        "the gradients by it anyway"));

  // torch: clamp(max_norm / (total + 1e-6), max=1), the division done as a
  // reciprocal times max_norm; a NaN norm makes NaN gradients, as there.
  const float coef = (1.0f / (total + 1e-6f)) * static_cast<float>(max_norm);
  if (!(coef >= 1.0f)) {
    for (const Tensor& g : grads) {
      float* d = g.data<float>();
      const int64_t n = g.numel();
#pragma omp parallel for if (n > kOptimParallelThreshold) schedule(static)
      for (int64_t i = 0; i < n; ++i) d[i] = d[i] * coef;
    }
  }
  return static_cast<double>(total);
}

}  // namespace peftcpp
