#include <chrono>

#include "bindings/common.h"
#include "ops/elementwise.h"
#include "ops/linalg.h"
#include "ops/linear.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace peftcpp {

void init_ops(py::module_& m) {
  using T = const Tensor&;
  m.def("add", py::overload_cast<T, T>(&add), nogil());
  m.def("sub", py::overload_cast<T, T>(&sub), nogil());
  m.def("mul", py::overload_cast<T, T>(&mul), nogil());
  m.def("div", py::overload_cast<T, T>(&div), nogil());
  m.def("maximum", &maximum, nogil());
  m.def("add_scalar", &add_scalar, nogil());
  m.def("mul_scalar", &mul_scalar, nogil());
  m.def("rsub_scalar", &rsub_scalar, nogil());
  m.def("rdiv_scalar", &rdiv_scalar, nogil());
  m.def("pow_scalar", &pow_scalar, nogil());
  m.def("neg", &neg, nogil());
  m.def("exp", py::overload_cast<T>(&exp), nogil());
  m.def("log", py::overload_cast<T>(&log), nogil());
  m.def("sqrt", py::overload_cast<T>(&sqrt), nogil());
  m.def("rsqrt", &rsqrt, nogil());
  m.def("tanh", py::overload_cast<T>(&tanh), nogil());
  m.def("sigmoid", &sigmoid, nogil());
  m.def("relu", &relu, nogil());
  m.def("abs", py::overload_cast<T>(&abs), nogil());

  m.def("sum", &sum, py::arg("x"), py::arg("dims") = std::vector<int64_t>{}, py::arg("keepdim") = false, nogil());
  m.def("mean", &mean, py::arg("x"), py::arg("dims") = std::vector<int64_t>{}, py::arg("keepdim") = false, nogil());
  m.def("amax", &amax, py::arg("x"), py::arg("dim"), py::arg("keepdim") = false, nogil());

  m.def("reshape", &reshape, nogil());
  m.def("permute", &permute, nogil());
  m.def("transpose", &transpose, nogil());
  m.def("narrow", &narrow, nogil());
  m.def("select", &select, nogil());
  m.def("contiguous", py::overload_cast<T>(&contiguous), nogil());
  m.def("broadcast_to", &broadcast_to, nogil());
  m.def("cat", &cat, py::arg("tensors"), py::arg("dim") = 0, nogil());
  m.def("split", &split, nogil());
  m.def("index_select", &index_select, nogil());
  m.def("gather", &gather, nogil());
  m.def("to_dtype", &to_dtype, nogil());

  m.def("matmul", &matmul, nogil());
  m.def("svd", &svd, py::arg("matrix"), "Thin SVD (U, S, Vh) via Eigen, double precision inside", nogil());
  m.def("linear", [](T x, T w, std::optional<Tensor> b) { return linear(x, w, b ? *b : Tensor()); },
        py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), nogil());
  m.def("lora_linear",
        [](T x, T w, std::optional<Tensor> b, T A, T B, float s, float p, bool tr) {
          return lora_linear(x, w, b ? *b : Tensor(), A, B, s, p, tr);
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("lora_A"),
        py::arg("lora_B"), py::arg("scale"), py::arg("dropout") = 0.f, py::arg("training") = false, nogil());

  // Seconds of the fastest of `repeats` raw cblas_sgemm calls on an M×K·K×N product: the
  // physical reference the benchmarks compare our kernels against.
  m.def("sgemm_seconds",
        [](int64_t M, int64_t N, int64_t K, bool ta, bool tb, int repeats) {
          Tensor a = Tensor::full({M * K}, 0.5f), b = Tensor::full({K * N}, 0.25f), c = Tensor::zeros({M * N});
          auto run = [&] {
            sgemm(ta, tb, M, N, K, 1.f, a.data<float>(), ta ? M : K, b.data<float>(), tb ? K : N, 0.f,
                  c.data<float>(), N);
          };
          run();  // warm-up
          double best = 1e30;  // the fastest call: the machine's limit, not its noise
          for (int i = 0; i < repeats; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            run();
            std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
            best = std::min(best, d.count());
          }
          return best;
        },
        py::arg("M"), py::arg("N"), py::arg("K"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("repeats") = 5, nogil());
}

}  // namespace peftcpp
