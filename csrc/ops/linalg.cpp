#include "ops/linalg.h"

#include <Eigen/SVD>

namespace peftcpp {

std::tuple<Tensor, Tensor, Tensor> svd(const Tensor& W_in) {
  PC_CHECK(W_in.dim() == 2, "[svd] expected a 2-D matrix, got shape ", shape_str(W_in.shape()));
  PC_CHECK_TYPE(is_floating(W_in.dtype()), "[svd] expected a float matrix, got ", dtype_name(W_in.dtype()));
  const int64_t m = W_in.shape()[0], n = W_in.shape()[1], k = std::min(m, n);
  PC_CHECK(k > 0, "[svd] empty matrix of shape ", shape_str(W_in.shape()));
  Tensor W = as_f32_contiguous(W_in);
  using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMat A = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                 W.data<float>(), m, n)
                 .cast<double>();
  Eigen::BDCSVD<RowMat> dec(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Tensor U = Tensor::empty({m, k}), S = Tensor::empty({k}), Vh = Tensor::empty({k, n});
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(U.data<float>(), m, k) =
      dec.matrixU().cast<float>();
  Eigen::Map<Eigen::VectorXf>(S.data<float>(), k) = dec.singularValues().cast<float>();
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(Vh.data<float>(), k, n) =
      dec.matrixV().transpose().cast<float>();
  return {U, S, Vh};
}

}  // namespace peftcpp
