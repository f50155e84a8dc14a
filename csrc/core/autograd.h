// Define-by-run reverse-mode autograd. Each differentiable op records a Node
// holding what its backward needs; run_backward walks the recorded graph in
// dependency order entirely in C++, accumulating into leaf .grad, and frees
// each node's saved tensors as soon as it has run (unless retain_graph).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

// Where a gradient flows: into another node's output slot, or into a leaf.
struct Edge {
  std::shared_ptr<Node> fn;
  std::shared_ptr<TensorImpl> leaf;
  uint32_t input_nr = 0;
  bool valid() const { return fn || leaf; }
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grad_outputs: one per output (zeros filled in for outputs that got no
  // gradient). Returns one gradient per input; undefined where the input
  // needs none (check needs_grad(i) before computing it).
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;
  // Drop saved tensors once backward has run.
  virtual void release() {}

  bool needs_grad(size_t i) const { return i < next.size() && next[i].valid(); }

  std::vector<Edge> next;        // one per input
  std::vector<Shape> out_shapes;  // one per output
  bool released = false;
};

// Thread-local switch, like torch.no_grad / torch.enable_grad.
struct GradMode {
  static bool enabled();
  static void set(bool on);
};
struct NoGradGuard {
  bool prev;
  NoGradGuard() : prev(GradMode::enabled()) { GradMode::set(false); }
  ~NoGradGuard() { GradMode::set(prev); }
};
struct EnableGradGuard {
  bool prev;
  EnableGradGuard() : prev(GradMode::enabled()) { GradMode::set(true); }
  ~EnableGradGuard() { GradMode::set(prev); }
};

// Opt-in timing of backward nodes by name (seconds, calls), for profiling.
struct BackwardProfile {
  static bool enabled;
  static std::map<std::string, std::pair<double, int64_t>>& table();
};

// True when an op on these inputs must record a node.
bool needs_history(std::initializer_list<const Tensor*> inputs);
bool needs_history(const std::vector<Tensor>& inputs);
Edge edge_of(const Tensor& t);
// Wires node into the graph: edges from inputs, history on outputs.
void attach(const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs,
            const std::vector<Tensor*>& outputs);

// Runs backward from several roots at once (grads may be undefined only for
// one-element roots, meaning 1).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph);

// Gradient checkpointing: fn runs without recording; during backward it runs
// again with recording (same RNG state, so dropout masks match) and its own
// backward is run there. Parameters used inside fn get their .grad as usual.
using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs);

// Gradient helpers for broadcasting ops.
Tensor sum_to_shape(const Tensor& g, const Shape& shape);

}  // namespace peftcpp
