// Broadcasting elementwise arithmetic and unary math, float32.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
// cond ? a : b, the three broadcast together; cond of any dtype (nonzero is true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor rsub_scalar(const Tensor& a, float s);  // s - a
Tensor rdiv_scalar(const Tensor& a, float s);  // s / a
Tensor pow_scalar(const Tensor& a, float p);
Tensor clamp(const Tensor& a, float lo, float hi);  // -inf / inf: no bound

Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sin(const Tensor& a);
Tensor cos(const Tensor& a);

}  // namespace peftcpp
