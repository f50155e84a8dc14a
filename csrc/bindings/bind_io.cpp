// safetensors files. Loaded tensors are read-only views of one shared mmap.
#include <cerrno>

#include "bindings/common.h"
#include "io/safetensors.h"

namespace peftcpp {

void init_io(py::module_& m) {
  // FileError -> OSError(errno, message): Python picks the subclass
  // (FileNotFoundError, IsADirectoryError, PermissionError, ...) from errno.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FileError& e) {
      py::tuple args = py::make_tuple(e.err, e.what());
      PyErr_SetObject(PyExc_OSError, args.ptr());
    }
  });

  m.def(
      "load_safetensors",
      [](const std::string& path) {
        SafetensorsFile f;
        {
          py::gil_scoped_release nogil_;
          f = load_safetensors(path);
        }
        py::dict tensors, metadata;
        for (auto& [name, t] : f.tensors) tensors[py::str(name)] = py::cast(t);
        for (auto& [k, v] : f.metadata) metadata[py::str(k)] = py::str(v);
        return py::make_tuple(tensors, metadata);
      },
      py::arg("path"),
      "(tensors, metadata) of a safetensors file; the tensors share one read-only mmap of it");

  m.def(
      "save_safetensors",
      [](const std::string& path, const std::map<std::string, Tensor>& tensors,
         std::optional<std::map<std::string, std::string>> metadata) {
        py::gil_scoped_release nogil_;
        save_safetensors(path, tensors, metadata ? *metadata : std::map<std::string, std::string>{});
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = py::none(),
      "Writes a safetensors file atomically (temporary file, fsync, rename)");

  m.def(
      "write_safetensors",
      [](const std::string& path, const std::vector<std::tuple<std::string, std::string, Shape>>& plan,
         py::function produce, std::optional<std::map<std::string, std::string>> metadata) {
        std::vector<SafetensorsEntry> entries;
        for (size_t i = 0; i < plan.size(); ++i) {
          const auto& [name, dts, shape] = plan[i];
          DType dt;
          PC_CHECK(safetensors_dtype_from_name(dts, &dt), "[write_safetensors] ", path, ": tensor '", name,
                   "' has dtype \"", dts, "\" (F32, F16, BF16, I32 or I64)");
          // Python runs only inside produce (GIL taken there); the file is written without it.
          entries.push_back({name, dt, shape, [produce, i, name, dt](AtomicFile& out) {
                               py::gil_scoped_acquire g;
                               py::array arr = py::array::ensure(produce(i), py::array::c_style);
                               PC_CHECK(arr, "[write_safetensors] tensor '", name, "': produce(", i,
                                        ") did not return an array");
                               PC_CHECK(static_cast<size_t>(arr.itemsize()) == dtype_size(dt),
                                        "[write_safetensors] tensor '", name, "': ", arr.itemsize(),
                                        "-byte elements, expected ", dtype_size(dt));
                               out.write(arr.data(), static_cast<size_t>(arr.nbytes()));
                             }});
        }
        py::gil_scoped_release nogil_;
        write_safetensors(path, entries, metadata ? *metadata : std::map<std::string, std::string>{});
      },
      py::arg("path"), py::arg("plan"), py::arg("produce"), py::arg("metadata") = py::none(),
      "Streams a safetensors file atomically: plan is [(name, dtype, shape)] in file order (dtype 'F32', "
      "'F16', 'BF16', 'I32' or 'I64'); produce(i) returns the numpy array of entry i (bfloat16 as uint16 bits) "
      "only when the writer reaches it, so peak memory is one tensor. A wrong byte count is a ValueError.");
}

}  // namespace peftcpp
