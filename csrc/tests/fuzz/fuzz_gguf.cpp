// libFuzzer target: the GGUF reader (csrc/io/gguf.cpp) over arbitrary bytes.
// Everything a caller would touch is touched: every metadata value, every
// tensor's bytes in the input, every tensor loaded (dequantized to float32
// for block types) and read, and the quantization plan `peftcpp quantize`
// would follow. Refusals (peftcpp's errors) are fine; a crash, a sanitizer
// report or any other exception is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "io/gguf.h"
#include "quant/quantize_model.h"

namespace {

volatile uint64_t g_sink;

uint64_t touch_value(const peftcpp::GGUFValue& v) {
  using peftcpp::GGUFType;
  uint64_t acc = v.u ^ static_cast<uint64_t>(v.i) ^ peftcpp_fuzz::touch(v.str.data(), v.str.size());
  if (!v.is_array()) return acc;
  if (peftcpp::gguf_scalar_size(v.elem_type)) {
    for (uint64_t k = 0; k < v.count; ++k) {
      switch (v.elem_type) {
        case GGUFType::FLOAT32: case GGUFType::FLOAT64: acc += static_cast<uint64_t>(v.float_at(k) != 0); break;
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
          acc += static_cast<uint64_t>(v.int_at(k)); break;
        default: acc += v.uint_at(k); break;
      }
    }
  }
  for (const auto& s : v.strings) acc ^= peftcpp_fuzz::touch(s.data(), s.size());
  for (const auto& a : v.arrays) acc ^= touch_value(a);
  return acc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peftcpp;
  peftcpp_fuzz::refusing_cleanly([&] {
    const GGUFFile f = parse_gguf("fuzz-input.gguf", data, size, nullptr);
    uint64_t acc = 0;
    for (const auto& kv : f.metadata) acc ^= touch_value(kv.second);
    for (size_t i = 0; i < f.tensors.size(); ++i) {
      const GGUFTensorInfo& ti = f.tensors[i];
      if (ti.nbytes > 0) {
        peftcpp_fuzz::expect_inside(data, size, f.tensor_data(i), ti.nbytes);
        acc ^= peftcpp_fuzz::touch(f.tensor_data(i), ti.nbytes);
      }
      peftcpp_fuzz::refusing_cleanly([&] {  // a type peftcpp cannot load is refused per tensor
        const Tensor t = gguf_tensor(f, i, /*dequantize=*/true);
        acc ^= peftcpp_fuzz::touch_tensor(t);
      });
    }
    peftcpp_fuzz::refusing_cleanly([&] { acc += plan_gguf_quantization(f, /*Q4_K_M*/ 15).size(); });
    g_sink = acc;
  });
  return 0;
}
