#include "io/safetensors.h"

#include "core/checked_math.h"
#include "core/error.h"
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

namespace peftcpp {

// The format is little-endian; so is every machine we build for.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

// Same cap as the reference implementation: a larger header is certainly
// corrupt, and refusing it bounds the memory the JSON parser may take.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_str(int e) { return std::strerror(e); }

// The parser's message quotes the offending bytes, which may not be UTF-8;
// escape them so the message always converts to a Python str.
std::string escape_bytes(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 300) return out + "...";  // the parser quotes the last token read, which may be huge
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// Known safetensors dtypes that peftcpp has no element type for.
bool is_known_unsupported(const std::string& s) {
  static const char* names[] = {"F64", "I8", "U8", "I16", "U16", "U32", "U64", "F8_E4M3",
                                "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* n : names)
    if (s == n) return true;
  return false;
}


// Order key of the reference writer (its dtype enum, reversed): larger
// alignment first, so each tensor starts aligned after an 8-byte-padded header.
int write_rank(DType t) {
  switch (t) {
    case DType::I64: return 0;
    case DType::F32: return 1;
    case DType::I32: return 2;
    case DType::BF16: return 3;
    case DType::F16: return 4;
    case DType::BOOL: return 5;
  }
  return 6;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// A header value for an error message: its JSON text (ASCII, one line) when
// flat, cut at 100 bytes. Nested values are never serialized: the serializer
// recurses, and a hostile header can nest arrays 10^5 deep.
std::string brief(const json& v) {
  if (v.is_object()) return "(an object)";
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_structured()) return "(a nested list)";
  std::string s = v.dump(-1, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace);
  return s.size() > 100 ? s.substr(0, 100) + "..." : s;
}

// A JSON value as a non-negative integer that fits in int64 (shapes and
// offsets); false for negatives, fractions, floats and huge values.
bool as_index(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  uint64_t u = v.get<uint64_t>();
  if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = u;
  return true;
}

Entry parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t buffer_bytes) {
  const std::string where = "[load_safetensors] " + path + ": tensor " + quoted_text(name);
  PC_CHECK(v.is_object(), where, ": header entry is not a JSON object");
  Entry e;
  e.name = name;

  auto dt = v.find("dtype");
  PC_CHECK(dt != v.end() && dt->is_string(), where, ": missing or non-string \"dtype\"");
  const std::string dts = dt->get<std::string>();
  if (!safetensors_dtype_from_name(dts, &e.dtype)) {
    PC_CHECK_TYPE(!is_known_unsupported(dts), where, " has dtype ", dts,
                  ", which peftcpp does not support (supported: F32, F16, BF16, I32, I64, BOOL)");
    PC_CHECK(false, where, ": unknown dtype ", quoted_text(dts));
  }

  auto sh = v.find("shape");
  PC_CHECK(sh != v.end() && sh->is_array(), where, ": missing or non-array \"shape\"");
  for (const auto& d : *sh) {
    uint64_t u;
    PC_CHECK(as_index(d, &u), where, ": shape ", brief(*sh), " has an entry that is not a non-negative integer");
    e.shape.push_back(static_cast<int64_t>(u));
  }
  // Element count (the non-zero dimensions' product fits in int64, so later
  // strides cannot overflow) and byte size, both overflow-checked.
  const int64_t numel = checked_numel(e.shape, where);
  const uint64_t nbytes = checked_mul(static_cast<uint64_t>(numel), dtype_size(e.dtype), where, " (", dts,
                                      ", shape ", brief(*sh), ") byte size");

  auto off = v.find("data_offsets");
  PC_CHECK(off != v.end() && off->is_array() && off->size() == 2, where,
           ": missing \"data_offsets\" or not a pair [begin, end]");
  PC_CHECK(as_index((*off)[0], &e.begin) && as_index((*off)[1], &e.end), where, ": data_offsets ", brief(*off),
           " are not non-negative integers");
  PC_CHECK(e.begin <= e.end, where, ": data_offsets ", brief(*off), " end before they begin");
  PC_CHECK(e.end <= buffer_bytes, where, ": data_offsets ", brief(*off), " run past the end of the data (",
           buffer_bytes, " bytes); the file is truncated or corrupt");
  PC_CHECK(e.end - e.begin == nbytes, where, ": shape ", brief(*sh), " of ", dts, " needs ", nbytes,
           " bytes but data_offsets ", brief(*off), " span ", e.end - e.begin);
  return e;
}


}  // namespace

SafetensorsFile parse_safetensors(const std::string& path, const uint8_t* data, size_t size,
                                  const std::shared_ptr<void>& keepalive) {
  const std::string where = "[load_safetensors] " + path;
  PC_CHECK(size >= 8, where, ": file is ", size, " bytes, too short for a safetensors header");
  uint64_t n;
  std::memcpy(&n, data, 8);
  PC_CHECK(n <= size - 8, where, ": header length ", n, " exceeds the file size (", size,
           " bytes); the file is truncated or not a safetensors file");
  PC_CHECK(n <= kMaxHeaderBytes, where, ": header length ", n, " is larger than the ", kMaxHeaderBytes,
           "-byte limit");
  json header;
  try {
    header = json::parse(data + 8, data + 8 + n);
  } catch (const json::exception& ex) {
    PC_CHECK(false, where, ": header is not valid JSON (", escape_bytes(ex.what()), ")");
  }
  PC_CHECK(header.is_object(), where, ": header is not a JSON object");

  const uint64_t data_begin = 8 + n;
  const uint64_t buffer_bytes = size - data_begin;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_null()) continue;
      PC_CHECK(it->is_object(), where, ": \"__metadata__\" is not a JSON object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        PC_CHECK(m->is_string(), where, ": metadata value for key ", quoted_text(m.key()), " is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), *it, buffer_bytes));
  }

  // No two tensors may share bytes (zero-size tensors occupy none).
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const Entry* furthest = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin == e->end) continue;
    PC_CHECK(!furthest || e->begin >= furthest->end, where, ": tensors ", quoted_text(furthest ? furthest->name : ""),
             " [", furthest ? furthest->begin : 0, ", ", furthest ? furthest->end : 0, ") and ", quoted_text(e->name),
             " [", e->begin, ", ", e->end, ") overlap");
    if (!furthest || e->end > furthest->end) furthest = e;
  }

  for (const auto& e : entries) {
    const size_t nbytes = e.end - e.begin;
    const uint8_t* p = data + data_begin + e.begin;
    const size_t es = dtype_size(e.dtype);
    Tensor t;
    if (nbytes > 0 && reinterpret_cast<uintptr_t>(p) % es != 0) {
      // Misaligned (not a file we or the reference writer produced): a typed
      // view would be undefined behaviour, so take an aligned copy.
      t = Tensor::empty(e.shape, e.dtype);
      std::memcpy(t.raw_data(), p, nbytes);
    } else {
      auto st = Storage::borrow(const_cast<uint8_t*>(p), nbytes, keepalive, /*writable=*/false);
      t = Tensor::from_storage(st, e.shape, e.dtype);
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

bool safetensors_dtype_from_name(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F16") *out = DType::F16;
  else if (s == "BF16") *out = DType::BF16;
  else if (s == "I32") *out = DType::I32;
  else if (s == "I64") *out = DType::I64;
  else if (s == "BOOL") *out = DType::BOOL;
  else return false;
  return true;
}

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

SafetensorsFile load_safetensors(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    int e = errno;
    throw FileError("[load_safetensors] cannot open '" + path + "': " + errno_str(e), e);
  }
  struct stat sb;
  if (::fstat(f.fd, &sb) != 0) {
    int e = errno;
    throw FileError("[load_safetensors] cannot stat '" + path + "': " + errno_str(e), e);
  }
  if (S_ISDIR(sb.st_mode)) throw FileError("[load_safetensors] '" + path + "' is a directory", EISDIR);
  PC_CHECK(S_ISREG(sb.st_mode), "[load_safetensors] ", path, ": not a regular file");
  const size_t size = static_cast<size_t>(sb.st_size);
  PC_CHECK(size >= 8, "[load_safetensors] ", path, ": file is ", size,
           " bytes, too short for a safetensors header");
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    throw FileError("[load_safetensors] cannot map '" + path + "': " + errno_str(e), e);
  }
  // One mapping shared by every tensor; the last one to die unmaps it.
  std::shared_ptr<void> keepalive(base, [size](void* p) { ::munmap(p, size); });
  return parse_safetensors(path, static_cast<const uint8_t*>(base), size, keepalive);
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata, const std::string& who) {
  const std::string where = who + " " + path;
  // Everything that can be checked is checked before the file is touched.
  // ordered_json keeps insertion order, matching the reference layout:
  // metadata first, then tensors in file order, keys dtype/shape/data_offsets.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    PC_CHECK(!e.name.empty(), where, ": tensor names must not be empty");
    PC_CHECK(e.name != "__metadata__", where, ": \"__metadata__\" is reserved and cannot name a tensor");
    const std::string what = "tensor " + quoted_text(e.name);
    PC_CHECK(!header.contains(e.name), where, ": ", what, " is given twice");
    const int64_t numel = checked_numel(e.shape, where, ": ", what);
    const uint64_t nbytes = checked_mul(static_cast<uint64_t>(numel), dtype_size(e.dtype), where, ": ", what,
                                        " byte size");
    const uint64_t end = checked_add(offset, nbytes, where, ": data offset of ", what);
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    h["dtype"] = safetensors_dtype_name(e.dtype);
    h["shape"] = e.shape;
    h["data_offsets"] = {offset, end};
    header[e.name] = std::move(h);
    sizes.push_back(nbytes);
    offset = end;
  }
  std::string hs;
  try {
    hs = header.dump();
  } catch (const nlohmann::ordered_json::exception& ex) {
    PC_CHECK(false, where, ": a tensor name or metadata string is not valid UTF-8 (", escape_bytes(ex.what()), ")");
  }
  hs.append((8 - hs.size() % 8) % 8, ' ');

  AtomicFile f(path, who);
  f.put<uint64_t>(hs.size());
  f.write(hs.data(), hs.size());
  for (size_t k = 0; k < entries.size(); ++k) {
    if (sizes[k] == 0) continue;
    const uint64_t start = f.pos();
    entries[k].write(f);
    PC_CHECK(f.pos() - start == sizes[k], where, ": tensor ", quoted_text(entries[k].name), " produced ", f.pos() - start,
             " bytes, its header says ", sizes[k]);
  }
  f.commit();
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "[save_safetensors] " + path;
  std::vector<std::pair<const std::string*, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    PC_CHECK(t.defined(), where, ": tensor ", quoted_text(name), " is undefined");
    order.emplace_back(&name, t);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    int ra = write_rank(a.second.dtype()), rb = write_rank(b.second.dtype());
    return ra != rb ? ra < rb : *a.first < *b.first;
  });
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, t] : order) {
    // An init-capture: C++17 (clang) cannot capture a structured binding.
    entries.push_back({*name, t.dtype(), t.shape(), [t = t](AtomicFile& out) {
                         Tensor c = t.contiguous();
                         out.write(c.raw_data(), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
                       }});
  }
  write_safetensors(path, entries, metadata, "[save_safetensors]");
}

}  // namespace peftcpp
