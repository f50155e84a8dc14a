// Whole-file GGUF quantization: what `llama-quantize in.gguf out.gguf FTYPE`
// does without an importance matrix. Same tensor order, same per-tensor types
// (quant/type_rules.h), same quantized bytes (quant/quantize.h), all KVs
// copied with general.quantization_version = 2 and general.file_type = ftype
// appended last. Unlike llama-quantize, already-quantized sources are
// requantized (dequantized to float32 first) instead of refused.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "quant/type_rules.h"

namespace peftcpp {

struct TensorPlan {
  size_t src_index;          // index in GGUFFile::tensors
  std::string name;
  int src_type;
  int dst_type;
  std::vector<int64_t> ne;   // ggml order
};

// Model facts for the rules; throws ValueError when the file is not a model
// GGUF (an adapter, or no general.architecture / block_count).
QuantModelInfo quant_model_info(const GGUFFile& f);

// Tensors in output order with their target types. Throws ValueError naming
// a tensor whose source type cannot be converted to its target.
std::vector<TensorPlan> plan_gguf_quantization(const GGUFFile& f, int ftype);

// progress(done_tensors, total_tensors) after each tensor is written.
using QuantizeProgress = std::function<void(size_t, size_t)>;

// Quantizes in_path into out_path (written atomically: on any error no file
// appears under out_path). nthreads <= 0: the engine's thread count.
void quantize_gguf(const std::string& in_path, const std::string& out_path, int ftype, int nthreads = 0,
                   const QuantizeProgress& progress = {});

}  // namespace peftcpp
