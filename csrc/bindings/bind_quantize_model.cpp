// Whole-file GGUF quantization (llama-quantize without an importance
// matrix): quantize_gguf writes the file, gguf_tensor_types shows the plan.
#include "bindings/common.h"
#include "core/error.h"
#include "io/gguf.h"
#include "quant/ggml_types.h"
#include "quant/quantize_model.h"
#include "quant/type_rules.h"

namespace peftcpp {

namespace {

// File type given as a name ("Q4_K_M") or a llama_ftype id (15).
int to_ftype(const py::object& ftype) {
  if (py::isinstance<py::str>(ftype)) return ftype_from_name(ftype.cast<std::string>());
  if (py::isinstance<py::int_>(ftype) && !py::isinstance<py::bool_>(ftype)) {
    const int id = ftype.cast<int>();
    ftype_name(id);  // validates, listing the valid ids
    return id;
  }
  throw TypeError("[quantize] ftype must be a name such as 'Q4_K_M' or a llama_ftype id, got " +
                  std::string(py::str(py::type::of(ftype).attr("__name__"))));
}

}  // namespace

void init_quantize_model(py::module_& m) {
  m.def(
      "quantize_gguf",
      [](const std::string& in_path, const std::string& out_path, const py::object& ftype, int nthreads,
         const py::object& progress) {
        const int ft = to_ftype(ftype);
        QuantizeProgress cb;
        if (!progress.is_none()) {
          cb = [progress](size_t done, size_t total) {
            py::gil_scoped_acquire gil;
            progress(done, total);
          };
        }
        py::gil_scoped_release nogil_;
        quantize_gguf(in_path, out_path, ft, nthreads, cb);
      },
      py::arg("in_path"), py::arg("out_path"), py::arg("ftype") = "Q4_K_M", py::arg("nthreads") = 0,
      py::arg("progress") = py::none(),
      "Quantizes a model GGUF like `llama-quantize in out FTYPE` (no imatrix); the output is written "
      "atomically. progress(done_tensors, total_tensors) is called after each tensor.");

  m.def(
      "gguf_tensor_types",
      [](const std::string& in_path, const py::object& ftype) {
        const int ft = to_ftype(ftype);
        std::vector<TensorPlan> plan;
        {
          py::gil_scoped_release nogil_;
          plan = plan_gguf_quantization(read_gguf(in_path), ft);
        }
        py::list out;
        for (const auto& p : plan) out.append(py::make_tuple(p.name, ggml_type_traits(p.dst_type).name));
        return out;
      },
      py::arg("in_path"), py::arg("ftype") = "Q4_K_M",
      "[(tensor_name, type_name)] in output order: the plan quantize_gguf would follow");

  py::class_<LlamaFileType>(m, "LlamaFileType", "One llama.cpp file type (llama_ftype) quantize_gguf can write")
      .def_property_readonly("name", [](const LlamaFileType& f) { return std::string(f.name); },
                             "File type name: 'Q4_K_M', 'Q8_0', ...")
      .def_readonly("id", &LlamaFileType::id, "llama_ftype id, as stored in general.file_type")
      .def_property_readonly("default_type",
                             [](const LlamaFileType& f) { return std::string(ggml_type_traits(f.default_type).name); },
                             "ggml type name most tensors get (llama_ftype_get_default_type)")
      .def("__repr__", [](const LlamaFileType& f) {
        return "LlamaFileType(" + std::string(f.name) + ", id=" + std::to_string(f.id) + ")";
      }, "LlamaFileType(NAME, id=...)");
  m.def("llama_file_types", &llama_file_types, "Every file type quantize_gguf can write, in llama_ftype id order");
  m.def(
      "gguf_file_type_id", [](const py::object& ftype) { return to_ftype(ftype); }, py::arg("ftype"),
      "llama_ftype id of a file type name (validated)");
}

}  // namespace peftcpp
