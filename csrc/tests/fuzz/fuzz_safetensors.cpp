// libFuzzer target: the safetensors reader (csrc/io/safetensors.cpp) over
// arbitrary bytes: header, metadata and every tensor's bytes are read.
// Refusals (peftcpp's errors) are fine; a crash, a sanitizer report or any
// other exception (e.g. the JSON parser's own) is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "io/safetensors.h"

namespace {
volatile uint64_t g_sink;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace peftcpp;
  peftcpp_fuzz::refusing_cleanly([&] {
    const SafetensorsFile f = parse_safetensors("fuzz-input.safetensors", data, size, nullptr);
    uint64_t acc = 0;
    for (const auto& [k, v] : f.metadata) acc ^= peftcpp_fuzz::touch(k.data(), k.size()) ^ v.size();
    for (const auto& [name, t] : f.tensors) {
      if (!t.storage()->owned) peftcpp_fuzz::expect_inside(data, size, t.raw_data(), t.storage()->nbytes);
      acc ^= peftcpp_fuzz::touch(name.data(), name.size()) ^ peftcpp_fuzz::touch_tensor(t);
    }
    g_sink = acc;
  });
  return 0;
}
