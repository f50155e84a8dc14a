// GGUF v3 writer: header, metadata in insertion order, tensor infos with
// offsets = running sum of alignment-padded sizes, zero padding, then each
// tensor's bytes as its producer fills them, through an AtomicFile (the
// target appears only complete).
#include "io/gguf_writer.h"


#include <cstring>

#include "core/checked_math.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "quant/ggml_types.h"

namespace peftcpp {

namespace {

constexpr size_t kMaxName = 64;  // GGML_MAX_NAME, including the NUL

uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// GGUF strings: u64 length, then the bytes.
void put_str(AtomicFile& o, const std::string& s) {
  o.put<uint64_t>(s.size());
  o.write(s.data(), s.size());
}

void write_value(AtomicFile& o, const GGUFValue& v, const std::string& key);

void write_array_body(AtomicFile& o, const GGUFValue& v, const std::string& key) {
  o.put<int32_t>(static_cast<int32_t>(v.elem_type));
  o.put<uint64_t>(v.count);
  const size_t es = gguf_scalar_size(v.elem_type);
  if (es) {
    const uint64_t need = checked_mul(v.count, es, "[GGUFWriter] key ", quoted_text(key), ": array of ", v.count, " ",
                                      gguf_type_name(v.elem_type));
    PC_CHECK(v.numbers.size() == need, "[GGUFWriter] key ", quoted_text(key), ": array holds ", v.numbers.size(),
             " bytes but count ", v.count, " of ", gguf_type_name(v.elem_type), " needs ", need);
    o.write(v.numbers.data(), v.numbers.size());
  } else if (v.elem_type == GGUFType::STRING) {
    PC_CHECK(v.strings.size() == v.count, "[GGUFWriter] key '", key, "': count ", v.count, " but ",
             v.strings.size(), " strings");
    for (const auto& s : v.strings) put_str(o, s);
  } else if (v.elem_type == GGUFType::ARRAY) {
    PC_CHECK(v.arrays.size() == v.count, "[GGUFWriter] key '", key, "': count ", v.count, " but ", v.arrays.size(),
             " arrays");
    for (const auto& a : v.arrays) {
      PC_CHECK(a.is_array(), "[GGUFWriter] key '", key, "': element of an array of arrays is not an array");
      write_array_body(o, a, key);
    }
  } else {
    PC_CHECK(false, "[GGUFWriter] key '", key, "': unknown array element type ", static_cast<int>(v.elem_type));
  }
}

void write_value(AtomicFile& o, const GGUFValue& v, const std::string& key) {
  o.put<int32_t>(static_cast<int32_t>(v.type));
  switch (v.type) {
    case GGUFType::UINT8: case GGUFType::BOOL: o.put<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GGUFType::UINT16: o.put<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GGUFType::UINT32: o.put<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GGUFType::UINT64: o.put<uint64_t>(v.u); break;
    case GGUFType::INT8: o.put<int8_t>(static_cast<int8_t>(v.i)); break;
    case GGUFType::INT16: o.put<int16_t>(static_cast<int16_t>(v.i)); break;
    case GGUFType::INT32: o.put<int32_t>(static_cast<int32_t>(v.i)); break;
    case GGUFType::INT64: o.put<int64_t>(v.i); break;
    case GGUFType::FLOAT32: o.put<float>(static_cast<float>(v.f)); break;
    case GGUFType::FLOAT64: o.put<double>(v.f); break;
    case GGUFType::STRING: put_str(o, v.str); break;
    case GGUFType::ARRAY: write_array_body(o, v, key); break;
  }
}

void check_value(const GGUFValue& v, const std::string& key) {
  const int t = static_cast<int>(v.type);
  PC_CHECK(t >= 0 && t <= 12, "[GGUFWriter] key '", key, "': unknown value type ", t);
  if (v.is_array()) {
    const int et = static_cast<int>(v.elem_type);
    PC_CHECK(et >= 0 && et <= 12, "[GGUFWriter] key '", key, "': unknown array element type ", et);
  }
}

}  // namespace

GGUFWriter::GGUFWriter(std::string path, uint32_t alignment) : path_(std::move(path)), alignment_(alignment) {
  PC_CHECK(alignment_ > 0 && (alignment_ & (alignment_ - 1)) == 0, "[GGUFWriter] '", path_,
           "': alignment must be a power of two, got ", alignment_);
  PC_CHECK(!path_.empty(), "[GGUFWriter] empty output path");
}

void GGUFWriter::set(const std::string& key, GGUFValue value) {
  PC_CHECK(!key.empty(), "[GGUFWriter] '", path_, "': metadata keys must be non-empty");
  check_value(value, key);
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GGUFWriter::remove(const std::string& key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it) {
    if (it->first == key) {
      kv_.erase(it);
      return;
    }
  }
}

const GGUFValue* GGUFWriter::find(const std::string& key) const {
  for (const auto& kv : kv_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

void GGUFWriter::add_tensor(const std::string& name, int type_id, std::vector<int64_t> ne, Producer produce) {
  PC_CHECK(!name.empty(), "[GGUFWriter] '", path_, "': tensor names must be non-empty");
  PC_CHECK(name.size() < kMaxName, "[GGUFWriter] tensor '", name, "': name is ", name.size(),
           " bytes; GGUF allows at most ", kMaxName - 1);
  for (const auto& t : tensors_) PC_CHECK(t.name != name, "[GGUFWriter] tensor '", name, "' added twice");
  PC_CHECK(ne.size() >= 1 && ne.size() <= 4, "[GGUFWriter] tensor '", name, "': ", ne.size(),
           " dims; GGUF allows 1 to 4");
  const GGMLTypeTraits& tt = ggml_type_traits(type_id);
  PC_CHECK(tt.known() && tt.block_size > 0 && tt.type_size > 0, "[GGUFWriter] tensor '", name,
           "': unknown ggml type id ", type_id);
  const std::string what = "[GGUFWriter] " + path_ + ": tensor " + quoted_text(name);
  const int64_t numel = checked_numel(ne, what);
  PC_CHECK(ne[0] % tt.block_size == 0, what, ": row length ne[0]=", ne[0], " is not a multiple of the ", tt.name,
           " block size ", tt.block_size);
  PC_CHECK(static_cast<bool>(produce), what, ": no data producer");
  const uint64_t nbytes = checked_mul(static_cast<uint64_t>(numel) / static_cast<uint64_t>(tt.block_size),
                                     static_cast<uint64_t>(tt.type_size), what, " (", tt.name, ") byte size");
  // The padded running offset of every tensor must fit too (checked here,
  // before anything is written).
  data_bytes_ = checked_add(data_bytes_, checked_pad(nbytes, alignment_, what, " padded size"), what, " data offset");
  tensors_.push_back(Entry{name, type_id, std::move(ne), nbytes, std::move(produce)});
}

void GGUFWriter::write(const std::function<void(size_t, size_t)>& progress) {
  // The alignment key, when needed, goes first like any other metadata: set
  // here so a caller's own value is overridden by the writer's real one.
  if (alignment_ != 32) {
    set("general.alignment", u32(alignment_));
  } else if (const GGUFValue* a = find("general.alignment")) {
    PC_CHECK(a->type == GGUFType::UINT32 && a->u == 32, "[GGUFWriter] '", path_,
             "': general.alignment metadata disagrees with the writer's alignment 32");
  }
  AtomicFile o(path_, "[GGUFWriter]");
  o.write("GGUF", 4);
  o.put<uint32_t>(3);
  o.put<int64_t>(static_cast<int64_t>(tensors_.size()));
  o.put<int64_t>(static_cast<int64_t>(kv_.size()));
  for (const auto& [k, v] : kv_) {
    put_str(o, k);
    write_value(o, v, k);
  }
  uint64_t offset = 0;  // no overflow: add_tensor checked the running sum
  for (const auto& t : tensors_) {
    put_str(o, t.name);
    o.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) o.put<int64_t>(d);
    o.put<int32_t>(t.type_id);
    o.put<uint64_t>(offset);
    offset += pad_to(t.nbytes, alignment_);
  }
  o.zeros(pad_to(o.pos(), alignment_) - o.pos());
  std::vector<uint8_t> buf;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const Entry& t = tensors_[k];
    buf.assign(t.nbytes, 0);
    t.produce(buf.data(), t.nbytes);
    o.write(buf.data(), buf.size());
    o.zeros(pad_to(t.nbytes, alignment_) - t.nbytes);
    if (progress) progress(k + 1, tensors_.size());
  }
  o.commit();
}

GGUFValue GGUFWriter::u32(uint32_t v) {
  GGUFValue g;
  g.type = GGUFType::UINT32;
  g.u = v;
  return g;
}
GGUFValue GGUFWriter::i32(int32_t v) {
  GGUFValue g;
  g.type = GGUFType::INT32;
  g.i = v;
  return g;
}
GGUFValue GGUFWriter::f32(float v) {
  GGUFValue g;
  g.type = GGUFType::FLOAT32;
  g.f = v;
  return g;
}
GGUFValue GGUFWriter::boolean(bool v) {
  GGUFValue g;
  g.type = GGUFType::BOOL;
  g.u = v ? 1 : 0;
  return g;
}
GGUFValue GGUFWriter::string(std::string v) {
  GGUFValue g;
  g.type = GGUFType::STRING;
  g.str = std::move(v);
  return g;
}
GGUFValue GGUFWriter::string_array(std::vector<std::string> v) {
  GGUFValue g;
  g.type = GGUFType::ARRAY;
  g.elem_type = GGUFType::STRING;
  g.count = v.size();
  g.strings = std::move(v);
  return g;
}

namespace {
template <class T>
GGUFValue numeric_array(GGUFType et, const std::vector<T>& v) {
  GGUFValue g;
  g.type = GGUFType::ARRAY;
  g.elem_type = et;
  g.count = v.size();
  g.numbers.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(g.numbers.data(), v.data(), g.numbers.size());
  return g;
}
}  // namespace

GGUFValue GGUFWriter::i32_array(const std::vector<int32_t>& v) { return numeric_array(GGUFType::INT32, v); }
GGUFValue GGUFWriter::u32_array(const std::vector<uint32_t>& v) { return numeric_array(GGUFType::UINT32, v); }
GGUFValue GGUFWriter::f32_array(const std::vector<float>& v) { return numeric_array(GGUFType::FLOAT32, v); }

}  // namespace peftcpp
