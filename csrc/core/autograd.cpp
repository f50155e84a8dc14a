#include "core/autograd.h"

#include <chrono>
#include <unordered_map>
#include <unordered_set>

#include "core/generator.h"

namespace peftcpp {

namespace {
thread_local bool t_grad_enabled = true;

// out += g elementwise (both contiguous f32, same shape).
void add_into(Tensor& out, const Tensor& g) {
  float* o = out.data<float>();
  const float* s = g.data<float>();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; ++i) o[i] += s[i];
}

Tensor add_new(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  Tensor bc = b.contiguous();
  add_into(out, bc);
  return out;
}

void accumulate_leaf(TensorImpl* leaf, Tensor g) {
  PC_CHECK(g.shape() == leaf->shape, "[backward] gradient of shape ", shape_str(g.shape()),
           " for a leaf of shape ", shape_str(leaf->shape), " (an op returned a wrong-shaped gradient)");
  if (!leaf->grad) {
    // Adopt g when nothing else references it; otherwise own a copy, since g
    // may be shared with other branches of the graph.
    bool sole = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.storage()->owned &&
                g.is_contiguous() && g.dtype() == DType::F32;
    leaf->grad = sole ? g.impl_ptr() : g.clone().impl_ptr();
  } else {
    Tensor acc(leaf->grad);
    add_into(acc, g.contiguous());
  }
}
}  // namespace

bool BackwardProfile::enabled = false;
std::map<std::string, std::pair<double, int64_t>>& BackwardProfile::table() {
  static std::map<std::string, std::pair<double, int64_t>> t;
  return t;
}

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set(bool on) { t_grad_enabled = on; }

bool needs_history(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::enabled()) return false;
  for (auto* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_history(const std::vector<Tensor>& inputs) {
  if (!GradMode::enabled()) return false;
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge edge_of(const Tensor& t) {
  Edge e;
  if (!t.defined() || !t.requires_grad()) return e;
  if (t.grad_fn()) {
    e.fn = t.grad_fn();
    e.input_nr = t.impl()->output_nr;
  } else {
    e.leaf = t.impl_ptr();
  }
  return e;
}

void attach(const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs,
            const std::vector<Tensor*>& outputs) {
  node->next.clear();
  for (auto* t : inputs) node->next.push_back(t ? edge_of(*t) : Edge{});
  node->out_shapes.clear();
  uint32_t k = 0;
  for (auto* o : outputs) {
    node->out_shapes.push_back(o->shape());
    o->impl()->grad_fn = node;
    o->impl()->output_nr = k++;
    o->impl()->requires_grad = true;
  }
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  PC_CHECK(roots.size() == grads.size(), "[backward] ", roots.size(), " outputs but ", grads.size(), " gradients");
  NoGradGuard no_grad;  // backward formulas never record (no double backward)

  std::unordered_map<Node*, std::vector<Tensor>> inbox;
  std::unordered_map<Node*, int> deps;
  std::vector<std::shared_ptr<Node>> start;

  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    PC_CHECK(r.defined() && r.requires_grad(), "[backward] element ", i,
             " of the outputs does not require grad and has no grad_fn");
    Tensor g = grads[i];
    if (!g.defined()) {
      PC_CHECK(r.numel() == 1, "[backward] grad can be implicitly created only for scalar outputs; "
                               "the output has shape ", shape_str(r.shape()), " (pass a gradient)");
      g = Tensor::full(r.shape(), 1.0f);
    } else {
      PC_CHECK(g.shape() == r.shape(), "[backward] gradient of shape ", shape_str(g.shape()),
               " for an output of shape ", shape_str(r.shape()));
      g = as_f32_contiguous(g);
    }
    if (!r.grad_fn()) {
      accumulate_leaf(r.impl(), g);
      continue;
    }
    Node* n = r.grad_fn().get();
    auto& box = inbox[n];
    box.resize(n->out_shapes.size());
    auto& slot = box[r.impl()->output_nr];
    slot = slot.defined() ? add_new(slot, g) : g;
    start.push_back(r.grad_fn());
  }

  // Count how many edges reach each node, so each runs once all its
  // consumers have delivered.
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (auto& s : start)
    if (seen.insert(s.get()).second) stack.push_back(s.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next) {
      if (!e.fn) continue;
      deps[e.fn.get()]++;
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  std::vector<std::shared_ptr<Node>> ready;
  std::unordered_set<Node*> queued;
  for (auto& s : start)
    if (deps[s.get()] == 0 && queued.insert(s.get()).second) ready.push_back(s);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    std::vector<Tensor> gout = std::move(inbox[node.get()]);
    inbox.erase(node.get());
    gout.resize(node->out_shapes.size());
    bool any = false;
    for (auto& g : gout) any |= g.defined();

    std::vector<Tensor> gin;
    if (any) {
      PC_CHECK(!node->released, "[backward] trying to backward through the graph a second time (through ",
               node->name(), "); its saved tensors were freed. Pass retain_graph=True the first time.");
      for (size_t k = 0; k < gout.size(); ++k)
        if (!gout[k].defined()) gout[k] = Tensor::zeros(node->out_shapes[k]);
      if (BackwardProfile::enabled) {
        auto t0 = std::chrono::steady_clock::now();
        gin = node->backward(gout);
        std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
        auto& e = BackwardProfile::table()[node->name()];
        e.first += d.count();
        e.second += 1;
      } else {
        gin = node->backward(gout);
      }
      if (!retain_graph) {
        node->release();
        node->released = true;
      }
    }
    gout.clear();

    for (size_t i = 0; i < node->next.size(); ++i) {
      const Edge& e = node->next[i];
      if (!e.valid()) continue;
      Tensor g = i < gin.size() ? std::move(gin[i]) : Tensor();
      if (g.defined() && g.dtype() != DType::F32) g = g.to(DType::F32);
      if (e.leaf) {
        if (g.defined()) accumulate_leaf(e.leaf.get(), std::move(g));
        continue;
      }
      Node* nx = e.fn.get();
      if (g.defined()) {
        auto& box = inbox[nx];
        box.resize(nx->out_shapes.size());
        auto& slot = box[e.input_nr];
        PC_CHECK(g.shape() == nx->out_shapes[e.input_nr], "[backward] ", node->name(),
                 " produced a gradient of shape ", shape_str(g.shape()), " for input ", i, " of shape ",
                 shape_str(nx->out_shapes[e.input_nr]));
        slot = slot.defined() ? add_new(slot, g) : g;
      }
      if (--deps[nx] == 0 && queued.insert(nx).second) ready.push_back(e.fn);
    }
  }
}

// ---------------------------------------------------------------------------
// Gradient checkpointing

namespace {
struct CheckpointBackward : Node {
  CheckpointFn fn;
  std::vector<Tensor> inputs;  // detached copies of the region's inputs
  GeneratorState rng;
  const char* name() const override { return "CheckpointBackward"; }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) override {
    std::vector<Tensor> leaves;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor d = inputs[i].detach();
      if (needs_grad(i)) d.set_requires_grad(true);
      leaves.push_back(d);
    }
    std::vector<Tensor> outs;
    {
      // Replay with the forward's RNG state, then put the current one back.
      Generator& gen = Generator::global();
      GeneratorState now = gen.state();
      gen.set_state(rng);
      EnableGradGuard grad_on;
      outs = fn(leaves);
      gen.set_state(now);
    }
    std::vector<Tensor> roots, grads;
    for (size_t k = 0; k < outs.size() && k < grad_outputs.size(); ++k) {
      if (!outs[k].requires_grad()) continue;
      roots.push_back(outs[k]);
      grads.push_back(grad_outputs[k]);
    }
    if (!roots.empty()) run_backward(roots, grads, false);
    std::vector<Tensor> result;
    for (auto& l : leaves) result.push_back(l.requires_grad() ? l.grad() : Tensor());
    return result;
  }
  void release() override {
    inputs.clear();
    fn = nullptr;
  }
};
}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs) {
  if (!GradMode::enabled()) return fn(inputs);
  GeneratorState rng = Generator::global().state();
  std::vector<Tensor> outs;
  {
    NoGradGuard no_grad;
    outs = fn(inputs);
  }
  auto node = std::make_shared<CheckpointBackward>();
  node->fn = fn;
  node->rng = rng;
  std::vector<const Tensor*> in_ptrs;
  for (auto& t : inputs) {
    node->inputs.push_back(t.detach());
    in_ptrs.push_back(&t);
  }
  // Outputs are fresh handles so the region's internals are not referenced.
  std::vector<Tensor> result;
  for (auto& o : outs) result.push_back(o.detach());
  std::vector<Tensor*> out_ptrs;
  for (auto& o : result) out_ptrs.push_back(&o);
  attach(node, in_ptrs, out_ptrs);
  return result;
}

// ---------------------------------------------------------------------------

Tensor sum_to_shape(const Tensor& g_in, const Shape& shape) {
  if (g_in.shape() == shape) return g_in;
  Tensor g = as_f32_contiguous(g_in);
  const int64_t nd = g.dim();
  const int64_t off = nd - static_cast<int64_t>(shape.size());
  PC_CHECK(off >= 0, "[sum_to_shape] cannot reduce ", shape_str(g.shape()), " to ", shape_str(shape));
  // Output strides as seen from g's index space; 0 where broadcast.
  Shape ostr(nd, 0);
  Shape cs = contiguous_strides(shape);
  for (int64_t d = off; d < nd; ++d) {
    int64_t sd = shape[d - off];
    PC_CHECK(sd == g.shape()[d] || sd == 1, "[sum_to_shape] cannot reduce ", shape_str(g.shape()), " to ",
             shape_str(shape));
    ostr[d] = (sd == 1 && g.shape()[d] != 1) ? 0 : cs[d - off];
  }
  Tensor out = Tensor::zeros(shape);
  float* o = out.data<float>();
  const float* s = g.data<float>();
  const int64_t n = g.numel();
  std::vector<int64_t> idx(nd, 0);
  int64_t oi = 0;
  for (int64_t i = 0; i < n; ++i) {
    o[oi] += s[i];
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < g.shape()[d]) {
        oi += ostr[d];
        break;
      }
      oi -= ostr[d] * (g.shape()[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace peftcpp
