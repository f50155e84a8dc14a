// Differentiable shape ops. reshape/permute/transpose/narrow return views
// (no copy) whenever the layout allows; cat/split/index_select copy.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

Tensor reshape(const Tensor& x, Shape shape);  // one -1 allowed
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // drops dim
Tensor contiguous(const Tensor& x);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // index: i32/i64 1-D
// out[i][j][k] = x[i][index[i][j][k]][k] (dim = 1), as torch.gather: index has
// x's rank and sizes ≤ x's except along dim; backward scatter-adds.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor to_dtype(const Tensor& x, DType t);  // differentiable between float types

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);

}  // namespace peftcpp
