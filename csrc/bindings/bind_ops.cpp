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
  // Elementwise ops broadcast as numpy does and are differentiable.
  m.def("add", py::overload_cast<T, T>(&add), py::arg("a"), py::arg("b"), nogil(), "a + b (broadcasting)");
  m.def("sub", py::overload_cast<T, T>(&sub), py::arg("a"), py::arg("b"), nogil(), "a - b (broadcasting)");
  m.def("mul", py::overload_cast<T, T>(&mul), py::arg("a"), py::arg("b"), nogil(), "a * b (broadcasting)");
  m.def("div", py::overload_cast<T, T>(&div), py::arg("a"), py::arg("b"), nogil(), "a / b (broadcasting)");
  m.def("maximum", &maximum, py::arg("a"), py::arg("b"), nogil(),
        "Elementwise max(a, b) (broadcasting); ties split the gradient evenly");
  m.def("minimum", &minimum, py::arg("a"), py::arg("b"), nogil(),
        "Elementwise min(a, b) (broadcasting); ties split the gradient evenly");
  m.def("pow", py::overload_cast<T, T>(&pow), py::arg("a"), py::arg("b"), nogil(), "a ** b (broadcasting)");
  m.def("where", &where, py::arg("cond"), py::arg("a"), py::arg("b"), nogil(),
        "cond ? a : b elementwise, the three broadcast together; cond of any dtype (nonzero is true)");
  m.def("add_scalar", &add_scalar, py::arg("a"), py::arg("s"), nogil(), "a + s");
  m.def("mul_scalar", &mul_scalar, py::arg("a"), py::arg("s"), nogil(), "a * s");
  m.def("rsub_scalar", &rsub_scalar, py::arg("a"), py::arg("s"), nogil(), "s - a");
  m.def("rdiv_scalar", &rdiv_scalar, py::arg("a"), py::arg("s"), nogil(), "s / a");
  m.def("pow_scalar", &pow_scalar, py::arg("a"), py::arg("p"), nogil(), "a ** p");
  m.def("clamp", &clamp, py::arg("a"), py::arg("min"), py::arg("max"), nogil(),
        "Elementwise min(max(a, min), max) (-inf / inf: no bound); the gradient flows where min <= a <= max");
  m.def("neg", &neg, py::arg("a"), nogil(), "-a");
  m.def("exp", py::overload_cast<T>(&exp), py::arg("a"), nogil(), "Elementwise e ** a");
  m.def("log", py::overload_cast<T>(&log), py::arg("a"), nogil(), "Elementwise natural logarithm");
  m.def("sqrt", py::overload_cast<T>(&sqrt), py::arg("a"), nogil(), "Elementwise square root");
  m.def("rsqrt", &rsqrt, py::arg("a"), nogil(), "Elementwise 1 / sqrt(a)");
  m.def("tanh", py::overload_cast<T>(&tanh), py::arg("a"), nogil(), "Elementwise tanh");
  m.def("sigmoid", &sigmoid, py::arg("a"), nogil(), "Elementwise 1 / (1 + exp(-a))");
  m.def("relu", &relu, py::arg("a"), nogil(), "Elementwise max(a, 0)");
  m.def("abs", py::overload_cast<T>(&abs), py::arg("a"), nogil(), "Elementwise |a|");
  m.def("sin", py::overload_cast<T>(&sin), py::arg("a"), nogil(), "Elementwise sine");
  m.def("cos", py::overload_cast<T>(&cos), py::arg("a"), nogil(), "Elementwise cosine");

  m.def("sum", &sum, py::arg("x"), py::arg("dims") = std::vector<int64_t>{}, py::arg("keepdim") = false, nogil(),
        "Sum over dims (all dims when empty)");
  m.def("mean", &mean, py::arg("x"), py::arg("dims") = std::vector<int64_t>{}, py::arg("keepdim") = false, nogil(),
        "Mean over dims (all dims when empty)");
  m.def("amax", &amax, py::arg("x"), py::arg("dim"), py::arg("keepdim") = false, nogil(),
        "Max over one dim; the gradient goes to the first maximum");

  // Views where the layout allows (reshape, permute, transpose, narrow, select); the rest copy.
  m.def("reshape", &reshape, py::arg("x"), py::arg("shape"), nogil(),
        "x with a new shape of the same element count (one -1 allowed); a view when the layout allows");
  m.def("permute", &permute, py::arg("x"), py::arg("dims"), nogil(), "View with the dims reordered");
  m.def("transpose", &transpose, py::arg("x"), py::arg("dim0"), py::arg("dim1"), nogil(), "View with two dims swapped");
  m.def("narrow", &narrow, py::arg("x"), py::arg("dim"), py::arg("start"), py::arg("length"), nogil(),
        "View of elements start..start+length-1 along dim");
  m.def("select", &select, py::arg("x"), py::arg("dim"), py::arg("index"), nogil(),
        "View of one index along dim, that dim dropped");
  m.def("contiguous", py::overload_cast<T>(&contiguous), py::arg("x"), nogil(),
        "x itself when row-major contiguous, else a contiguous copy");
  m.def("broadcast_to", &broadcast_to, py::arg("x"), py::arg("shape"), nogil(),
        "x broadcast to shape (numpy rules); the gradient is summed back");
  m.def("cat", &cat, py::arg("tensors"), py::arg("dim") = 0, nogil(), "Concatenation along dim");
  m.def("split", &split, py::arg("x"), py::arg("sizes"), py::arg("dim"), nogil(),
        "Pieces of the given sizes along dim (copies)");
  m.def("index_select", &index_select, py::arg("x"), py::arg("dim"), py::arg("index"), nogil(),
        "Rows index (a 1-D int32/int64 tensor) of x along dim");
  m.def("gather", &gather, py::arg("x"), py::arg("dim"), py::arg("index"), nogil(),
        "torch.gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along dim; backward scatter-adds");
  m.def("to_dtype", &to_dtype, py::arg("x"), py::arg("dtype"), nogil(),
        "x converted to dtype (differentiable between float types)");

  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), nogil(),
        "a [..., M, K] @ b [..., K, N] with broadcast batch dims (OpenBLAS sgemm)");
  m.def("svd", &svd, py::arg("matrix"), "Thin SVD (U, S, Vh) via LAPACK dgesdd (OpenBLAS), double precision inside", nogil());
  m.def("linear", [](T x, T w, std::optional<Tensor> b) { return linear(x, w, b ? *b : Tensor()); },
        py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), nogil(),
        "x [..., K] @ weight[N, K].T + bias [N]; weight may be float16/bfloat16 (then frozen)");
  m.def("lora_linear",
        [](T x, T w, std::optional<Tensor> b, T A, T B, float s, float p, bool tr) {
          return lora_linear(x, w, b ? *b : Tensor(), A, B, s, p, tr);
        },
        py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("lora_A"),
        py::arg("lora_B"), py::arg("scale"), py::arg("dropout") = 0.f, py::arg("training") = false, nogil(),
        "LoRA linear as one op: x @ weight.T + bias + scale * (dropout(x) @ lora_A.T) @ lora_B.T, with lora_A "
        "[r, K] and lora_B [N, r]; the dropout mask is regenerated in backward, never stored");

  // The physical reference the benchmarks compare our kernels against.
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
        py::arg("repeats") = 5, nogil(),
        "Seconds of the fastest of `repeats` raw cblas_sgemm calls on an MxK @ KxN product (benchmark reference)");
}

}  // namespace peftcpp
