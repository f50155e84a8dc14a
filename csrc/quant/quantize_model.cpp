#include "quant/quantize_model.h"

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/parallel.h"
#include "io/gguf_writer.h"
#include "quant/dequant.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"

namespace peftcpp {

namespace {

// Integer metadata value (any integer type; arrays: element 0, as llama.cpp
// reads per-layer hparams), or fallback when absent.
int64_t meta_int(const GGUFFile& f, const std::string& key, int64_t fallback) {
  const GGUFValue* v = f.find(key);
  if (!v) return fallback;
  auto scalar = [&](GGUFType t, uint64_t u, int64_t i) -> int64_t {
    switch (t) {
      case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
      case GGUFType::BOOL: return static_cast<int64_t>(u);
      case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64: return i;
      default:
        PC_CHECK(false, "[quantize] ", f.path, ": metadata key ", quoted_text(key), " has type ", gguf_type_name(t),
                 ", expected an integer");
        return 0;
    }
  };
  if (!v->is_array()) return scalar(v->type, v->u, v->i);
  if (v->count == 0) return fallback;
  switch (v->elem_type) {
    case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
      return v->int_at(0);
    default:
      return scalar(v->elem_type, v->uint_at(0), 0);
  }
}

std::string meta_str(const GGUFFile& f, const std::string& key) {
  const GGUFValue* v = f.find(key);
  return v && v->type == GGUFType::STRING ? v->str : std::string();
}

int64_t row_bytes(int type, int64_t n_per_row) {
  const GGMLTypeTraits& tr = ggml_type_traits(type);
  return n_per_row / tr.block_size * tr.type_size;
}

thread_local std::vector<float> tl_rows;

// F16 -> F32 is exact, so the hardware conversion gives the same floats as
// the table-free scalar decoder, at a fraction of its cost (F16 sources are
// the common llama-quantize input).
void f16_to_f32(const uint8_t* src, float* dst, int64_t n) {
#if defined(__F16C__) && defined(__AVX__)
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  if (i < n) dequantize_blocks(GGML_TYPE_F16, src + 2 * i, dst + i, n - i);
#else
  dequantize_blocks(GGML_TYPE_F16, src, dst, n);
#endif
}  // per-thread float32 staging rows

// Converts nrows rows from src_type to dst_type. Rows are processed in
// chunks of about 32K values spread over the threads; each chunk is
// dequantized into a small per-thread buffer that stays in cache and
// quantized straight into dst, so no float32 copy of the tensor is made.
void convert_rows(const uint8_t* src, int src_type, uint8_t* dst, int dst_type, int64_t nrows, int64_t n_per_row,
                  int nthreads) {
  if (nrows == 0 || n_per_row == 0) return;
  const int64_t src_row = row_bytes(src_type, n_per_row);
  const int64_t dst_row = static_cast<int64_t>(quantized_row_bytes(dst_type, n_per_row));
  const int64_t src_block = ggml_type_traits(src_type).block_size;
  const int64_t rows_per_chunk = std::max<int64_t>(1, 32768 / n_per_row);
  const int64_t nchunks = (nrows + rows_per_chunk - 1) / rows_per_chunk;
  // float32 input read in place when it is 4-byte aligned (it is in any GGUF with alignment >= 4).
  const bool direct = src_type == GGML_TYPE_F32 && reinterpret_cast<uintptr_t>(src) % alignof(float) == 0;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nthreads, nchunks)));
  const int64_t src_block_bytes = ggml_type_traits(src_type).type_size;

  // Plain threads pulling chunks from a shared counter (as llama.cpp does):
  // OpenMP's spin-waiting between the many short per-tensor regions burns
  // the cores the work needs when the machine is busy.
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mu;
  auto worker = [&]() {
    std::vector<float>& buf = tl_rows;
    for (int64_t c = next++; c < nchunks && !failed; c = next++) {
      try {
        const int64_t r0 = c * rows_per_chunk;
        const int64_t nr = std::min(rows_per_chunk, nrows - r0);
        const float* rows;
        if (direct) {
          rows = reinterpret_cast<const float*>(src + r0 * src_row);
        } else {
          if (buf.size() < static_cast<size_t>(nr * n_per_row)) buf.resize(nr * n_per_row);
          // Pieces of at most 64K values stay under dequantize_blocks' own
          // OpenMP threshold: no nested thread teams, nthreads is the real count.
          const int64_t n_blocks = nr * n_per_row / src_block, piece = 65536 / src_block;
          if (src_type == GGML_TYPE_F16) f16_to_f32(src + r0 * src_row, buf.data(), n_blocks);
          else for (int64_t b = 0; b < n_blocks; b += piece)
            dequantize_blocks(src_type, src + r0 * src_row + b * src_block_bytes, buf.data() + b * src_block,
                              std::min(piece, n_blocks - b));
          rows = buf.data();
        }
        quantize_rows(dst_type, rows, dst + r0 * dst_row, nr, n_per_row, 1);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(nt - 1);
  for (int i = 1; i < nt; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

QuantModelInfo quant_model_info(const GGUFFile& f) {
  const std::string gtype = meta_str(f, "general.type");
  PC_CHECK(gtype.empty() || gtype == "model", "[quantize] ", f.path, " has general.type ", quoted_text(gtype),
           ": only model GGUF files can be quantized",
           gtype == "adapter" ? " (this is a LoRA adapter; quantize the base model instead)" : "");
  QuantModelInfo m;
  m.arch = meta_str(f, "general.architecture");
  PC_CHECK(!m.arch.empty(), "[quantize] ", f.path,
           " is not a model GGUF: general.architecture is missing or not a string");
  const std::string a = m.arch + ".";
  m.n_layer = static_cast<int>(meta_int(f, a + "block_count", -1));
  PC_CHECK(m.n_layer > 0, "[quantize] ", f.path, " is not a model GGUF: ", quoted_text(a + "block_count"),
           " is missing or not positive");
  m.n_head = static_cast<int>(meta_int(f, a + "attention.head_count", 0));
  m.n_head_kv = static_cast<int>(meta_int(f, a + "attention.head_count_kv", m.n_head));
  m.n_expert = static_cast<int>(meta_int(f, a + "expert_count", 0));
  return m;
}

std::vector<TensorPlan> plan_gguf_quantization(const GGUFFile& f, int ftype) {
  ftype_name(ftype);  // unknown ids fail first, listing the valid ones
  const QuantModelInfo model = quant_model_info(f);
  std::vector<std::string> names;
  names.reserve(f.tensors.size());
  for (const auto& t : f.tensors) names.push_back(t.name);
  const std::vector<size_t> order = llama_tensor_order(names);

  std::vector<QuantTensorDesc> descs;
  descs.reserve(order.size());
  for (size_t i : order) descs.push_back({f.tensors[i].name, f.tensors[i].type, f.tensors[i].ne});
  const std::vector<int> types = plan_tensor_types(model, ftype, descs);

  std::vector<TensorPlan> plan;
  plan.reserve(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& t = f.tensors[order[k]];
    const int dst = types[k];
    if (dst != t.type) {
      PC_CHECK_TYPE(ggml_type_traits(t.type).dequantizable(), "[quantize] ", f.path, ": tensor ", quoted_text(t.name),
                    " has type ", t.type_name, ", which cannot be converted to ", ggml_type_traits(dst).name);
      PC_CHECK_TYPE(can_quantize(dst), "[quantize] ", f.path, ": tensor ", quoted_text(t.name),
                    ": cannot produce type ", ggml_type_traits(dst).name);
    }
    plan.push_back({order[k], t.name, t.type, dst, t.ne});
  }
  return plan;
}

void quantize_gguf(const std::string& in_path, const std::string& out_path, int ftype, int nthreads,
                   const QuantizeProgress& progress) {
  ftype_name(ftype);
  const GGUFFile f = read_gguf(in_path);
  const std::vector<TensorPlan> plan = plan_gguf_quantization(f, ftype);
  const int nt = nthreads > 0 ? nthreads : get_num_threads();

  // llama.cpp pads to the default 32 bytes whatever the input used, so
  // general.alignment is not carried over; split keys describe the input.
  GGUFWriter w(out_path);
  for (const auto& [key, value] : f.metadata) {
    if (key == "general.alignment" || key == "split.no" || key == "split.count" || key == "split.tensors.count")
      continue;
    w.set(key, value);
  }
  // gguf_set_val_* removes and appends, so these two always come last.
  w.remove("general.quantization_version");
  w.set("general.quantization_version", GGUFWriter::u32(2));
  w.remove("general.file_type");
  w.set("general.file_type", GGUFWriter::u32(static_cast<uint32_t>(ftype)));

  for (const auto& p : plan) {
    const auto& info = f.tensors[p.src_index];
    const uint8_t* src = f.tensor_data(p.src_index);
    const int64_t n_per_row = info.ne.empty() ? 1 : info.ne[0];
    const int64_t nrows = n_per_row > 0 ? info.numel / n_per_row : 0;
    const int src_type = p.src_type, dst_type = p.dst_type;
    const uint64_t src_bytes = info.nbytes;
    // What convert_rows writes: nrows rows of the target type. The reader
    // bounded the source bytes; the writer checks its own size from ne.
    const uint64_t dst_bytes =
        src_type == dst_type ? src_bytes
                             : checked_mul(static_cast<uint64_t>(nrows), quantized_row_bytes(dst_type, n_per_row),
                                           "[quantize] ", in_path, ": tensor ", quoted_text(p.name), " (",
                                           ggml_type_traits(dst_type).name, ") output size");
    w.add_tensor(p.name, dst_type, p.ne, [=](uint8_t* dst, size_t nbytes) {
      PC_CHECK(nbytes == dst_bytes, "[quantize] ", in_path, ": tensor ", quoted_text(p.name), ": the writer expects ",
               nbytes, " bytes, the conversion gives ", dst_bytes);
      if (src_type == dst_type) {
        if (nbytes) std::memcpy(dst, src, nbytes);
        return;
      }
      convert_rows(src, src_type, dst, dst_type, nrows, n_per_row, nt);
    });
  }
  w.write(progress);
}

}  // namespace peftcpp
