// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": {str: str}}, then the raw tensor bytes.
//
// Loading maps the file read-only once and every tensor borrows its slice of
// the mapping (zero-copy); the mapping is unmapped when the last tensor that
// views it dies. Saving writes a temporary file and renames it over the
// target, so an existing file is never left half-written.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/atomic_file.h"

namespace peftcpp {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

// Loads every tensor of the file as a read-only view of one shared mmap.
// Supported dtypes: F32, F16, BF16, I32, I64, BOOL. Malformed files raise
// std::invalid_argument (ValueError), unsupported dtypes TypeError, and
// files that cannot be opened FileError; the message names the file and the
// tensor. A tensor whose bytes are not aligned for its dtype (possible only in
// files from other writers) is copied instead of borrowed.
SafetensorsFile load_safetensors(const std::string& path);

// Same, over bytes already in memory (path only names them in errors);
// the tensors keep keepalive, which owns the bytes, alive.
SafetensorsFile parse_safetensors(const std::string& path, const uint8_t* data, size_t size,
                                  const std::shared_ptr<void>& keepalive);

// Writes the tensors (any layout; written contiguous, little-endian) in the
// order the reference implementation uses: by dtype alignment, largest first,
// then by name, so every tensor is aligned in the file and the bytes equal
// what safetensors itself writes. The header is padded with spaces to a
// multiple of 8. Atomic: written to path + ".tmp-<pid>", fsynced, renamed.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// One tensor of a streamed write: its bytes are produced only when the
// writer reaches it (peak memory: one tensor), e.g. dequantized on the fly.
// `write` must append exactly numel * dtype size bytes to `out` (checked).
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::function<void(AtomicFile& out)> write;
};

// Writes `entries` in the given order (the caller picks the layout) after the
// header; metadata first in the header when non-empty. Atomic like
// save_safetensors, which is this with the reference writer's order.
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {},
                       const std::string& who = "[write_safetensors]");

// The safetensors dtype string ("F32", "BF16", ...) of a peftcpp dtype.
const char* safetensors_dtype_name(DType t);
// The peftcpp dtype of a safetensors dtype string; false if unsupported.
bool safetensors_dtype_from_name(const std::string& name, DType* out);

}  // namespace peftcpp
