// GGUF files (llama.cpp's model format, spec: ggml/include/gguf.h upstream):
//   "GGUF" | u32 version (2 or 3) | i64 n_tensors | i64 n_kv
//   | n_kv x (string key, i32 type, value)
//   | n_tensors x (string name, u32 n_dims, i64 ne[n_dims], i32 ggml_type, u64 offset)
//   | zero padding to the alignment | tensor data (offsets relative to here)
// Strings are u64 length + bytes (no NUL); arrays are i32 element type, u64
// count, elements (nested arrays allowed). Little-endian throughout.
//
// read_gguf maps the file read-only once and validates all of it up front;
// tensors then borrow the mapping (zero-copy for F32/F16/BF16/I32/I64) or are
// dequantized into fresh float32 tensors (quantized types).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace peftcpp {

enum class GGUFType : int32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

// "UINT8", ..., "FLOAT64" (or "?" for values outside the enum).
const char* gguf_type_name(GGUFType t);
// Bytes of one numeric or BOOL value; 0 for STRING, ARRAY and unknown types.
size_t gguf_scalar_size(GGUFType t);

// One metadata value. Scalars: integers in u (unsigned types, bool) or i
// (signed types), floats in f, strings in str. Arrays: elem_type and count,
// with the elements in numbers (numeric/bool elements, packed little-endian
// exactly as in the file), strings (STRING elements) or arrays (ARRAY
// elements, each itself an ARRAY value).
struct GGUFValue {
  GGUFType type = GGUFType::UINT8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string str;

  GGUFType elem_type = GGUFType::UINT8;
  uint64_t count = 0;
  std::vector<uint8_t> numbers;
  std::vector<std::string> strings;
  std::vector<GGUFValue> arrays;

  bool is_array() const { return type == GGUFType::ARRAY; }
  // Element k of a numeric/bool array, as the matching C++ kind.
  uint64_t uint_at(uint64_t k) const;  // unsigned element types and BOOL
  int64_t int_at(uint64_t k) const;    // signed element types
  double float_at(uint64_t k) const;   // FLOAT32/FLOAT64 (float32 widened exactly)
};

struct GGUFTensorInfo {
  std::string name;
  int type = 0;               // ggml type id
  std::string type_name;      // "Q4_K", ...
  std::vector<int64_t> ne;    // dims as stored: ne[0] varies fastest
  Shape shape;                // row-major shape: ne reversed
  int64_t numel = 0;
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
};

struct GGUFFile {
  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;     // general.alignment or the default 32
  uint64_t data_offset = 0;    // file offset of the tensor data section
  std::vector<std::pair<std::string, GGUFValue>> metadata;  // file order
  std::vector<GGUFTensorInfo> tensors;                       // file order
  std::shared_ptr<void> mapping;  // the read-only mmap; tensors keep it alive
  const uint8_t* base = nullptr;  // start of the mapping
  size_t size = 0;                // file size in bytes

  // nullptr when absent.
  const GGUFValue* find(const std::string& key) const;
  // Index of the tensor with this name, or -1.
  int64_t tensor_index(const std::string& name) const;
  // The tensor's bytes inside the mapping.
  const uint8_t* tensor_data(size_t index) const { return base + data_offset + tensors.at(index).offset; }
};

// Maps and validates the whole file: magic, version (2 or 3), counts against
// the file size, string and array lengths, value types, unique non-empty keys
// and tensor names, general.alignment (UINT32, power of two), dims (at most
// 4, non-negative as llama.cpp allows, ne[0] a multiple of the block size),
// element count and byte size within int64 (core/checked_math.h: a size
// that wraps is refused, never seen as small), known tensor types, and that
// each tensor's data is aligned, inside the file (an empty tensor's offset
// too) and overlaps no other. Malformed files throw std::invalid_argument
// naming the file and the key or tensor (names escaped: one line of valid
// UTF-8); files that cannot be opened throw FileError.
GGUFFile read_gguf(const std::string& path);

// Same, over bytes already in memory; keepalive owns them.
GGUFFile parse_gguf(const std::string& path, const uint8_t* data, size_t size, std::shared_ptr<void> keepalive);

// Tensor `index` with its row-major shape. F32, F16, BF16, I32 and I64 borrow
// the mapping read-only (zero-copy; copied only if misaligned in memory).
// Quantized types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS) are decoded into
// a new float32 tensor when dequantize is true and raise TypeError when it is
// false; other types raise TypeError naming the tensor and its type.
Tensor gguf_tensor(const GGUFFile& file, size_t index, bool dequantize = true);

}  // namespace peftcpp
