// The Tensor class, numpy interop (zero-copy both ways where the dtype
// allows), grad mode, RNG, threads, memory statistics and checkpointing.
#include <omp.h>

#include "bindings/common.h"
#include "core/autograd.h"
#include "core/generator.h"
#include "core/parallel.h"

namespace peftcpp {

namespace {

// A Python object that may be released from a thread without the GIL.
std::shared_ptr<void> hold_pyobject(py::object obj) {
  auto* raw = obj.release().ptr();
  return std::shared_ptr<void>(raw, [](void* p) {
    py::gil_scoped_acquire gil;
    Py_DECREF(static_cast<PyObject*>(p));
  });
}

DType dtype_from_numpy(const py::dtype& dt) {
  if (dt.is(py::dtype::of<float>())) return DType::F32;
  if (dt.kind() == 'f' && dt.itemsize() == 2) return DType::F16;
  if (dt.kind() == 'i' && dt.itemsize() == 4) return DType::I32;
  if (dt.kind() == 'i' && dt.itemsize() == 8) return DType::I64;
  if (dt.kind() == 'u' && dt.itemsize() == 2) return DType::BF16;  // raw bfloat16 bits
  if (dt.kind() == 'b') return DType::BOOL;
  throw TypeError("[from_numpy] unsupported numpy dtype " + std::string(py::str(dt)) +
                  " (use float32, float16, int32, int64, bool, or uint16 holding bfloat16 bits)");
}

// Shares the numpy array's memory when copy is false.
Tensor from_numpy(py::array arr, bool copy) {
  DType dt = dtype_from_numpy(arr.dtype());
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  Shape strides(arr.ndim());
  const ssize_t es = arr.itemsize();
  for (ssize_t i = 0; i < arr.ndim(); ++i) {
    PC_CHECK(arr.strides()[i] % es == 0, "[from_numpy] array strides are not a multiple of the item size");
    strides[i] = arr.strides()[i] / es;
    PC_CHECK(strides[i] >= 0, "[from_numpy] negative strides are not supported; pass a copy (arr.copy())");
  }
  int64_t span = 1;
  for (ssize_t i = 0; i < arr.ndim(); ++i)
    if (shape[i] > 0) span += (shape[i] - 1) * strides[i];
  if (shape_numel(shape) == 0) span = 0;
  auto st = Storage::borrow(const_cast<void*>(arr.data()), span * es, hold_pyobject(arr), arr.writeable());
  Tensor t = Tensor::from_storage(st, shape, dt, 0, strides);
  return copy ? t.clone() : t;
}

py::array to_numpy(const Tensor& t) {
  std::vector<ssize_t> shape(t.shape().begin(), t.shape().end());
  if (t.dtype() == DType::BF16) {  // numpy has no bfloat16: widen
    Tensor f = t.to(DType::F32);
    return to_numpy(f);
  }
  py::dtype dt;
  switch (t.dtype()) {
    case DType::F32: dt = py::dtype::of<float>(); break;
    case DType::F16: dt = py::dtype("float16"); break;
    case DType::I32: dt = py::dtype::of<int32_t>(); break;
    case DType::I64: dt = py::dtype::of<int64_t>(); break;
    case DType::BOOL: dt = py::dtype("bool"); break;
    default: break;
  }
  std::vector<ssize_t> strides;
  for (auto s : t.strides()) strides.push_back(s * dtype_size(t.dtype()));
  // The capsule keeps the storage alive as long as numpy needs it.
  auto* keep = new std::shared_ptr<Storage>(t.storage());
  py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  py::array a(dt, shape, strides, t.raw_data(), base);
  if (!t.storage()->writable) {
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  }
  return a;
}

// A copy of any numpy array with torch.as_tensor's dtype rules narrowed to
// peftcpp's types: float64 -> float32, other integer widths -> int64. This is
// the implicit conversion that lets every op take a numpy array for a Tensor.
Tensor tensor_from_array(py::array arr) {
  const py::dtype dt = arr.dtype();
  const char k = dt.kind();
  const ssize_t size = dt.itemsize();
  const char* to = nullptr;
  if (k == 'f' && size != 4 && size != 2) to = "float32";
  else if ((k == 'i' && size != 4 && size != 8) || k == 'u') to = "int64";
  else if (k != 'f' && k != 'i' && k != 'b')
    throw TypeError("[Tensor] cannot make a tensor from a numpy array of dtype " + std::string(py::str(dt)) +
                    " (numbers or booleans expected)");
  py::module_ np = py::module_::import("numpy");
  py::array a = np.attr("ascontiguousarray")(arr, to ? py::object(py::str(to)) : py::object(py::none()));
  return from_numpy(a, /*copy=*/true);
}

std::vector<Tensor> as_tensor_list(py::handle r) {
  std::vector<Tensor> out;
  if (py::isinstance<Tensor>(r)) {
    out.push_back(r.cast<Tensor>());
  } else if (py::isinstance<py::tuple>(r) || py::isinstance<py::list>(r)) {
    for (auto h : r) {
      PC_CHECK(py::isinstance<Tensor>(h), "[checkpoint] the function must return Tensors");
      out.push_back(h.cast<Tensor>());
    }
  } else {
    throw std::invalid_argument("[checkpoint] the function must return a Tensor or a tuple of Tensors");
  }
  return out;
}

}  // namespace

void init_tensor(py::module_& m) {
  py::enum_<DType>(m, "DType", "Element types of a Tensor")
      .value("float32", DType::F32)
      .value("float16", DType::F16)
      .value("bfloat16", DType::BF16)
      .value("int32", DType::I32)
      .value("int64", DType::I64)
      .value("bool", DType::BOOL)
      .def_property_readonly("itemsize", [](DType d) { return dtype_size(d); }, "Bytes per element")
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); },
                             "True for float32, float16 and bfloat16");

  py::class_<Tensor>(m, "Tensor", py::dynamic_attr(),
                     "A strided n-d array with autograd (peftcpp adds torch-style methods in python/peftcpp)")
      // Tensor(t) shares t's data and autograd slots (how nn.Parameter wraps).
      .def(py::init([](const Tensor& t) { return t; }), py::arg("data"),
           "A new handle sharing data's storage and autograd slots")
      .def(py::init(&tensor_from_array), py::arg("data"),
           "A tensor holding a copy of a numpy array (float64 becomes float32, other integers int64)")
      .def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape())); },
                             "Sizes as a tuple of ints")
      .def_property_readonly("dtype", &Tensor::dtype, "Element type")
      .def_property_readonly("ndim", &Tensor::dim, "Number of dimensions")
      .def("dim", &Tensor::dim, "Number of dimensions")
      .def("numel", &Tensor::numel, "Number of elements")
      .def("stride", [](const Tensor& t) { return py::tuple(py::cast(t.strides())); },
           "Strides in elements, as a tuple")
      .def("storage_offset", &Tensor::offset, "Offset of the first element in its storage, in elements")
      .def("is_contiguous", &Tensor::is_contiguous, "Whether the layout is row-major contiguous")
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()); },
           "Address of the first element")
      .def("item", &Tensor::item, "The value of a one-element tensor as a float")
      .def("numpy", &to_numpy, "A numpy view of the data (a float32 copy for bfloat16)")
      .def_property(
          "requires_grad", &Tensor::requires_grad, [](Tensor& t, bool r) { t.set_requires_grad(r); },
          "Whether backward() computes a gradient for this tensor")
      .def("requires_grad_", [](Tensor& t, bool r) { t.set_requires_grad(r); return t; },
           py::arg("requires_grad") = true, "Sets requires_grad in place; returns the tensor")
      .def_property(
          "grad", [](const Tensor& t) -> py::object {
            Tensor g = t.grad();
            return g.defined() ? py::cast(g) : py::none();
          },
          [](Tensor& t, py::object g) {
            if (g.is_none()) { t.set_grad(Tensor()); return; }
            Tensor gt = g.cast<Tensor>();
            PC_CHECK(gt.shape() == t.shape(), "[grad] assigned gradient of shape ", shape_str(gt.shape()),
                     " to a tensor of shape ", shape_str(t.shape()));
            t.set_grad(gt);
          },
          "Accumulated gradient (None until backward reaches this tensor); assignable")
      .def_property_readonly("grad_fn", [](const Tensor& t) -> py::object {
        return t.grad_fn() ? py::cast(std::string(t.grad_fn()->name())) : py::none();
      }, "Name of the backward node that produced this tensor, or None for leaves")
      .def_property_readonly("is_leaf", &Tensor::is_leaf, "True unless produced by a differentiable op")
      .def("detach", &Tensor::detach, "A tensor sharing the data, outside the autograd graph")
      .def_property_readonly("data", &Tensor::detach, "Same as detach()")
      .def("backward", [](const Tensor& t, std::optional<Tensor> g, bool retain) {
             py::gil_scoped_release nogil_;
             t.backward(g ? *g : Tensor(), retain);
           },
           py::arg("gradient") = py::none(), py::arg("retain_graph") = false,
           "Accumulates d(self)/d(leaf) into each leaf's .grad (gradient: the seed, ones for a scalar)")
      .def("zero_", [](Tensor& t) { t.zero_(); return t; }, "Fills with zeros in place; returns the tensor")
      .def("fill_", [](Tensor& t, float v) { t.fill_(v); return t; }, py::arg("value"),
           "Fills with value in place; returns the tensor")
      .def("copy_", [](Tensor& t, const Tensor& s) { t.copy_(s); return t; }, py::arg("src"), nogil(),
           "Copies src (broadcast, converted) into this tensor in place; returns it")
      // Raw versions of clone/contiguous/to, wrapped in python/peftcpp/_tensor.py.
      .def("_clone_raw", &Tensor::clone, nogil(), "A fresh contiguous copy, outside autograd")
      .def("_contiguous_raw", &Tensor::contiguous, nogil(), "Self when contiguous, else a contiguous copy")
      .def("_to_raw", &Tensor::to, py::arg("dtype"), nogil(), "A copy converted to dtype (self if already dtype)")
      // What an in-place op on a tensor in the graph does: this handle takes
      // the result's data and history, so saved tensors keep the old values.
      .def("_rebind", [](Tensor& self, const Tensor& result) { self = result; }, py::arg("result"),
           "Makes this handle refer to result (its data and autograd history)")
      .def("_is_same", [](const Tensor& a, const Tensor& b) { return a.impl() == b.impl(); }, py::arg("other"),
           "Whether both handles are the same tensor (same autograd slots)")
      .def("_shares_storage", [](const Tensor& a, const Tensor& b) { return a.storage() == b.storage(); },
           py::arg("other"), "Whether both tensors view the same storage")
      .def("_storage_is_owned", [](const Tensor& t) { return t.storage()->owned; },
           "False when the storage borrows memory (numpy, an mmap)");

  // Every op taking a Tensor also takes a numpy array (a copy; see tensor_from_array).
  py::implicitly_convertible<py::array, Tensor>();

  m.def("from_numpy", &from_numpy, py::arg("array"), py::arg("copy") = false,
        "Tensor over a numpy array's memory (copy=False) or a copy of it");
  m.def("empty", [](std::vector<int64_t> s, DType d) { return Tensor::empty(s, d); }, py::arg("shape"),
        py::arg("dtype") = DType::F32, "A new tensor with uninitialised data");
  m.def("zeros", [](std::vector<int64_t> s, DType d) { return Tensor::zeros(s, d); }, py::arg("shape"),
        py::arg("dtype") = DType::F32, "A new tensor of zeros");
  // A shape with no memory behind it (one zero element, all strides 0): the
  // placeholder a model is built with before its checkpoint is mapped in.
  m.def("meta", [](std::vector<int64_t> s, DType d) {
          auto st = Storage::allocate(dtype_size(d), /*zero=*/true);
          st->writable = false;
          return Tensor::from_storage(st, s, d, 0, Shape(s.size(), 0));
        },
        py::arg("shape"), py::arg("dtype") = DType::F32,
        "A read-only placeholder of this shape with no memory behind it (all strides 0)");
  m.def("full", [](std::vector<int64_t> s, float v, DType d) { return Tensor::full(s, v, d); }, py::arg("shape"),
        py::arg("value"), py::arg("dtype") = DType::F32, "A new tensor filled with value");

  // Random tensors from the seeded global generator.
  m.def("rand", [](std::vector<int64_t> s, float lo, float hi) {
          Tensor t = Tensor::empty(s);
          auto& g = Generator::global();
          uint64_t seed = g.seed(), base = g.reserve(t.numel());
          float* p = t.data<float>();
          for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * Generator::uniform(seed, base + i);
          return t;
        },
        py::arg("shape"), py::arg("low") = 0.f, py::arg("high") = 1.f,
        "float32 uniform in [low, high) from the seeded global generator");
  m.def("randn", [](std::vector<int64_t> s, float mean, float std) {
          Tensor t = Tensor::empty(s);
          auto& g = Generator::global();
          const int64_t n = t.numel();
          uint64_t seed = g.seed(), base = g.reserve(2 * n);
          float* p = t.data<float>();
          for (int64_t i = 0; i < n; ++i) {  // Box-Muller
            double u1 = (Generator::bits(seed, base + 2 * i) >> 11) * (1.0 / 9007199254740992.0);
            double u2 = (Generator::bits(seed, base + 2 * i + 1) >> 11) * (1.0 / 9007199254740992.0);
            double z = std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
            p[i] = mean + std * static_cast<float>(z);
          }
          return t;
        },
        py::arg("shape"), py::arg("mean") = 0.f, py::arg("std") = 1.f,
        "float32 normal(mean, std) (Box-Muller) from the seeded global generator");
  m.def("manual_seed", [](uint64_t s) { Generator::global().manual_seed(s); }, py::arg("seed"),
        "Seeds the global generator (counter-based: the offset restarts at 0)");
  m.def("get_rng_state", [] { auto s = Generator::global().state(); return py::make_tuple(s.seed, s.offset); },
        "(seed, offset) of the global generator");
  m.def("set_rng_state", [](uint64_t seed, uint64_t offset) { Generator::global().set_state({seed, offset}); },
        py::arg("seed"), py::arg("offset"), "Restores a state from get_rng_state()");

  m.def("is_grad_enabled", &GradMode::enabled, "Whether ops record the autograd graph");
  m.def("set_grad_enabled", &GradMode::set, py::arg("enabled"), "Turns graph recording on or off");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads for the kernels and OpenBLAS");
  m.def("get_num_threads", &get_num_threads, "Threads the kernels and OpenBLAS use");
  m.def("memory_stats", [] {
    auto s = memory_stats();
    py::dict d;
    d["current"] = s.current;
    d["peak"] = s.peak;
    d["cached"] = cached_bytes();
    return d;
  }, "{'current', 'peak', 'cached'}: bytes of tensor memory in use, its peak, and freed blocks kept for reuse");
  m.def("reset_peak_memory", &reset_peak_memory, "Restarts the peak of memory_stats() from the current use");
  m.def("empty_cache", &empty_cache, "Returns cached free blocks to the system");
  m.def("set_backward_profiling", [](bool on) {
    BackwardProfile::enabled = on;
    BackwardProfile::table().clear();
  }, py::arg("enabled"), "Times each backward node by name; read with backward_profile()");
  m.def("backward_profile", [] { return BackwardProfile::table(); },
        "Backward node name -> (seconds, calls) since set_backward_profiling(True)");

  m.def("checkpoint", [](py::function fn, std::vector<Tensor> inputs) {
          // fn is called again during backward, possibly from a thread
          // without the GIL: hold it so it is released under the GIL.
          auto holder = hold_pyobject(fn);
          CheckpointFn cfn = [holder](const std::vector<Tensor>& xs) {
            py::gil_scoped_acquire gil;
            py::handle f(static_cast<PyObject*>(holder.get()));
            py::tuple args(xs.size());
            for (size_t i = 0; i < xs.size(); ++i) args[i] = py::cast(xs[i]);
            py::object r = f(*args);
            return as_tensor_list(r);
          };
          std::vector<Tensor> outs;
          {
            py::gil_scoped_release nogil_;
            outs = checkpoint(cfn, inputs);
          }
          return outs;
        },
        py::arg("function"), py::arg("inputs"),
        "Activation checkpointing: function(*inputs) -> Tensor(s), run without keeping its intermediates and run "
        "again during backward");
}

}  // namespace peftcpp
