// Core tensor and autograd behaviour, independent of Python.
#include <gtest/gtest.h>

#include "core/autograd.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "ops/shape.h"

using namespace peftcpp;

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::zeros({2, 3});
  Tensor v = transpose(t, 0, 1);
  EXPECT_EQ(v.storage(), t.storage());
  EXPECT_FALSE(v.is_contiguous());
  Tensor n = narrow(t, 1, 1, 2);
  EXPECT_EQ(n.storage(), t.storage());
  EXPECT_EQ(n.offset(), 1);
}

TEST(Autograd, ChainAndAccumulate) {
  Tensor x = Tensor::full({3}, 2.f);
  x.set_requires_grad(true);
  Tensor y = sum(mul(x, x));  // dy/dx = 2x = 4
  y.backward();
  const float* g = x.grad().data<float>();
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(g[i], 4.f);
  Tensor y2 = sum(mul_scalar(x, 3.f));  // accumulates +3
  y2.backward();
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(x.grad().data<float>()[i], 7.f);
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor x = Tensor::full({2}, 1.f);
  x.set_requires_grad(true);
  Tensor y;
  {
    NoGradGuard g;
    y = exp(x);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
}

TEST(Autograd, SecondBackwardWithoutRetainThrows) {
  Tensor x = Tensor::full({2}, 1.f);
  x.set_requires_grad(true);
  Tensor y = sum(exp(x));
  y.backward();
  EXPECT_THROW(y.backward(), std::invalid_argument);
}

TEST(Autograd, NonScalarNeedsGradient) {
  Tensor x = Tensor::full({2}, 1.f);
  x.set_requires_grad(true);
  Tensor y = exp(x);
  EXPECT_THROW(y.backward(), std::invalid_argument);
}

TEST(Autograd, CheckpointMatchesDirect) {
  Tensor x = Tensor::full({4}, 0.5f);
  x.set_requires_grad(true);
  Tensor w = Tensor::full({4}, 3.f);
  w.set_requires_grad(true);
  auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(mul(in[0], w))}; };
  Tensor y = sum(checkpoint(fn, {x})[0]);
  y.backward();
  Tensor gx = x.grad().clone(), gw = w.grad().clone();
  x.set_grad(Tensor());
  w.set_grad(Tensor());
  sum(fn({x})[0]).backward();
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(gx.data<float>()[i], x.grad().data<float>()[i], 1e-7);
    EXPECT_NEAR(gw.data<float>()[i], w.grad().data<float>()[i], 1e-7);
  }
}

TEST(Errors, ShapeMismatchNamesOpAndShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  try {
    add(a, b);
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[add]"), std::string::npos);
    EXPECT_NE(m.find("[2, 3]"), std::string::npos);
    EXPECT_NE(m.find("[4]"), std::string::npos);
  }
}
