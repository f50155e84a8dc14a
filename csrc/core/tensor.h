// Tensor: a shared handle to (storage, offset, shape, strides, dtype) plus the
// autograd slots. Views share storage; strides are in elements.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace peftcpp {

using Shape = std::vector<int64_t>;
struct Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // elements
  Shape shape;
  Shape strides;  // elements
  DType dtype = DType::F32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves)
  std::shared_ptr<Node> grad_fn;     // producer (non-leaves)
  uint32_t output_nr = 0;
};

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. Fresh tensors are owned, contiguous and never require grad.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, float value, DType dtype = DType::F32);
  static Tensor from_storage(std::shared_ptr<Storage> st, const Shape& shape, DType dtype,
                             int64_t offset = 0, Shape strides = {});
  static Tensor scalar(float v) { return full({}, v); }

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return shape_numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  int64_t offset() const { return impl_->offset; }
  const std::shared_ptr<Storage>& storage() const { return impl_->storage; }
  bool is_contiguous() const;

  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * dtype_size(impl_->dtype);
  }
  // Typed pointer to the first element; checks the dtype, not contiguity.
  template <class T>
  T* data() const;
  float item() const;

  // Layout. These are raw views/copies without autograd; the differentiable
  // versions live in ops/shape.h.
  Tensor contiguous() const;  // self if already contiguous
  Tensor clone() const;       // always a fresh contiguous copy (no autograd)
  Tensor to(DType t) const;   // converted copy (self if same dtype)
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  Tensor view(const Shape& shape) const;  // requires a compatible layout
  void copy_(const Tensor& src);          // elementwise copy into self (same shape)
  void fill_(float v);
  void zero_() { fill_(0.f); }

  // Autograd.
  bool requires_grad() const { return impl_->requires_grad; }
  void set_requires_grad(bool r);
  Tensor grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor detach() const;  // shares storage, no history
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

template <class T>
struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::BOOL; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::F16; };  // or BF16

template <class T>
T* Tensor::data() const {
  if constexpr (std::is_same_v<T, uint16_t>) {
    PC_CHECK_TYPE(dtype() == DType::F16 || dtype() == DType::BF16,
                  "[data] expected a 16-bit float tensor, got ", dtype_name(dtype()));
  } else {
    PC_CHECK_TYPE(dtype() == dtype_of<T>::value, "[data] expected ", dtype_name(dtype_of<T>::value),
                  ", got ", dtype_name(dtype()));
  }
  return static_cast<T*>(raw_data());
}

// A float32 contiguous view of t: t itself when it already is one, otherwise a
// converted copy. Frozen f16/bf16 weights go through here on use.
Tensor as_f32_contiguous(const Tensor& t);

}  // namespace peftcpp
