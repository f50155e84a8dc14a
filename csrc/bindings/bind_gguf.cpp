// GGUF files (llama.cpp's format): metadata as Python values, tensors as
// peftcpp tensors (zero-copy views of the mmap for F32/F16/BF16/I32/I64,
// dequantized float32 copies for block-quantized types), raw bytes as
// read-only numpy views.
#include <cstring>

#include "bindings/common.h"
#include "core/error.h"
#include "io/gguf.h"
#include "quant/dequant.h"
#include "quant/ggml_types.h"

namespace peftcpp {

namespace {

// Strings are UTF-8 in well-formed files; anything else comes back as bytes
// rather than failing or being altered.
py::object str_value(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (o) return py::reinterpret_steal<py::object>(o);
  PyErr_Clear();
  return py::bytes(s);
}

// Keys and names must be str: undecodable bytes are kept as surrogates.
py::str key_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::object scalar_value(GGUFType t, uint64_t u, int64_t i, double f) {
  switch (t) {
    case GGUFType::BOOL: return py::bool_(u != 0);
    case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64: return py::int_(u);
    case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64: return py::int_(i);
    case GGUFType::FLOAT32: case GGUFType::FLOAT64: return py::float_(f);
    default: return py::none();
  }
}

py::object value_to_py(const GGUFValue& v) {
  if (v.type == GGUFType::STRING) return str_value(v.str);
  if (!v.is_array()) return scalar_value(v.type, v.u, v.i, v.f);
  py::list out(static_cast<size_t>(v.count));
  for (uint64_t k = 0; k < v.count; ++k) {
    py::object item;
    switch (v.elem_type) {
      case GGUFType::STRING: item = str_value(v.strings[k]); break;
      case GGUFType::ARRAY: item = value_to_py(v.arrays[k]); break;
      case GGUFType::BOOL: case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32:
      case GGUFType::UINT64: item = scalar_value(v.elem_type, v.uint_at(k), 0, 0); break;
      case GGUFType::FLOAT32: case GGUFType::FLOAT64: item = py::float_(v.float_at(k)); break;
      default: item = py::int_(v.int_at(k)); break;
    }
    out[k] = std::move(item);
  }
  return out;
}

// "UINT32", "STRING", "ARRAY[FLOAT32]", "ARRAY[ARRAY[INT32]]".
std::string type_str(const GGUFValue& v) {
  if (!v.is_array()) return gguf_type_name(v.type);
  if (v.elem_type == GGUFType::ARRAY)
    return "ARRAY[" + (v.arrays.empty() ? std::string("ARRAY") : type_str(v.arrays[0])) + "]";
  return std::string("ARRAY[") + gguf_type_name(v.elem_type) + "]";
}

py::dict metadata_dict(const GGUFFile& f) {
  py::dict d;
  for (const auto& [k, v] : f.metadata) d[key_str(k)] = value_to_py(v);
  return d;
}

py::list tensor_info_list(const GGUFFile& f) {
  py::list l;
  for (const auto& ti : f.tensors) {
    py::dict d;
    d["name"] = key_str(ti.name);
    d["type"] = ti.type_name;
    d["type_id"] = ti.type;
    d["shape"] = py::cast(ti.shape);
    d["ne"] = py::cast(ti.ne);
    d["offset"] = ti.offset;
    d["nbytes"] = ti.nbytes;
    l.append(d);
  }
  return l;
}

// A handle: the parsed file plus its Python-side metadata, built once.
struct PyGGUF {
  std::shared_ptr<GGUFFile> f;
  py::object metadata_cache;

  size_t index(const std::string& name) const {
    int64_t k = f->tensor_index(name);
    if (k < 0) throw py::key_error("[gguf] " + f->path + ": no tensor named '" + name + "'");
    return static_cast<size_t>(k);
  }
  Tensor tensor(const std::string& name, bool dequantize) const {
    size_t k = index(name);
    py::gil_scoped_release nogil_;
    return gguf_tensor(*f, k, dequantize);
  }
  py::array raw(const std::string& name) const {
    const size_t k = index(name);
    const auto& ti = f->tensors[k];
    const uint8_t* p = ti.nbytes ? f->tensor_data(k) : nullptr;
    auto* keep = new std::shared_ptr<void>(f->mapping);
    py::capsule base(keep, [](void* q) { delete static_cast<std::shared_ptr<void>*>(q); });
    static uint8_t empty_byte = 0;
    py::array a(py::dtype::of<uint8_t>(), {static_cast<ssize_t>(ti.nbytes)}, {static_cast<ssize_t>(1)},
                p ? p : &empty_byte, base);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
  }
};

std::shared_ptr<GGUFFile> open_file(const std::string& path) {
  py::gil_scoped_release nogil_;
  return std::make_shared<GGUFFile>(read_gguf(path));
}

}  // namespace

void init_gguf(py::module_& m) {
  py::class_<PyGGUF>(m, "GGUFFile",
                     "A GGUF file, mapped read-only and validated on open. Tensors of type F32/F16/BF16/I32/I64 "
                     "are zero-copy views of the mapping; quantized ones are dequantized to float32.")
      .def(py::init([](const std::string& path) {
             PyGGUF h;
             h.f = open_file(path);
             return h;
           }),
           py::arg("path"), "Maps and validates the file; malformed files raise ValueError naming the key or tensor")
      .def_property_readonly("path", [](const PyGGUF& h) { return h.f->path; }, "The path given to the constructor")
      .def_property_readonly("version", [](const PyGGUF& h) { return h.f->version; }, "GGUF version (2 or 3)")
      .def_property_readonly("alignment", [](const PyGGUF& h) { return h.f->alignment; },
                             "Tensor data alignment in bytes (general.alignment, default 32)")
      .def_property_readonly("data_offset", [](const PyGGUF& h) { return h.f->data_offset; },
                             "File offset of the tensor data section")
      .def_property_readonly("metadata",
                             [](PyGGUF& h) {
                               if (!h.metadata_cache) h.metadata_cache = metadata_dict(*h.f);
                               return h.metadata_cache;
                             },
                             "dict key -> value (int, float, bool, str, or nested lists), in file order")
      .def_property_readonly("metadata_types",
                             [](const PyGGUF& h) {
                               py::dict d;
                               for (const auto& [k, v] : h.f->metadata) d[key_str(k)] = type_str(v);
                               return d;
                             },
                             "dict key -> GGUF type name ('UINT32', 'ARRAY[STRING]', ...)")
      .def_property_readonly("tensor_infos", [](const PyGGUF& h) { return tensor_info_list(*h.f); },
                             "list of dicts: name, type, type_id, shape (row-major), ne (as stored), offset, nbytes")
      .def_property_readonly("tensor_names",
                             [](const PyGGUF& h) {
                               py::list l;
                               for (const auto& ti : h.f->tensors) l.append(key_str(ti.name));
                               return l;
                             },
                             "Tensor names in file order")
      .def("__len__", [](const PyGGUF& h) { return h.f->tensors.size(); }, "Number of tensors")
      .def("__contains__", [](const PyGGUF& h, const std::string& n) { return h.f->tensor_index(n) >= 0; },
           py::arg("name"), "Whether the file has a tensor of this name")
      .def("tensor", &PyGGUF::tensor, py::arg("name"), py::arg("dequantize") = true,
           "The tensor (row-major shape): a read-only zero-copy view for F32/F16/BF16/I32/I64, a dequantized "
           "float32 copy for quantized types")
      .def("raw", &PyGGUF::raw, py::arg("name"), "The tensor's bytes in the file: a read-only numpy uint8 view");

  m.def(
      "gguf_read",
      [](const std::string& path) {
        auto f = open_file(path);
        py::dict d;
        d["version"] = f->version;
        d["alignment"] = f->alignment;
        d["metadata"] = metadata_dict(*f);
        d["tensors"] = tensor_info_list(*f);
        return d;
      },
      py::arg("path"), "{'version', 'alignment', 'metadata', 'tensors'} of a GGUF file");

  m.def(
      "gguf_tensor",
      [](py::object src, const std::string& name, bool dequantize) {
        if (py::isinstance<PyGGUF>(src)) return src.cast<const PyGGUF&>().tensor(name, dequantize);
        PyGGUF h;
        h.f = open_file(py::str(src).cast<std::string>());
        return h.tensor(name, dequantize);
      },
      py::arg("path_or_file"), py::arg("name"), py::arg("dequantize") = true,
      "One tensor of a GGUF file (a path or a GGUFFile)");

  m.def(
      "gguf_dequantize",
      [](py::array_t<uint8_t, py::array::c_style> raw, const std::string& type) {
        const int id = ggml_type_from_name(type.c_str());
        PC_CHECK(id >= 0, "[gguf_dequantize] unknown ggml type '", type, "'");
        const GGMLTypeTraits& tt = ggml_type_traits(id);
        const int64_t n = static_cast<int64_t>(raw.size());
        PC_CHECK(n % tt.type_size == 0, "[gguf_dequantize] ", n, " bytes is not a whole number of ", type,
                 " blocks (", tt.type_size, " bytes each)");
        const int64_t nb = n / tt.type_size;
        Tensor out = Tensor::empty({nb * tt.block_size}, DType::F32);
        const uint8_t* p = raw.data();
        {
          py::gil_scoped_release nogil_;
          dequantize_blocks(id, p, out.data<float>(), nb);
        }
        return out;
      },
      py::arg("raw"), py::arg("type"), "Dequantizes whole blocks of a ggml type ('Q4_K', ...) to a flat float32 tensor");

  m.def(
      "gguf_type_traits",
      []() {
        py::dict d;
        for (const GGMLTypeTraits* t : ggml_types())
          d[py::str(t->name)] = py::make_tuple(t->id, t->block_size, t->type_size, t->dequantizable());
        return d;
      },
      "name -> (type id, block size, bytes per block, dequantizable) for every known ggml type (a view of ggml_types())");
}

}  // namespace peftcpp
