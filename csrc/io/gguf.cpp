#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "core/checked_math.h"
#include "core/error.h"
#include "io/safetensors.h"  // FileError
#include "quant/dequant.h"
#include "quant/ggml_types.h"

namespace peftcpp {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF I/O assumes a little-endian host");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;         // nested arrays deeper than this are refused

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool known_value_type(int32_t t) { return t >= 0 && t <= 12; }

// Bounds-checked little-endian reader over the mapping.
class Reader {
 public:
  Reader(const std::string& where, const uint8_t* data, size_t size) : where_(where), p_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  // `what` describes the field for the truncation message.
  void need(size_t n, const std::string& what) const {
    PC_CHECK(n <= left(), where_, ": file ends at byte ", size_, " while reading ", what, " (", n,
             " bytes needed at offset ", pos_, "); the file is truncated or corrupt");
  }
  template <class T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const std::string& what) {
    const uint64_t n = get<uint64_t>(what + " length");
    PC_CHECK(n <= left(), where_, ": ", what, " has length ", n, " but only ", left(),
             " bytes are left in the file (offset ", pos_, "); the file is truncated or corrupt");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  const uint8_t* peek() const { return p_ + pos_; }
  const uint8_t* take(size_t n, const std::string& what) {
    need(n, what);
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }

 private:
  const std::string& where_;
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
};

void read_scalar(Reader& r, GGUFType t, GGUFValue* v, const std::string& what) {
  switch (t) {
    case GGUFType::UINT8: v->u = r.get<uint8_t>(what); break;
    case GGUFType::BOOL: v->u = r.get<uint8_t>(what); break;
    case GGUFType::UINT16: v->u = r.get<uint16_t>(what); break;
    case GGUFType::UINT32: v->u = r.get<uint32_t>(what); break;
    case GGUFType::UINT64: v->u = r.get<uint64_t>(what); break;
    case GGUFType::INT8: v->i = r.get<int8_t>(what); break;
    case GGUFType::INT16: v->i = r.get<int16_t>(what); break;
    case GGUFType::INT32: v->i = r.get<int32_t>(what); break;
    case GGUFType::INT64: v->i = r.get<int64_t>(what); break;
    case GGUFType::FLOAT32: v->f = r.get<float>(what); break;
    case GGUFType::FLOAT64: v->f = r.get<double>(what); break;
    default: break;
  }
}

// Reads a value of type t (already read) into v. `where` names the file,
// `what` the key.
void read_value(Reader& r, GGUFType t, GGUFValue* v, const std::string& where, const std::string& what,
                int depth) {
  v->type = t;
  if (t == GGUFType::STRING) {
    v->str = r.str(what + " (string value)");
    return;
  }
  if (t != GGUFType::ARRAY) {
    read_scalar(r, t, v, what);
    return;
  }
  PC_CHECK(depth < kMaxArrayDepth, where, ": ", what, ": arrays nested more than ", kMaxArrayDepth,
           " deep are not supported");
  const int32_t et = r.get<int32_t>(what + " (array element type)");
  PC_CHECK(known_value_type(et), where, ": ", what, ": unknown array element type ", et,
           " (GGUF value types are 0..12)");
  const uint64_t n = r.get<uint64_t>(what + " (array length)");
  v->elem_type = static_cast<GGUFType>(et);
  v->count = n;
  const size_t es = gguf_scalar_size(v->elem_type);
  // Smallest encoding of one element, to bound n by the bytes left.
  const size_t min_elem = es ? es : (v->elem_type == GGUFType::STRING ? 8 : 12);
  PC_CHECK(n <= r.left() / min_elem, where, ": ", what, ": array of ", n, " ", gguf_type_name(v->elem_type),
           " elements needs at least ", min_elem, " bytes each but only ", r.left(),
           " bytes are left in the file; the file is truncated or corrupt");
  if (es) {
    const size_t bytes = checked_mul(n, es, where, ": ", what, " (array data)");
    const uint8_t* p = r.take(bytes, what + " (array data)");
    v->numbers.assign(p, p + bytes);
  } else if (v->elem_type == GGUFType::STRING) {
    // Inline (no per-element message strings: vocabularies hold ~10^5 tokens).
    v->strings.reserve(static_cast<size_t>(n));
    for (uint64_t k = 0; k < n; ++k) {
      const bool ok = r.left() >= 8;
      uint64_t len = 0;
      if (ok) std::memcpy(&len, r.peek(), 8);
      PC_CHECK(ok && len <= r.left() - 8, where, ": ", what, ": string element ", k, " of ", n, " has length ",
               ok ? std::to_string(len) : std::string("(missing)"), " but only ", r.left(),
               " bytes are left in the file; the file is truncated or corrupt");
      const uint8_t* p = r.take(8 + static_cast<size_t>(len), what);
      v->strings.emplace_back(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(len));
    }
  } else {
    v->arrays.resize(static_cast<size_t>(n));
    for (uint64_t k = 0; k < n; ++k)
      read_value(r, GGUFType::ARRAY, &v->arrays[k], where, what + "[" + std::to_string(k) + "]", depth + 1);
  }
}

}  // namespace

size_t gguf_scalar_size(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
    case GGUFType::UINT16: case GGUFType::INT16: return 2;
    case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
    case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
    default: return 0;
  }
}

const char* gguf_type_name(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8: return "UINT8";
    case GGUFType::INT8: return "INT8";
    case GGUFType::UINT16: return "UINT16";
    case GGUFType::INT16: return "INT16";
    case GGUFType::UINT32: return "UINT32";
    case GGUFType::INT32: return "INT32";
    case GGUFType::FLOAT32: return "FLOAT32";
    case GGUFType::BOOL: return "BOOL";
    case GGUFType::STRING: return "STRING";
    case GGUFType::ARRAY: return "ARRAY";
    case GGUFType::UINT64: return "UINT64";
    case GGUFType::INT64: return "INT64";
    case GGUFType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

uint64_t GGUFValue::uint_at(uint64_t k) const {
  PC_CHECK(is_array() && k < count && gguf_scalar_size(elem_type), "[gguf] uint_at: not a numeric array element");
  const uint8_t* p = numbers.data() + k * gguf_scalar_size(elem_type);
  switch (elem_type) {
    case GGUFType::UINT8: case GGUFType::BOOL: return *p;
    case GGUFType::UINT16: { uint16_t x; std::memcpy(&x, p, 2); return x; }
    case GGUFType::UINT32: { uint32_t x; std::memcpy(&x, p, 4); return x; }
    case GGUFType::UINT64: { uint64_t x; std::memcpy(&x, p, 8); return x; }
    default: PC_CHECK(false, "[gguf] uint_at: array elements are ", gguf_type_name(elem_type));
  }
  return 0;
}

int64_t GGUFValue::int_at(uint64_t k) const {
  PC_CHECK(is_array() && k < count && gguf_scalar_size(elem_type), "[gguf] int_at: not a numeric array element");
  const uint8_t* p = numbers.data() + k * gguf_scalar_size(elem_type);
  switch (elem_type) {
    case GGUFType::INT8: return static_cast<int8_t>(*p);
    case GGUFType::INT16: { int16_t x; std::memcpy(&x, p, 2); return x; }
    case GGUFType::INT32: { int32_t x; std::memcpy(&x, p, 4); return x; }
    case GGUFType::INT64: { int64_t x; std::memcpy(&x, p, 8); return x; }
    default: PC_CHECK(false, "[gguf] int_at: array elements are ", gguf_type_name(elem_type));
  }
  return 0;
}

double GGUFValue::float_at(uint64_t k) const {
  PC_CHECK(is_array() && k < count && gguf_scalar_size(elem_type), "[gguf] float_at: not a numeric array element");
  const uint8_t* p = numbers.data() + k * gguf_scalar_size(elem_type);
  switch (elem_type) {
    case GGUFType::FLOAT32: { float x; std::memcpy(&x, p, 4); return x; }
    case GGUFType::FLOAT64: { double x; std::memcpy(&x, p, 8); return x; }
    default: PC_CHECK(false, "[gguf] float_at: array elements are ", gguf_type_name(elem_type));
  }
  return 0;
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
  for (const auto& kv : metadata)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

int64_t GGUFFile::tensor_index(const std::string& name) const {
  for (size_t k = 0; k < tensors.size(); ++k)
    if (tensors[k].name == name) return static_cast<int64_t>(k);
  return -1;
}

GGUFFile parse_gguf(const std::string& path, const uint8_t* data, size_t size, std::shared_ptr<void> keepalive) {
  const std::string where = "[read_gguf] " + path;
  Reader r(where, data, size);
  GGUFFile f;
  f.path = path;
  f.mapping = std::move(keepalive);
  f.base = data;
  f.size = size;

  PC_CHECK(size >= 24, where, ": file is ", size, " bytes, too short for a GGUF header (24 bytes)");
  const uint32_t magic = r.get<uint32_t>("the magic");
  PC_CHECK(magic == kMagic, where, ": not a GGUF file (magic bytes ",
           quoted_text(std::string(reinterpret_cast<const char*>(data), 4), /*ascii_only=*/true),
           ", expected 'GGUF')");
  const uint32_t version = r.get<uint32_t>("the version");
  PC_CHECK(version != 1, where, ": GGUF version 1 is not supported (only versions 2 and 3)");
  PC_CHECK((version & 0xFFFFu) != 0, where, ": GGUF version field is ", version,
           "; this looks like a big-endian GGUF file, which is not supported");
  PC_CHECK(version == 2 || version == 3, where, ": GGUF version ", version,
           " is not supported (only versions 2 and 3)");
  f.version = version;
  const uint64_t n_tensors = r.get<uint64_t>("the tensor count");
  const uint64_t n_kv = r.get<uint64_t>("the metadata count");
  // Smallest encodings: a KV is key length 8 + 1 byte + type 4 + 1 byte; a
  // tensor info is name length 8 + 1 byte + n_dims 4 + type 4 + offset 8.
  PC_CHECK(n_kv <= r.left() / 14, where, ": header claims ", n_kv, " metadata entries, more than the ", r.left(),
           " bytes left in the file can hold; the file is corrupt");
  PC_CHECK(n_tensors <= r.left() / 25, where, ": header claims ", n_tensors, " tensors, more than the ", r.left(),
           " bytes left in the file can hold; the file is corrupt");

  std::unordered_set<std::string> keys;
  f.metadata.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string entry = "metadata entry " + std::to_string(k);
    std::string key = r.str(entry + " key");
    PC_CHECK(!key.empty(), where, ": ", entry, " has an empty key");
    const std::string what = "metadata key " + quoted_text(key);
    PC_CHECK(keys.insert(key).second, where, ": duplicate ", what);
    const int32_t t = r.get<int32_t>(what + " (value type)");
    PC_CHECK(known_value_type(t), where, ": ", what, " has unknown value type ", t, " (GGUF value types are 0..12)");
    GGUFValue v;
    read_value(r, static_cast<GGUFType>(t), &v, where, what, 0);
    f.metadata.emplace_back(std::move(key), std::move(v));
  }

  if (const GGUFValue* a = f.find("general.alignment")) {
    PC_CHECK(a->type == GGUFType::UINT32, where, ": metadata key 'general.alignment' has type ",
             gguf_type_name(a->type), ", expected UINT32");
    PC_CHECK(a->u != 0 && (a->u & (a->u - 1)) == 0, where, ": metadata key 'general.alignment' is ", a->u,
             ", not a power of two");
    f.alignment = a->u;
  }

  std::unordered_set<std::string> names;
  f.tensors.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GGUFTensorInfo ti;
    ti.name = r.str("tensor info " + std::to_string(k) + " name");
    PC_CHECK(!ti.name.empty(), where, ": tensor info ", k, " has an empty name");
    const std::string what = "tensor " + quoted_text(ti.name);
    PC_CHECK(names.insert(ti.name).second, where, ": duplicate ", what);
    const uint32_t n_dims = r.get<uint32_t>(what + " (n_dims)");
    PC_CHECK(n_dims <= kMaxDims, where, ": ", what, " has ", n_dims, " dimensions; GGUF allows at most ", kMaxDims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = r.get<uint64_t>(what + " (dims)");
      PC_CHECK(ne <= kMaxSize, where, ": ", what, " has a negative dimension ", static_cast<int64_t>(ne));
      ti.ne.push_back(static_cast<int64_t>(ne));
    }
    ti.shape.assign(ti.ne.rbegin(), ti.ne.rend());
    ti.type = r.get<int32_t>(what + " (type)");
    const GGMLTypeTraits& tt = ggml_type_traits(ti.type);
    PC_CHECK(tt.known(), where, ": ", what, " has unknown ggml type id ", ti.type);
    ti.type_name = tt.name;
    ti.offset = r.get<uint64_t>(what + " (data offset)");

    // Element count and byte size, overflow-checked: a product that wrapped
    // past 2^64 would pass the bounds check below as a tiny tensor.
    ti.numel = checked_numel(ti.ne, where, ": ", what);
    const int64_t row = ti.ne.empty() ? 1 : ti.ne[0];
    PC_CHECK(row % tt.block_size == 0, where, ": ", what, " of type ", tt.name, " has row length ne[0] = ", row,
             ", not a multiple of the block size ", tt.block_size);
    ti.nbytes = checked_mul(static_cast<uint64_t>(ti.numel) / static_cast<uint64_t>(tt.block_size),
                            static_cast<uint64_t>(tt.type_size), where, ": ", what, " (", tt.name, ") byte size");
    PC_CHECK(ti.offset % f.alignment == 0, where, ": ", what, " has data offset ", ti.offset,
             ", not a multiple of the alignment ", f.alignment);
    f.tensors.push_back(std::move(ti));
  }

  f.data_offset = checked_pad(r.pos(), f.alignment, where, ": data section offset");
  // Every tensor's bytes lie inside the file (an empty tensor's offset too,
  // as llama.cpp requires, so tensor_data() never points outside the
  // mapping) and no two overlap.
  std::vector<const GGUFTensorInfo*> by_offset;
  for (const auto& ti : f.tensors) {
    const std::string what = "tensor " + quoted_text(ti.name);
    // Compared by subtraction from the file size, so no sum can wrap.
    const bool inside = f.data_offset <= size && ti.offset <= size - f.data_offset &&
                        ti.nbytes <= size - f.data_offset - ti.offset;
    PC_CHECK(inside, where, ": ", what, " (", ti.type_name, ", ", ti.nbytes, " bytes at data offset ", ti.offset,
             ") runs past the end of the file (", size, " bytes, data section at ", f.data_offset,
             "); the file is truncated or corrupt");
    if (ti.nbytes > 0) by_offset.push_back(&ti);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GGUFTensorInfo* a, const GGUFTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GGUFTensorInfo* a = by_offset[k - 1];
    const GGUFTensorInfo* b = by_offset[k];
    PC_CHECK(a->offset + a->nbytes <= b->offset, where, ": tensors ", quoted_text(a->name), " [", a->offset, ", ",
             a->offset + a->nbytes, ") and ", quoted_text(b->name), " [", b->offset, ", ", b->offset + b->nbytes,
             ") overlap");
  }
  return f;
}

GGUFFile read_gguf(const std::string& path) {
  Fd fd;
  fd.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd.fd < 0) {
    int e = errno;
    throw FileError("[read_gguf] cannot open '" + path + "': " + std::strerror(e), e);
  }
  struct stat sb;
  if (::fstat(fd.fd, &sb) != 0) {
    int e = errno;
    throw FileError("[read_gguf] cannot stat '" + path + "': " + std::strerror(e), e);
  }
  if (S_ISDIR(sb.st_mode)) throw FileError("[read_gguf] '" + path + "' is a directory", EISDIR);
  PC_CHECK(S_ISREG(sb.st_mode), "[read_gguf] ", path, ": not a regular file");
  const size_t size = static_cast<size_t>(sb.st_size);
  PC_CHECK(size >= 24, "[read_gguf] ", path, ": file is ", size, " bytes, too short for a GGUF header (24 bytes)");
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    throw FileError("[read_gguf] cannot map '" + path + "': " + std::strerror(e), e);
  }
  // One mapping shared by every borrowed tensor; the last owner unmaps it.
  std::shared_ptr<void> keepalive(base, [size](void* p) { ::munmap(p, size); });
  return parse_gguf(path, static_cast<const uint8_t*>(base), size, std::move(keepalive));
}

Tensor gguf_tensor(const GGUFFile& file, size_t index, bool dequantize) {
  PC_CHECK_INDEX(index < file.tensors.size(), "[gguf_tensor] ", file.path, ": tensor index ", index,
                 " out of range (", file.tensors.size(), " tensors)");
  const GGUFTensorInfo& ti = file.tensors[index];
  const std::string where = "[gguf_tensor] " + file.path + ": tensor " + quoted_text(ti.name);
  DType dt;
  bool direct = true;
  switch (ti.type) {
    case GGML_TYPE_F32: dt = DType::F32; break;
    case GGML_TYPE_F16: dt = DType::F16; break;
    case GGML_TYPE_BF16: dt = DType::BF16; break;
    case GGML_TYPE_I32: dt = DType::I32; break;
    case GGML_TYPE_I64: dt = DType::I64; break;
    default: direct = false; dt = DType::F32; break;
  }
  const GGMLTypeTraits& tt = ggml_type_traits(ti.type);
  if (!direct) {
    PC_CHECK_TYPE(tt.dequantizable(), where, " has type ", ti.type_name,
                  ", which peftcpp cannot load (supported: F32, F16, BF16, I32, I64 and, dequantized to float32, ",
                  ggml_type_names([](const GGMLTypeTraits& t) { return t.dequantizable() && t.block_size > 1; }),
                  ")");
    PC_CHECK_TYPE(dequantize, where, " is quantized (", ti.type_name,
                  "); pass dequantize=True for a float32 copy, or read its raw bytes");
  }
  if (ti.numel == 0) return Tensor::empty(ti.shape, dt);
  const uint8_t* p = file.tensor_data(index);
  if (!direct) {
    Tensor out = Tensor::empty(ti.shape, DType::F32);
    dequantize_blocks(ti.type, p, out.data<float>(), ti.numel / tt.block_size);
    return out;
  }
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(dt) != 0) {
    // Only possible with general.alignment below the element size.
    Tensor t = Tensor::empty(ti.shape, dt);
    std::memcpy(t.raw_data(), p, ti.nbytes);
    return t;
  }
  auto st = Storage::borrow(const_cast<uint8_t*>(p), ti.nbytes, file.mapping, /*writable=*/false);
  return Tensor::from_storage(st, ti.shape, dt);
}

}  // namespace peftcpp
