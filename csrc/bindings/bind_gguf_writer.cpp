// GGUF writing from Python: metadata with explicit GGUF types, tensors from
// numpy arrays converted to their ggml type (F32/F16/BF16 or a quantized
// type) in C++ while the file is written, with the GIL released.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "bindings/common.h"
#include "core/checked_math.h"
#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf_writer.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"

namespace peftcpp {

namespace {

GGUFType type_from_name(const std::string& s, const std::string& key) {
  for (int k = 0; k <= static_cast<int>(GGUFType::FLOAT64); ++k)
    if (s == gguf_type_name(static_cast<GGUFType>(k))) return static_cast<GGUFType>(k);
  PC_CHECK(false, "[GGUFWriter.set] key '", key, "': unknown GGUF type '", s,
           "' (UINT8..FLOAT64, STRING, BOOL, or ARRAY[<type>])");
  return GGUFType::UINT8;
}

template <class T>
void push(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

// Appends one scalar of type t to a numeric array's bytes.
void push_scalar(std::vector<uint8_t>& out, GGUFType t, const py::handle& h, const std::string& key) {
  switch (t) {
    case GGUFType::UINT8: push<uint8_t>(out, h.cast<uint8_t>()); break;
    case GGUFType::INT8: push<int8_t>(out, h.cast<int8_t>()); break;
    case GGUFType::UINT16: push<uint16_t>(out, h.cast<uint16_t>()); break;
    case GGUFType::INT16: push<int16_t>(out, h.cast<int16_t>()); break;
    case GGUFType::UINT32: push<uint32_t>(out, h.cast<uint32_t>()); break;
    case GGUFType::INT32: push<int32_t>(out, h.cast<int32_t>()); break;
    case GGUFType::UINT64: push<uint64_t>(out, h.cast<uint64_t>()); break;
    case GGUFType::INT64: push<int64_t>(out, h.cast<int64_t>()); break;
    case GGUFType::FLOAT32: push<float>(out, h.cast<float>()); break;
    case GGUFType::FLOAT64: push<double>(out, h.cast<double>()); break;
    case GGUFType::BOOL: push<uint8_t>(out, h.cast<bool>() ? 1 : 0); break;
    default: PC_CHECK(false, "[GGUFWriter.set] key '", key, "': ", gguf_type_name(t), " is not a numeric type");
  }
}

GGUFValue scalar(GGUFType t, const py::handle& h, const std::string& key) {
  GGUFValue v;
  v.type = t;
  switch (t) {
    case GGUFType::UINT8: v.u = h.cast<uint8_t>(); break;
    case GGUFType::UINT16: v.u = h.cast<uint16_t>(); break;
    case GGUFType::UINT32: v.u = h.cast<uint32_t>(); break;
    case GGUFType::UINT64: v.u = h.cast<uint64_t>(); break;
    case GGUFType::INT8: v.i = h.cast<int8_t>(); break;
    case GGUFType::INT16: v.i = h.cast<int16_t>(); break;
    case GGUFType::INT32: v.i = h.cast<int32_t>(); break;
    case GGUFType::INT64: v.i = h.cast<int64_t>(); break;
    case GGUFType::FLOAT32: case GGUFType::FLOAT64: v.f = h.cast<double>(); break;
    case GGUFType::BOOL: v.u = h.cast<bool>() ? 1 : 0; break;
    case GGUFType::STRING: v.str = h.cast<std::string>(); break;
    default: PC_CHECK(false, "[GGUFWriter.set] key '", key, "': bad scalar type");
  }
  return v;
}

// "UINT32", "ARRAY[STRING]", "ARRAY[ARRAY[INT32]]" -> value.
GGUFValue to_value(const py::handle& h, const std::string& type, const std::string& key) {
  if (type.rfind("ARRAY[", 0) == 0 && type.back() == ']') {
    const std::string inner = type.substr(6, type.size() - 7);
    GGUFValue v;
    v.type = GGUFType::ARRAY;
    if (inner.rfind("ARRAY[", 0) == 0) {
      v.elem_type = GGUFType::ARRAY;
      for (auto item : h) v.arrays.push_back(to_value(item, inner, key));
      v.count = v.arrays.size();
      return v;
    }
    v.elem_type = type_from_name(inner, key);
    PC_CHECK(v.elem_type != GGUFType::ARRAY, "[GGUFWriter.set] key '", key, "': write nested arrays as ARRAY[ARRAY[T]]");
    if (v.elem_type == GGUFType::STRING) {
      for (auto item : h) v.strings.push_back(item.cast<std::string>());
      v.count = v.strings.size();
      return v;
    }
    for (auto item : h) {
      push_scalar(v.numbers, v.elem_type, item, key);
      ++v.count;
    }
    return v;
  }
  const GGUFType t = type_from_name(type, key);
  PC_CHECK(t != GGUFType::ARRAY, "[GGUFWriter.set] key '", key, "': give arrays as ARRAY[<element type>]");
  try {
    return scalar(t, h, key);
  } catch (const py::cast_error&) {
    throw py::type_error("[GGUFWriter.set] key '" + key + "': cannot store " +
                         py::repr(h).cast<std::string>() + " as " + type);
  }
}

enum class Src { F32, F16, BF16, RAW };

int type_id_of(const py::handle& t) {
  if (py::isinstance<py::int_>(t)) return t.cast<int>();
  const std::string s = py::str(t).cast<std::string>();
  std::string up;
  for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const int id = ggml_type_from_name(up.c_str());
  PC_CHECK(id >= 0, "[GGUFWriter.add_tensor] unknown ggml type '", s, "'");
  return id;
}

struct PyWriter {
  GGUFWriter w;
  explicit PyWriter(const std::string& path, uint32_t alignment) : w(path, alignment) {}

  void add_tensor(const std::string& name, const py::handle& type, py::array source, std::optional<std::vector<int64_t>> shape,
                  bool bf16) {
    const int tid = type_id_of(type);
    const GGMLTypeTraits& tt = ggml_type_traits(tid);
    PC_CHECK(tt.known(), "[GGUFWriter.add_tensor] tensor '", name, "': unknown ggml type id ", tid);
    PC_CHECK(source.flags() & py::array::c_style, "[GGUFWriter.add_tensor] tensor '", name,
             "': source array must be C-contiguous");
    Src src;
    const py::dtype dt = source.dtype();
    if (dt.is(py::dtype::of<float>())) {
      src = Src::F32;
    } else if (dt.kind() == 'f' && dt.itemsize() == 2) {
      src = Src::F16;
    } else if (dt.is(py::dtype::of<uint16_t>()) && bf16) {
      src = Src::BF16;
    } else if (dt.is(py::dtype::of<uint8_t>())) {
      src = Src::RAW;
    } else {
      throw TypeError("[GGUFWriter.add_tensor] tensor '" + name + "': source dtype " +
                      py::str(static_cast<py::object>(dt)).cast<std::string>() +
                      " not supported (float32, float16, uint16 with bf16=True, or uint8 raw bytes)");
    }
    PC_CHECK(!(bf16 && src != Src::BF16), "[GGUFWriter.add_tensor] tensor '", name,
             "': bf16=True needs a uint16 source array");
    std::vector<int64_t> rm;  // row-major logical shape
    if (shape) {
      rm = *shape;
    } else {
      PC_CHECK(src != Src::RAW, "[GGUFWriter.add_tensor] tensor '", name, "': raw uint8 sources need shape=");
      for (ssize_t k = 0; k < source.ndim(); ++k) rm.push_back(source.shape(k));
    }
    PC_CHECK(!rm.empty() && rm.size() <= 4, "[GGUFWriter.add_tensor] tensor '", name, "': ", rm.size(),
             " dims; GGUF allows 1 to 4");
    const int64_t numel = checked_numel(rm, "[GGUFWriter.add_tensor] tensor ", quoted_text(name));
    std::vector<int64_t> ne(rm.rbegin(), rm.rend());
    const int64_t row = ne[0];
    PC_CHECK(row % tt.block_size == 0, "[GGUFWriter.add_tensor] tensor '", name, "': row length ", row,
             " is not a multiple of the ", tt.name, " block size ", tt.block_size);
    const int64_t nbytes = static_cast<int64_t>(checked_mul(static_cast<uint64_t>(numel / tt.block_size),
                                                            static_cast<uint64_t>(tt.type_size),
                                                            "[GGUFWriter.add_tensor] tensor ", quoted_text(name), " (",
                                                            tt.name, ") byte size"));
    if (src == Src::RAW) {
      PC_CHECK(static_cast<int64_t>(source.nbytes()) == nbytes, "[GGUFWriter.add_tensor] tensor '", name,
               "': raw source holds ", source.nbytes(), " bytes but ", tt.name, " shape needs ", nbytes);
    } else {
      PC_CHECK(static_cast<int64_t>(source.size()) == numel, "[GGUFWriter.add_tensor] tensor '", name,
               "': source has ", source.size(), " elements but the shape needs ", numel);
      PC_CHECK(can_quantize(tid), "[GGUFWriter.add_tensor] tensor '", name,
               "': cannot convert to ggml type ", tt.name);
    }
    const void* data = source.data();
    const int64_t nrows = row ? numel / row : 0;
    // The lambda owns a reference to the array; it runs without the GIL
    // (only the raw pointer is touched) and is released with the writer.
    auto keep = std::make_shared<py::object>(source);
    w.add_tensor(name, tid, ne, [keep, data, src, tid, nrows, row](uint8_t* dst, size_t n) {
      if (src == Src::RAW) {
        std::memcpy(dst, data, n);
        return;
      }
      if ((src == Src::F32 && tid == GGML_TYPE_F32) || (src == Src::F16 && tid == GGML_TYPE_F16) ||
          (src == Src::BF16 && tid == GGML_TYPE_BF16)) {
        std::memcpy(dst, data, n);
        return;
      }
      // Widen a chunk of rows to float32, then convert/quantize it.
      const size_t esz = src == Src::F32 ? 4 : 2;
      const size_t out_row = n / static_cast<size_t>(nrows ? nrows : 1);
      const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(row, 1));
      std::vector<float> tmp;
      for (int64_t r0 = 0; r0 < nrows; r0 += chunk) {
        const int64_t nr = std::min(chunk, nrows - r0);
        const size_t cnt = static_cast<size_t>(nr * row);
        const uint8_t* s = static_cast<const uint8_t*>(data) + static_cast<size_t>(r0 * row) * esz;
        const float* f;
        if (src == Src::F32) {
          f = reinterpret_cast<const float*>(s);
        } else {
          tmp.resize(cnt);
          convert_to_f32(s, src == Src::F16 ? DType::F16 : DType::BF16, tmp.data(), cnt);
          f = tmp.data();
        }
        uint8_t* d = dst + static_cast<size_t>(r0) * out_row;
        if (tid == GGML_TYPE_F32) {
          std::memcpy(d, f, cnt * 4);
        } else if (tid == GGML_TYPE_F16) {
          convert_from_f32(f, d, DType::F16, cnt);
        } else if (tid == GGML_TYPE_BF16) {
          convert_from_f32(f, d, DType::BF16, cnt);
        } else {
          quantize_rows(tid, f, d, nr, row, 0);
        }
      }
    });
  }
};

}  // namespace

void init_gguf_writer(py::module_& m) {
  py::class_<PyWriter>(m, "GGUFWriter",
                       "Writes a GGUF v3 file: metadata (set) and tensors (add_tensor) are collected, then write() "
                       "converts and streams them to a temporary file renamed into place.")
      .def(py::init([](const std::string& path, uint32_t alignment) { return new PyWriter(path, alignment); }),
           py::arg("path"), py::arg("alignment") = 32,
           "A writer for path; nothing is written before write(). alignment: a power of two")
      .def(
          "set",
          [](PyWriter& self, const std::string& key, py::handle value, const std::string& type) {
            self.w.set(key, to_value(value, type, key));
          },
          py::arg("key"), py::arg("value"), py::arg("type"),
          "Sets key to value stored as GGUF type ('UINT32', 'FLOAT32', 'BOOL', 'STRING', 'ARRAY[INT32]', ...)")
      .def("remove", [](PyWriter& self, const std::string& key) { self.w.remove(key); }, py::arg("key"),
           "Removes a metadata key (if set)")
      .def("__contains__", [](const PyWriter& self, const std::string& key) { return self.w.find(key) != nullptr; },
           py::arg("key"), "Whether a metadata key is set")
      .def_property_readonly("n_tensors", [](const PyWriter& self) { return self.w.n_tensors(); },
                             "Number of tensors added so far")
      .def("add_tensor", &PyWriter::add_tensor, py::arg("name"), py::arg("type"), py::arg("source"),
           py::arg("shape") = py::none(), py::arg("bf16") = false,
           "Adds a tensor of ggml type `type` (name or id) from a C-contiguous numpy array: float32, float16, "
           "uint16 bfloat16 bits (bf16=True), or uint8 bytes already in the target type (then shape= is the "
           "row-major shape). Conversion happens during write().")
      .def(
          "write",
          [](PyWriter& self, py::object progress) {
            std::function<void(size_t, size_t)> cb;
            if (!progress.is_none()) {
              cb = [progress](size_t done, size_t total) {
                py::gil_scoped_acquire g;
                progress(done, total);
              };
            }
            py::gil_scoped_release nogil_;
            self.w.write(cb);
          },
          py::arg("progress") = py::none(), "Writes the file atomically; progress(done, total) after each tensor");
}

}  // namespace peftcpp
