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
}

}  // namespace peftcpp
