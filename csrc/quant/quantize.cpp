// quantize_rows(): the plain F32/F16/BF16 conversions and the split of rows
// over OpenMP threads; each type's row quantizer comes from the ggml type
// table. The block quantizers live in quantize_legacy.cpp and
// quantize_kquants.cpp.
#include "quant/quantize.h"

#include <omp.h>

#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"
#include "core/parallel.h"
#include "quant/ggml_types.h"
#include "quant/quantize_impl.h"

namespace peftcpp {

namespace quant {

void quantize_row_f32(const float* x, uint8_t* y, int64_t k) { std::memcpy(y, x, static_cast<size_t>(k) * 4); }

void quantize_row_f16(const float* x, uint8_t* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) store_f16(y + 2 * i, x[i]);
}

// ggml_compute_fp32_to_bf16: round to nearest even; NaN keeps its top bits
// and is made quiet (no rounding carry into the exponent).
void quantize_row_bf16(const float* x, uint8_t* y, int64_t k) {
  for (int64_t i = 0; i < k; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    uint16_t h;
    if ((u & 0x7fffffffu) > 0x7f800000u)
      h = static_cast<uint16_t>((u >> 16) | 64);
    else
      h = static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
    std::memcpy(y + 2 * i, &h, 2);
  }
}

}  // namespace quant

bool can_quantize(int type_id) { return ggml_type_traits(type_id).quantizable(); }

size_t quantized_row_bytes(int type_id, int64_t n_per_row) {
  const GGMLTypeTraits& t = ggml_type_traits(type_id);
  PC_CHECK(t.quantizable(), "[quantize] cannot quantize to ggml type ", t.known() ? t.name : "unknown", " (id ",
           type_id, ")");
  PC_CHECK(n_per_row >= 0 && n_per_row % t.block_size == 0, "[quantize] ", t.name, " needs rows whose length is a ",
           "multiple of its block size ", t.block_size, ", got a row of ", n_per_row, " elements");
  return checked_mul(static_cast<uint64_t>(n_per_row / t.block_size), t.type_size, "[quantize] a ", t.name,
                     " row of ", n_per_row, " elements");
}

void quantize_rows(int type_id, const float* src, void* dst, int64_t nrows, int64_t n_per_row, int nthreads) {
  const size_t row_bytes = quantized_row_bytes(type_id, n_per_row);  // validates type and row length
  PC_CHECK(nrows >= 0, "[quantize] negative row count ", nrows);
  if (nrows == 0 || n_per_row == 0) return;
  const FromFloatFn fn = ggml_type_traits(type_id).from_float_ref;
  uint8_t* out = static_cast<uint8_t*>(dst);
  int nt = nthreads > 0 ? nthreads : get_num_threads();
  if (nt > nrows) nt = static_cast<int>(nrows);
  // Whole rows per thread: blocks never straddle rows, so the bytes are the
  // same for any split.
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t r = 0; r < nrows; ++r) fn(src + r * n_per_row, out + static_cast<size_t>(r) * row_bytes, n_per_row);
}

}  // namespace peftcpp
