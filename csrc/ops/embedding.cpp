#include "ops/embedding.h"

#include <omp.h>

#include <cstring>

#include "core/autograd.h"

namespace peftcpp {

namespace {

constexpr int64_t kParallelMin = 32768;

// Row index of token i, for int32 or int64 ids.
inline int64_t id_at(const void* ids, bool i64, int64_t i) {
  return i64 ? static_cast<const int64_t*>(ids)[i] : static_cast<const int32_t*>(ids)[i];
}

struct EmbeddingBackward : Node {
  Tensor ids;  // contiguous i32/i64, validated in range
  int64_t V = 0, C = 0;
  const char* name() const override { return "EmbeddingBackward"; }

  // dY: [N, C] -> dW: [V, C], dW[ids[t]] += dY[t]. Threads own disjoint
  // column blocks and walk all tokens in order, so repeated ids accumulate
  // without races or atomics, deterministically.
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    if (!needs_grad(0)) return {Tensor()};
    Tensor gc = as_f32_contiguous(g[0]);
    const float* dY = gc.data<float>();
    const int64_t N = ids.numel();
    const void* I = ids.raw_data();
    const bool i64 = ids.dtype() == DType::I64;
    const int64_t C_ = C;
    Tensor dw = Tensor::zeros({V, C});
    float* dW = dw.data<float>();
#pragma omp parallel if (N * C_ > kParallelMin)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t c0 = C_ * t / T, c1 = C_ * (t + 1) / T;
      for (int64_t k = 0; k < N; ++k) {
        float* dw_r = dW + id_at(I, i64, k) * C_;
        const float* dy_r = dY + k * C_;
        for (int64_t c = c0; c < c1; ++c) dw_r[c] += dy_r[c];
      }
    }
    return {dw};
  }
  void release() override { ids = Tensor(); }
};

}  // namespace

Tensor embedding(const Tensor& ids_in, const Tensor& weight) {
  PC_CHECK(ids_in.defined() && weight.defined(), "[embedding] ids and weight must be defined");
  PC_CHECK_TYPE(ids_in.dtype() == DType::I32 || ids_in.dtype() == DType::I64,
                "[embedding] ids must be int32 or int64, got ", dtype_name(ids_in.dtype()), " of shape ",
                shape_str(ids_in.shape()));
  PC_CHECK_TYPE(is_floating(weight.dtype()), "[embedding] weight must be a float tensor, got ",
                dtype_name(weight.dtype()), " of shape ", shape_str(weight.shape()));
  PC_CHECK(weight.dim() == 2, "[embedding] weight must be 2-D [vocab, dim], got ", shape_str(weight.shape()));
  PC_CHECK_TYPE(weight.dtype() == DType::F32 || !weight.requires_grad(), "[embedding] a ",
                dtype_name(weight.dtype()), " weight cannot require grad (half-precision weights are frozen)");
  const int64_t V = weight.shape()[0], C = weight.shape()[1];
  Tensor ids = ids_in.contiguous();
  const int64_t N = ids.numel();
  const void* I = ids.raw_data();
  const bool i64 = ids.dtype() == DType::I64;
  // Validate first (serially: cheap next to the copy) so a bad id throws
  // before any work and the message names the first offender.
  for (int64_t k = 0; k < N; ++k) {
    const int64_t id = id_at(I, i64, k);
    PC_CHECK_INDEX(id >= 0 && id < V, "[embedding] index ", id, " out of range for vocabulary of ", V);
  }
  Tensor w = weight.contiguous();  // no copy for the usual contiguous table
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = Tensor::empty(out_shape);
  float* Y = out.data<float>();
  const char* Wb = static_cast<const char*>(w.raw_data());
  const DType wt = w.dtype();
  const size_t row_bytes = static_cast<size_t>(C) * dtype_size(wt);
  // ids: [N], W: [V, C] -> Y: [N, C]; half rows are widened one at a time.
#pragma omp parallel for if (N * C > kParallelMin) schedule(static)
  for (int64_t k = 0; k < N; ++k) {
    const char* src = Wb + id_at(I, i64, k) * row_bytes;
    if (wt == DType::F32)
      std::memcpy(Y + k * C, src, row_bytes);
    else
      convert_to_f32(src, wt, Y + k * C, static_cast<size_t>(C));
  }
  if (needs_history({&weight})) {
    auto n = std::make_shared<EmbeddingBackward>();
    n->ids = ids.detach();
    n->V = V;
    n->C = C;
    attach(n, {&weight}, {&out});
  }
  return out;
}

}  // namespace peftcpp
