#include "ops/shape.h"

#include <algorithm>
#include <cstring>

#include "core/autograd.h"

namespace peftcpp {

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t w = d < 0 ? d + ndim : d;
  PC_CHECK_INDEX(w >= 0 && w < std::max<int64_t>(ndim, 1), "[", op, "] dimension ", d,
                 " out of range for a tensor with ", ndim, " dimensions");
  return w;
}

namespace {

struct ReshapeBackward : Node {
  Shape in_shape;
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {reshape(g[0], in_shape)}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inv;
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {permute(g[0], inv)}; }
};

struct NarrowBackward : Node {
  Shape in_shape;
  int64_t dim, start;
  const char* name() const override { return "NarrowBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor out = Tensor::zeros(in_shape);
    Tensor dst = narrow(out, dim, start, g[0].shape()[dim]);
    // dst is a strided view of out: write through it element by element.
    Tensor src = g[0].contiguous();
    const int64_t nd = dst.dim();
    const int64_t n = src.numel();
    const float* s = src.data<float>();
    float* base = static_cast<float*>(out.storage()->data);
    std::vector<int64_t> idx(nd, 0);
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = dst.offset();
      for (int64_t d = 0; d < nd; ++d) off += idx[d] * dst.strides()[d];
      base[off] = s[i];
      for (int64_t d = nd - 1; d >= 0; --d) {
        if (++idx[d] < dst.shape()[d]) break;
        idx[d] = 0;
      }
    }
    return {out};
  }
};

struct SelectBackward : Node {
  Shape in_shape;
  int64_t dim, index;
  const char* name() const override { return "SelectBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Shape s = in_shape;
    s[dim] = 1;
    NarrowBackward nb;
    nb.in_shape = in_shape;
    nb.dim = dim;
    nb.start = index;
    return nb.backward({reshape(g[0], s)});
  }
};

struct BroadcastBackward : Node {
  Shape in_shape;
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {sum_to_shape(g[0], in_shape)}; }
};

struct CatBackward : Node {
  std::vector<int64_t> sizes;
  int64_t dim;
  const char* name() const override { return "CatBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    std::vector<Tensor> out;
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs_grad(i)) out.push_back(narrow(g[0], dim, start, sizes[i]).contiguous());
      else out.push_back(Tensor());
      start += sizes[i];
    }
    return out;
  }
};

struct SplitBackward : Node {
  int64_t dim;
  const char* name() const override { return "SplitBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {cat(g, dim)}; }
};

struct IndexSelectBackward : Node {
  Shape in_shape;
  int64_t dim;
  Tensor index;  // i64
  const char* name() const override { return "IndexSelectBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = g[0].contiguous();
    Tensor out = Tensor::zeros(in_shape);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= in_shape[d];
    for (size_t d = dim + 1; d < in_shape.size(); ++d) inner *= in_shape[d];
    const int64_t nidx = index.numel(), nin = in_shape[dim];
    const int64_t* ix = index.data<int64_t>();
    const float* s = gc.data<float>();
    float* o = out.data<float>();
    // Serial over the index so repeated indices accumulate without races.
#pragma omp parallel for if (outer > 1) schedule(static)
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t j = 0; j < nidx; ++j) {
        const float* src = s + (a * nidx + j) * inner;
        float* dst = o + (a * nin + ix[j]) * inner;
        for (int64_t k = 0; k < inner; ++k) dst[k] += src[k];
      }
    return {out};
  }
  void release() override { index = Tensor(); }
};

// Calls f(i, off) for each element i of index (contiguous i64) with off the
// offset in a contiguous tensor of shape in_shape that gather reads: index
// replaces the coordinate along dim.
template <class F>
void for_each_gather(const Tensor& index, const Shape& in_shape, int64_t dim, F f) {
  const Shape& is = index.shape();
  const Shape xs = contiguous_strides(in_shape);
  const int64_t* ix = index.data<int64_t>();
  const int64_t nd = static_cast<int64_t>(is.size()), n = index.numel();
  std::vector<int64_t> pos(nd, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) off += (d == dim ? ix[i] : pos[d]) * xs[d];
    f(i, off);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++pos[d] < is[d]) break;
      pos[d] = 0;
    }
  }
}

struct GatherBackward : Node {
  Shape in_shape;
  int64_t dim;
  Tensor index;  // i64 contiguous
  const char* name() const override { return "GatherBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = as_f32_contiguous(g[0]);
    Tensor out = Tensor::zeros(in_shape);
    const float* s = gc.data<float>();
    float* o = out.data<float>();
    for_each_gather(index, in_shape, dim, [&](int64_t i, int64_t off) { o[off] += s[i]; });
    return {out};
  }
  void release() override { index = Tensor(); }
};

struct ToDtypeBackward : Node {
  const char* name() const override { return "ToCopyBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0]}; }
};

template <class N>
void record(std::shared_ptr<N> n, const Tensor& x, Tensor& out) {
  attach(n, {&x}, {&out});
}

}  // namespace

Tensor reshape(const Tensor& x, Shape shape) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      PC_CHECK(infer < 0, "[reshape] only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      PC_CHECK(shape[i] >= 0, "[reshape] invalid dimension in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    PC_CHECK(known > 0 && x.numel() % known == 0, "[reshape] shape ", shape_str(shape),
             " is invalid for input of shape ", shape_str(x.shape()));
    shape[infer] = x.numel() / known;
  }
  PC_CHECK(shape_numel(shape) == x.numel(), "[reshape] shape ", shape_str(shape), " is invalid for input of shape ",
           shape_str(x.shape()), " (", x.numel(), " elements)");
  Tensor src = x.contiguous();  // a copy only when x is a non-contiguous view
  Tensor out = Tensor::from_storage(src.storage(), shape, src.dtype(), src.offset());
  if (needs_history({&x})) {
    auto n = std::make_shared<ReshapeBackward>();
    n->in_shape = x.shape();
    record(n, x, out);
  }
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  const int64_t nd = x.dim();
  PC_CHECK(static_cast<int64_t>(dims.size()) == nd, "[permute] got ", dims.size(), " dims for a tensor of shape ",
           shape_str(x.shape()));
  Shape sh(nd), st(nd);
  std::vector<int64_t> inv(nd, -1);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t d = wrap_dim(dims[i], nd, "permute");
    PC_CHECK(inv[d] < 0, "[permute] repeated dimension ", d);
    inv[d] = i;
    sh[i] = x.shape()[d];
    st[i] = x.strides()[d];
  }
  Tensor out = x.as_strided(sh, st, x.offset());
  if (needs_history({&x})) {
    auto n = std::make_shared<PermuteBackward>();
    n->inv = inv;
    record(n, x, out);
  }
  return out;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  const int64_t nd = x.dim();
  d0 = wrap_dim(d0, nd, "transpose");
  d1 = wrap_dim(d1, nd, "transpose");
  std::vector<int64_t> p(nd);
  for (int64_t i = 0; i < nd; ++i) p[i] = i;
  std::swap(p[d0], p[d1]);
  return permute(x, p);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_dim(dim, x.dim(), "narrow");
  const int64_t size = x.shape()[dim];
  if (start < 0) start += size;
  PC_CHECK_INDEX(start >= 0 && length >= 0 && start + length <= size, "[narrow] range [", start, ", ",
                 start + length, ") out of bounds for dimension ", dim, " of shape ", shape_str(x.shape()));
  Shape sh = x.shape();
  sh[dim] = length;
  Tensor out = x.as_strided(sh, x.strides(), x.offset() + start * x.strides()[dim]);
  if (needs_history({&x})) {
    auto n = std::make_shared<NarrowBackward>();
    n->in_shape = x.shape();
    n->dim = dim;
    n->start = start;
    record(n, x, out);
  }
  return out;
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, x.dim(), "select");
  const int64_t size = x.shape()[dim];
  if (index < 0) index += size;
  PC_CHECK_INDEX(index >= 0 && index < size, "[select] index ", index, " out of range for dimension ", dim,
                 " of shape ", shape_str(x.shape()));
  Shape sh = x.shape(), st = x.strides();
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  Tensor out = x.as_strided(sh, st, x.offset() + index * x.strides()[dim]);
  if (needs_history({&x})) {
    auto n = std::make_shared<SelectBackward>();
    n->in_shape = x.shape();
    n->dim = dim;
    n->index = index;
    record(n, x, out);
  }
  return out;
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = x.clone();
  if (needs_history({&x})) record(std::make_shared<ToDtypeBackward>(), x, out);
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  Shape b = shape;
  PC_CHECK(shape.size() >= x.shape().size(), "[broadcast_to] cannot broadcast ", shape_str(x.shape()), " to ",
           shape_str(shape));
  size_t off = shape.size() - x.shape().size();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < x.shape().size(); ++i) {
    PC_CHECK(x.shape()[i] == shape[i + off] || x.shape()[i] == 1, "[broadcast_to] cannot broadcast ",
             shape_str(x.shape()), " to ", shape_str(shape));
    st[i + off] = x.shape()[i] == 1 ? 0 : x.strides()[i];
  }
  Tensor out = x.as_strided(shape, st, x.offset()).clone();
  if (needs_history({&x})) {
    auto n = std::make_shared<BroadcastBackward>();
    n->in_shape = x.shape();
    record(n, x, out);
  }
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  PC_CHECK(!xs.empty(), "[cat] expected a non-empty list of tensors");
  const Tensor& f = xs[0];
  dim = wrap_dim(dim, f.dim(), "cat");
  Shape out_shape = f.shape();
  out_shape[dim] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    PC_CHECK(t.dim() == f.dim(), "[cat] tensor ", i, " has shape ", shape_str(t.shape()), ", tensor 0 has ",
             shape_str(f.shape()));
    PC_CHECK_TYPE(t.dtype() == f.dtype(), "[cat] tensor ", i, " is ", dtype_name(t.dtype()), ", tensor 0 is ",
                  dtype_name(f.dtype()));
    for (int64_t d = 0; d < f.dim(); ++d)
      PC_CHECK(d == dim || t.shape()[d] == f.shape()[d], "[cat] tensor ", i, " has shape ", shape_str(t.shape()),
               ", tensor 0 has ", shape_str(f.shape()), " (sizes must match except in dimension ", dim, ")");
    out_shape[dim] += t.shape()[dim];
    sizes.push_back(t.shape()[dim]);
  }
  Tensor out = Tensor::empty(out_shape, f.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out_shape[d];
  for (int64_t d = dim + 1; d < f.dim(); ++d) inner *= out_shape[d];
  const size_t es = dtype_size(f.dtype());
  char* o = static_cast<char*>(out.raw_data());
  int64_t col = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    Tensor c = xs[i].contiguous();
    const char* s = static_cast<const char*>(c.raw_data());
    const int64_t chunk = sizes[i] * inner;
    for (int64_t a = 0; a < outer; ++a)
      std::memcpy(o + (a * out_shape[dim] * inner + col * inner) * es, s + a * chunk * es, chunk * es);
    col += sizes[i];
  }
  if (needs_history(xs)) {
    auto n = std::make_shared<CatBackward>();
    n->sizes = sizes;
    n->dim = dim;
    std::vector<const Tensor*> in;
    for (auto& t : xs) in.push_back(&t);
    attach(n, in, {&out});
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (auto s : sizes) {
    PC_CHECK(s >= 0, "[split] negative size");
    total += s;
  }
  PC_CHECK(total == x.shape()[dim], "[split] sizes sum to ", total, " but dimension ", dim, " of ",
           shape_str(x.shape()), " has ", x.shape()[dim]);
  std::vector<Tensor> outs;
  int64_t start = 0;
  {
    NoGradGuard ng;
    for (auto s : sizes) {
      outs.push_back(narrow(x, dim, start, s).contiguous());
      start += s;
    }
  }
  if (needs_history({&x})) {
    auto n = std::make_shared<SplitBackward>();
    n->dim = dim;
    std::vector<Tensor*> op;
    for (auto& o : outs) op.push_back(&o);
    attach(n, {&x}, op);
  }
  return outs;
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = wrap_dim(dim, x.dim(), "index_select");
  PC_CHECK_TYPE(index.dtype() == DType::I64 || index.dtype() == DType::I32,
                "[index_select] index must be int32 or int64, got ", dtype_name(index.dtype()));
  PC_CHECK(index.dim() == 1, "[index_select] index must be 1-D, got shape ", shape_str(index.shape()));
  Tensor idx = index.to(DType::I64).contiguous();
  const int64_t nidx = idx.numel(), nin = x.shape()[dim];
  const int64_t* ix = idx.data<int64_t>();
  for (int64_t j = 0; j < nidx; ++j)
    PC_CHECK_INDEX(ix[j] >= 0 && ix[j] < nin, "[index_select] index ", ix[j], " out of range for dimension ",
                   dim, " of size ", nin, " (shape ", shape_str(x.shape()), ")");
  Tensor xc = x.contiguous();
  Shape out_shape = x.shape();
  out_shape[dim] = nidx;
  Tensor out = Tensor::empty(out_shape, x.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out_shape[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= out_shape[d];
  const size_t es = dtype_size(x.dtype());
  const char* s = static_cast<const char*>(xc.raw_data());
  char* o = static_cast<char*>(out.raw_data());
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t j = 0; j < nidx; ++j)
      std::memcpy(o + (a * nidx + j) * inner * es, s + (a * nin + ix[j]) * inner * es, inner * es);
  if (needs_history({&x})) {
    auto n = std::make_shared<IndexSelectBackward>();
    n->in_shape = x.shape();
    n->dim = dim;
    n->index = idx;
    record(n, x, out);
  }
  return out;
}

Tensor gather(const Tensor& x_in, int64_t dim, const Tensor& index) {
  dim = wrap_dim(dim, x_in.dim(), "gather");
  PC_CHECK_TYPE(index.dtype() == DType::I64 || index.dtype() == DType::I32,
                "[gather] index must be int32 or int64, got ", dtype_name(index.dtype()));
  PC_CHECK(index.dim() == x_in.dim(), "[gather] index ", shape_str(index.shape()), " must have the rank of input ",
           shape_str(x_in.shape()));
  for (int64_t d = 0; d < x_in.dim(); ++d)
    PC_CHECK(d == dim || index.shape()[d] <= x_in.shape()[d], "[gather] index ", shape_str(index.shape()),
             " is larger than input ", shape_str(x_in.shape()), " in dimension ", d);
  PC_CHECK_TYPE(is_floating(x_in.dtype()), "[gather] input must be a float tensor, got ", dtype_name(x_in.dtype()));
  Tensor x = as_f32_contiguous(x_in);
  Tensor idx = index.to(DType::I64).contiguous();
  const int64_t n = idx.numel(), size = x.shape()[dim];
  const int64_t* ix = idx.data<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    PC_CHECK_INDEX(ix[i] >= 0 && ix[i] < size, "[gather] index ", ix[i], " out of range for dimension ", dim,
                   " of size ", size, " (input ", shape_str(x.shape()), ")");
  Tensor out = Tensor::empty(idx.shape());
  const float* px = x.data<float>();
  float* o = out.data<float>();
  for_each_gather(idx, x.shape(), dim, [&](int64_t i, int64_t off) { o[i] = px[off]; });
  if (needs_history({&x_in})) {
    auto nd_ = std::make_shared<GatherBackward>();
    nd_->in_shape = x.shape();
    nd_->dim = dim;
    nd_->index = idx;
    record(nd_, x_in, out);
  }
  return out;
}

Tensor to_dtype(const Tensor& x, DType t) {
  if (x.dtype() == t) return x;
  Tensor out = x.to(t);
  if (t == DType::F32 && needs_history({&x})) record(std::make_shared<ToDtypeBackward>(), x, out);
  return out;
}

}  // namespace peftcpp
