#include "ops/linalg.h"

#include <cmath>
#include <vector>

// LAPACK's divide-and-conquer SVD, from the OpenBLAS we link anyway (torch's
// CPU svd is the same routine). The Fortran ABI: arguments by pointer, a hidden
// length for each character argument at the end (gfortran: size_t).
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s,
                        double* u, const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork,
                        int* iwork, int* info, size_t jobz_len);

namespace peftcpp {

std::tuple<Tensor, Tensor, Tensor> svd(const Tensor& W_in) {
  PC_CHECK(W_in.dim() == 2, "[svd] expected a 2-D matrix, got shape ", shape_str(W_in.shape()));
  PC_CHECK_TYPE(is_floating(W_in.dtype()), "[svd] expected a float matrix, got ", dtype_name(W_in.dtype()));
  const int64_t m = W_in.shape()[0], n = W_in.shape()[1], k = std::min(m, n);
  PC_CHECK(k > 0, "[svd] empty matrix of shape ", shape_str(W_in.shape()));
  PC_CHECK(m <= INT32_MAX && n <= INT32_MAX && m * n <= INT32_MAX, "[svd] matrix of shape ",
           shape_str(W_in.shape()), " is too large for LAPACK's 32-bit indices");
  Tensor W = as_f32_contiguous(W_in);
  // Row-major W [m, n] is column-major Wᵀ [n, m]. With Wᵀ = U' S V'ᵀ we have
  // W = V' S U'ᵀ, and LAPACK's V'ᵀ [k, m] and U' [n, k] (column-major) lie in
  // memory exactly as row-major U [m, k] and Vh [k, n]: no transposes needed.
  const float* w = W.data<float>();
  for (int64_t i = 0; i < m * n; ++i)
    PC_CHECK(std::isfinite(w[i]), "[svd] the matrix of shape ", shape_str(W_in.shape()), " has a non-finite value at [",
             i / n, ", ", i % n, "]");
  std::vector<double> a(w, w + m * n), s(k), u(static_cast<size_t>(k * m)), vt(static_cast<size_t>(n * k));
  const int rows = static_cast<int>(n), cols = static_cast<int>(m), kk = static_cast<int>(k);
  std::vector<int> iwork(8 * static_cast<size_t>(k));
  int info = 0, lwork = -1;
  double query = 0;
  // LAPACK names: A = Wᵀ [rows=n, cols=m]; its "U" is [n, k] (ldu=n), its "VT" is [k, m] (ldvt=k).
  dgesdd_("S", &rows, &cols, a.data(), &rows, s.data(), vt.data(), &rows, u.data(), &kk, &query, &lwork,
          iwork.data(), &info, 1);
  PC_CHECK(info == 0, "[svd] LAPACK dgesdd workspace query failed (info ", info, ")");
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_("S", &rows, &cols, a.data(), &rows, s.data(), vt.data(), &rows, u.data(), &kk, work.data(), &lwork,
          iwork.data(), &info, 1);
  PC_CHECK(info >= 0, "[svd] LAPACK dgesdd: bad argument ", -info);
  PC_CHECK(info == 0, "[svd] LAPACK dgesdd did not converge for a matrix of shape ", shape_str(W_in.shape()));
  Tensor U = Tensor::empty({m, k}), S = Tensor::empty({k}), Vh = Tensor::empty({k, n});
  float* pu = U.data<float>();
  float* ps = S.data<float>();
  float* pv = Vh.data<float>();
  for (int64_t i = 0; i < m * k; ++i) pu[i] = static_cast<float>(u[i]);
  for (int64_t i = 0; i < k; ++i) ps[i] = static_cast<float>(s[i]);
  for (int64_t i = 0; i < k * n; ++i) pv[i] = static_cast<float>(vt[i]);
  return {U, S, Vh};
}

}  // namespace peftcpp
