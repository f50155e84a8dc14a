#include "core/tensor.h"

#include <cstring>

#include "core/autograd.h"

namespace peftcpp {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  PC_CHECK_INDEX(d >= 0 && d < n, "[size] dimension ", d, " out of range for shape ", shape_str(shape()));
  return impl_->shape[d];
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (auto d : shape) PC_CHECK(d >= 0, "[empty] negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(shape_numel(shape) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  for (auto d : shape) PC_CHECK(d >= 0, "[zeros] negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(shape_numel(shape) * dtype_size(dtype), /*zero=*/true);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::full(const Shape& shape, float value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> st, const Shape& shape, DType dtype, int64_t offset,
                            Shape strides) {
  if (strides.empty() && !shape.empty()) strides = contiguous_strides(shape);
  // The furthest element addressed must lie inside the storage.
  int64_t last = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    PC_CHECK(shape[i] >= 0, "[from_storage] negative dimension in shape ", shape_str(shape));
    if (shape[i] == 0) { last = -1; break; }
    last += (shape[i] - 1) * strides[i];
  }
  PC_CHECK(last < 0 || (offset >= 0 && static_cast<size_t>(last + 1) * dtype_size(dtype) <= st->nbytes),
           "[from_storage] shape ", shape_str(shape), " of ", dtype_name(dtype), " at offset ", offset,
           " does not fit in a buffer of ", st->nbytes, " bytes");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(st);
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = dtype;
  return Tensor(impl);
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != acc) return false;
    acc *= impl_->shape[i];
  }
  return true;
}

float Tensor::item() const {
  PC_CHECK(numel() == 1, "[item] only a one-element tensor converts to a number; shape is ",
           shape_str(shape()));
  float v;
  Tensor c = contiguous();
  convert_to_f32(c.raw_data(), dtype(), &v, 1);
  return v;
}

namespace {
// Copies a strided tensor into a dense buffer of the same dtype.
void gather_strided(const Tensor& src, void* dst) {
  const size_t es = dtype_size(src.dtype());
  const int64_t nd = src.dim();
  const int64_t n = src.numel();
  if (n == 0) return;
  const char* base = static_cast<const char*>(src.storage()->data);
  const Shape& sh = src.shape();
  const Shape& st = src.strides();
  // Innermost dimension copied in a loop; outer ones walked with an index.
  int64_t inner = nd ? sh[nd - 1] : 1;
  int64_t inner_stride = nd ? st[nd - 1] : 1;
  int64_t outer = n / inner;
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rem = o, off = src.offset();
    for (int64_t d = nd - 2; d >= 0; --d) {
      off += (rem % sh[d]) * st[d];
      rem /= sh[d];
    }
    char* out = static_cast<char*>(dst) + o * inner * es;
    if (inner_stride == 1) {
      std::memcpy(out, base + off * es, inner * es);
    } else {
      for (int64_t i = 0; i < inner; ++i) std::memcpy(out + i * es, base + (off + i * inner_stride) * es, es);
    }
  }
}
}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  if (is_contiguous())
    std::memcpy(out.raw_data(), raw_data(), numel() * dtype_size(dtype()));
  else
    gather_strided(*this, out.raw_data());
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), t);
  if (dtype() == DType::F32) {
    convert_from_f32(src.data<float>(), out.raw_data(), t, numel());
  } else if (t == DType::F32) {
    convert_to_f32(src.raw_data(), dtype(), out.data<float>(), numel());
  } else if ((dtype() == DType::I32 || dtype() == DType::I64) && (t == DType::I32 || t == DType::I64)) {
    int64_t n = numel();
    if (t == DType::I64) {
      auto s = src.data<int32_t>(); auto d = out.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    } else {
      auto s = src.data<int64_t>(); auto d = out.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int32_t>(s[i]);
    }
  } else {
    Tensor mid = src.to(DType::F32);
    convert_from_f32(mid.data<float>(), out.raw_data(), t, numel());
  }
  return out;
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  return from_storage(storage(), shape, dtype(), offset, strides);
}

Tensor Tensor::view(const Shape& new_shape) const {
  PC_CHECK(shape_numel(new_shape) == numel(), "[view] shape ", shape_str(new_shape),
           " is invalid for a tensor of shape ", shape_str(shape()), " (", numel(), " elements)");
  PC_CHECK(is_contiguous(), "[view] tensor of shape ", shape_str(shape()),
           " is not contiguous; use reshape");
  return from_storage(storage(), new_shape, dtype(), offset());
}

void Tensor::copy_(const Tensor& src) {
  PC_CHECK(src.shape() == shape(), "[copy_] shape ", shape_str(src.shape()), " into ", shape_str(shape()));
  PC_CHECK(storage()->writable, "[copy_] destination is read-only (memory-mapped)");
  PC_CHECK(is_contiguous(), "[copy_] destination must be contiguous");
  Tensor s = src.contiguous();
  if (s.dtype() == dtype()) {
    if (s.raw_data() != raw_data()) std::memmove(raw_data(), s.raw_data(), numel() * dtype_size(dtype()));
  } else {
    Tensor c = s.to(dtype());
    std::memcpy(raw_data(), c.raw_data(), numel() * dtype_size(dtype()));
  }
}

void Tensor::fill_(float v) {
  PC_CHECK(storage()->writable, "[fill_] tensor is read-only (memory-mapped)");
  PC_CHECK(is_contiguous(), "[fill_] tensor must be contiguous");
  int64_t n = numel();
  switch (dtype()) {
    case DType::F32: { float* p = data<float>(); for (int64_t i = 0; i < n; ++i) p[i] = v; break; }
    case DType::F16: { uint16_t h = float_to_half(v); auto p = static_cast<uint16_t*>(raw_data()); for (int64_t i = 0; i < n; ++i) p[i] = h; break; }
    case DType::BF16: { uint16_t h = float_to_bf16(v); auto p = static_cast<uint16_t*>(raw_data()); for (int64_t i = 0; i < n; ++i) p[i] = h; break; }
    case DType::I32: { auto p = data<int32_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(v); break; }
    case DType::I64: { auto p = data<int64_t>(); for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(v); break; }
    case DType::BOOL: { auto p = data<uint8_t>(); for (int64_t i = 0; i < n; ++i) p[i] = v != 0.f; break; }
  }
}

void Tensor::set_requires_grad(bool r) {
  if (r) {
    PC_CHECK_TYPE(dtype() == DType::F32, "[requires_grad_] only float32 tensors can require grad; this one is ",
                  dtype_name(dtype()), " (frozen half-precision weights stay frozen)");
  }
  PC_CHECK(is_leaf() || r, "[requires_grad_] cannot turn off requires_grad on a non-leaf tensor; use detach()");
  impl_->requires_grad = r;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->dtype = impl_->dtype;
  return Tensor(impl);
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward({*this}, {grad}, retain_graph);
}

Tensor as_f32_contiguous(const Tensor& t) {
  if (t.dtype() == DType::F32) return t.contiguous();
  return t.to(DType::F32);
}

}  // namespace peftcpp
