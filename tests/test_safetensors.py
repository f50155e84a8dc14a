"""safetensors I/O against the reference implementation (the PyPI
``safetensors`` package): files it writes load here with equal values and
zero-copy; files written here load there with equal bytes, and are in fact
byte-identical to its own; malformed files raise errors naming the file and
the tensor; saving is atomic."""
import gc
import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as st_np_load
from safetensors.numpy import save_file as st_np_save
from safetensors.torch import load_file as st_torch_load
from safetensors.torch import save_file as st_torch_save

import peftcpp
from peftcpp import serialization as pio
from peftcpp import _core

TORCH_TO_PC = {
    torch.float32: peftcpp.float32,
    torch.float16: peftcpp.float16,
    torch.bfloat16: peftcpp.bfloat16,
    torch.int32: peftcpp.int32,
    torch.int64: peftcpp.int64,
}


def _torch_tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "w.f32": torch.randn(3, 5, generator=g),
        "w.f16": torch.randn(7, 3, generator=g).half(),
        "w.bf16": torch.randn(2, 9, generator=g).bfloat16(),
        "ids.i64": torch.tensor([0, -1, 2**40, -(2**62)], dtype=torch.int64),
        "ids.i32": torch.tensor([[1, -2], [2**30, 7]], dtype=torch.int32),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
        "bf16.special": torch.tensor([float("inf"), -0.0, 1e-40, 65504.0], dtype=torch.bfloat16),
    }


def _header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return n, json.loads(f.read(n))


def _as_bytes_torch(t):
    """The raw bytes of a torch tensor (bf16 included)."""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.contiguous().numpy().tobytes()


def _as_bytes_pc(t):
    """The raw bytes of a peftcpp tensor, read through its data pointer."""
    n = t.numel() * t.dtype.itemsize
    if n == 0:
        return b""
    import ctypes
    return ctypes.string_at(t.data_ptr(), n)


# ------------------------------------------------------- reference -> peftcpp

def test_files_from_safetensors_load_with_equal_values(tmp_path):
    ref = _torch_tensors()
    path = tmp_path / "ref.safetensors"
    st_torch_save(ref, str(path), metadata={"format": "pt", "note": "ünï"})
    tensors, meta = pio.load_file_with_metadata(path)
    assert meta == {"format": "pt", "note": "ünï"}
    assert set(tensors) == set(ref)
    for name, r in ref.items():
        t = tensors[name]
        assert t.dtype == TORCH_TO_PC[r.dtype], name
        assert tuple(t.shape) == tuple(r.shape), name
        assert _as_bytes_pc(t) == _as_bytes_torch(r), name
        # Values too (bf16 is widened to float32 by .numpy(), exactly).
        np.testing.assert_array_equal(t.numpy(), r.float().numpy() if r.dtype == torch.bfloat16 else r.numpy())


def test_loaded_tensors_share_one_mmap_of_the_file(tmp_path):
    path = tmp_path / "ref.safetensors"
    ref = _torch_tensors()
    st_torch_save(ref, str(path))
    n, header = _header(path)
    tensors = pio.load_file(path)
    # Zero-copy: borrowed (not owned) memory, and the distance between any two
    # tensors' data pointers is exactly the distance of their file offsets.
    base_name = "w.f32"
    base = tensors[base_name].data_ptr() - header[base_name]["data_offsets"][0]
    for name, t in tensors.items():
        if t.numel() == 0:
            continue
        assert not t._storage_is_owned(), name
        assert t.data_ptr() - base == header[name]["data_offsets"][0], name
        assert t.data_ptr() % t.dtype.itemsize == 0, name
    # Read-only: in-place writes are refused and numpy views are not writable.
    w = tensors["w.f32"]
    with pytest.raises(ValueError, match="read-only"):
        w.fill_(0.0)
    assert not w.numpy().flags.writeable
    np.testing.assert_array_equal(w.numpy(), ref["w.f32"].numpy())


def test_mapping_lives_as_long_as_a_tensor(tmp_path):
    path = tmp_path / "a.safetensors"
    st_np_save({"a": np.arange(6, dtype=np.float32), "b": np.ones(3, np.float16)}, str(path))
    a = pio.load_file(path)["a"]  # the dict and the other tensor are gone
    gc.collect()
    os.unlink(path)  # the mapping keeps the data even without the name
    np.testing.assert_array_equal(a.numpy(), np.arange(6, dtype=np.float32))
    assert (a * 2.0).numpy()[5] == 10.0


def test_loaded_tensor_used_in_compute_and_clone_is_owned(tmp_path):
    path = tmp_path / "w.safetensors"
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    st_np_save({"w": w}, str(path))
    t = pio.load_file(path)["w"]
    c = t._clone_raw()
    assert c._storage_is_owned()
    c.fill_(1.0)  # the copy is writable
    np.testing.assert_array_equal(t.numpy(), w)  # the mapping is not
    np.testing.assert_allclose(peftcpp.matmul(t, peftcpp.tensor(np.eye(3, dtype=np.float32))).numpy(), w)


# ------------------------------------------------------- peftcpp -> reference

def _pc_tensors():
    rng = np.random.default_rng(1)
    return {
        "a.f32": peftcpp.tensor(rng.standard_normal((5, 3)).astype(np.float32)),
        "b.f16": peftcpp.tensor(rng.standard_normal(7).astype(np.float16)),
        "c.bf16": peftcpp.tensor(rng.standard_normal((3, 3)).astype(np.float32), dtype=peftcpp.bfloat16),
        "d.i32": peftcpp.tensor(np.array([-5, 0, 2**31 - 1]), dtype=peftcpp.int32),
        "e.i64": peftcpp.tensor(np.array([[2**50], [-(2**50)]]), dtype=peftcpp.int64),
        "scalar": peftcpp.tensor(np.float32(-1.5)),
        "empty": peftcpp.zeros(2, 0),
    }


def test_files_written_here_load_in_safetensors_with_equal_bytes(tmp_path):
    ours = _pc_tensors()
    path = tmp_path / "ours.safetensors"
    pio.save_file(ours, path, metadata={"format": "pt"})
    loaded = st_torch_load(str(path))
    assert set(loaded) == set(ours)
    inv = {v: k for k, v in TORCH_TO_PC.items()}
    for name, t in ours.items():
        r = loaded[name]
        assert r.dtype == inv[t.dtype], name
        assert tuple(r.shape) == tuple(t.shape), name
        assert _as_bytes_torch(r) == _as_bytes_pc(t), name
    # numpy flavour (numpy has no bfloat16, so a file without it).
    path_np = tmp_path / "ours_np.safetensors"
    pio.save_file({k: v for k, v in ours.items() if v.dtype != peftcpp.bfloat16}, path_np)
    loaded_np = st_np_load(str(path_np))
    np.testing.assert_array_equal(loaded_np["a.f32"], ours["a.f32"].numpy())
    np.testing.assert_array_equal(loaded_np["b.f16"], ours["b.f16"].numpy())
    np.testing.assert_array_equal(loaded_np["e.i64"], ours["e.i64"].numpy())
    n, header = _header(path)
    assert n % 8 == 0 and header["__metadata__"] == {"format": "pt"}


def test_files_are_byte_identical_to_the_reference_writer(tmp_path):
    ours = _pc_tensors()
    ref = {}
    for name, t in ours.items():
        r = torch.from_numpy(t.numpy().copy())  # (ascontiguousarray would make a 0-d array 1-d)
        ref[name] = r.bfloat16() if t.dtype == peftcpp.bfloat16 else r
    st_torch_save(ref, str(tmp_path / "ref.st"), metadata={"format": "pt"})
    pio.save_file(ours, tmp_path / "ours.st", metadata={"format": "pt"})
    assert (tmp_path / "ours.st").read_bytes() == (tmp_path / "ref.st").read_bytes()


def test_round_trip_non_contiguous_and_numpy_inputs(tmp_path):
    base = peftcpp.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    t = base.t()  # a transposed view
    assert not t.is_contiguous()
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    pio.save_file({"t": t, "np": arr}, tmp_path / "x.st")
    back = pio.load_file(tmp_path / "x.st")
    np.testing.assert_array_equal(back["t"].numpy(), np.arange(12, dtype=np.float32).reshape(3, 4).T)
    np.testing.assert_array_equal(back["np"].numpy(), arr)
    np.testing.assert_array_equal(st_np_load(str(tmp_path / "x.st"))["t"], back["t"].numpy())


def test_save_over_the_file_the_tensors_map(tmp_path):
    path = tmp_path / "same.st"
    pio.save_file({"w": peftcpp.tensor(np.arange(4, dtype=np.float32))}, path)
    loaded = pio.load_file(path)
    pio.save_file({"w": loaded["w"], "extra": peftcpp.ones(2)}, path)  # reads the old mapping while writing
    np.testing.assert_array_equal(loaded["w"].numpy(), np.arange(4, dtype=np.float32))
    again = st_np_load(str(path))
    np.testing.assert_array_equal(again["w"], np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(again["extra"], np.ones(2, np.float32))


# ---------------------------------------------------------------- atomicity

def _tmp_leftovers(directory):
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("bad, exc", [
    ({"ok": None}, TypeError),                                   # not a tensor
    ({"ok": np.zeros(3, np.float64)}, TypeError),                # unsupported dtype
    ({"__metadata__": "x"}, TypeError),
])
def test_failed_python_side_save_leaves_file_untouched(tmp_path, bad, exc):
    path = tmp_path / "keep.st"
    pio.save_file(_pc_tensors(), path)
    before = path.read_bytes()
    tensors = {"good": peftcpp.ones(3)}
    tensors.update(bad)
    with pytest.raises(exc):
        pio.save_file(tensors, path)
    assert path.read_bytes() == before
    assert _tmp_leftovers(tmp_path) == []


def test_failed_native_save_leaves_file_untouched(tmp_path):
    path = tmp_path / "keep.st"
    pio.save_file(_pc_tensors(), path)
    before = path.read_bytes()
    # Rejected by the C++ writer: a tensor may not be called __metadata__.
    with pytest.raises(ValueError, match="__metadata__"):
        pio.save_file({"good": peftcpp.ones(3), "__metadata__": peftcpp.ones(1)}, path)
    with pytest.raises(TypeError, match="str"):
        pio.save_file({"good": peftcpp.ones(3)}, path, metadata={"k": 1})
    assert path.read_bytes() == before
    # The final rename fails (the target is a directory): the temporary file
    # is removed and the directory left alone.
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(OSError, match="adir"):
        pio.save_file({"good": peftcpp.ones(3)}, target)
    assert target.is_dir()
    assert _tmp_leftovers(tmp_path) == []


# ----------------------------------------------------------- malformed files

def _write(path, header_obj=None, data=b"", raw_header=None, pad=True, length=None):
    h = raw_header if raw_header is not None else json.dumps(header_obj, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + h + data)


def _entry(dtype, shape, offsets):
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


@pytest.mark.parametrize("case, needles", [
    ("truncated_prefix", ["too short"]),
    ("header_too_long", ["exceeds the file size"]),
    ("invalid_json", ["not valid JSON"]),
    ("offsets_past_end", ["'x'", "run past the end"]),
    ("overlap", ["'x'", "'y'", "overlap"]),
    ("size_mismatch", ["'x'", "needs 16 bytes"]),
    ("unknown_dtype", ["'x'", "unknown dtype"]),
    ("negative_dim", ["'x'", "shape"]),
    ("truncated_data", ["'b'", "run past the end"]),
    ("invalid_utf8", ["not valid JSON"]),
    ("deep_nesting", ["not valid JSON"]),
])
def test_malformed_files_raise_value_error_naming_file_and_tensor(tmp_path, case, needles):
    p = tmp_path / "bad.safetensors"
    d16 = bytes(16)
    if case == "truncated_prefix":
        p.write_bytes(b"\x10\x00\x00")
    elif case == "header_too_long":
        _write(p, {}, length=10**6)
    elif case == "invalid_json":
        _write(p, raw_header=b'{"x": {"dtype": "F32",')
    elif case == "offsets_past_end":
        _write(p, {"x": _entry("F32", [4], [0, 16])}, data=bytes(8))
    elif case == "overlap":
        _write(p, {"x": _entry("F32", [2], [0, 8]), "y": _entry("F32", [2], [4, 12])}, data=d16)
    elif case == "size_mismatch":
        _write(p, {"x": _entry("F32", [4], [0, 12])}, data=d16)
    elif case == "unknown_dtype":
        _write(p, {"x": _entry("F33", [2], [0, 8])}, data=d16)
    elif case == "negative_dim":
        _write(p, {"x": _entry("F32", [-2], [0, 8])}, data=d16)
    elif case == "invalid_utf8":
        _write(p, raw_header=b'{"__metadata__":{"a":"\xff\xfe"}}')
    elif case == "deep_nesting":
        _write(p, raw_header=b'{"x":' + b"[" * 1_000_000)
    elif case == "truncated_data":
        st_np_save({"a": np.zeros(4, np.float32), "b": np.ones(64, np.float32)}, str(p))
        p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError) as ei:
        pio.load_file(p)
    msg = str(ei.value)
    assert str(p) in msg
    for n in needles:
        assert n in msg, msg


@pytest.mark.parametrize("np_dtype, st_name", [(np.float64, "F64"), (np.int8, "I8"), (np.uint8, "U8")])
def test_unsupported_dtypes_raise_type_error_naming_tensor_and_dtype(tmp_path, np_dtype, st_name):
    p = tmp_path / "f64.safetensors"
    st_np_save({"fine": np.zeros(2, np.float32), "odd": np.zeros(3, np_dtype)}, str(p))
    with pytest.raises(TypeError) as ei:
        pio.load_file(p)
    msg = str(ei.value)
    assert "'odd'" in msg and st_name in msg and str(p) in msg


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        pio.load_file(tmp_path / "nope.safetensors")
    with pytest.raises(IsADirectoryError):
        pio.load_file(tmp_path)


def test_random_corruptions_raise_or_load_never_crash(tmp_path):
    # A small Python-side fuzz (the C++ suite runs a larger one under ASan).
    src = tmp_path / "good.st"
    pio.save_file(_pc_tensors(), src, metadata={"m": "1"})
    good = bytearray(src.read_bytes())
    rng = np.random.default_rng(7)
    p = tmp_path / "fuzz.st"
    outcomes = {"ok": 0, "error": 0}
    for i in range(200):
        b = bytearray(good)
        if i % 2:
            b = b[: rng.integers(0, len(b))]
        else:
            for _ in range(rng.integers(1, 4)):
                b[rng.integers(0, len(b))] = int(rng.integers(0, 256))
        p.write_bytes(bytes(b))
        try:
            for t in pio.load_file(p).values():
                _as_bytes_pc(t)  # every byte of every tensor readable
            outcomes["ok"] += 1
        except (ValueError, TypeError):
            outcomes["error"] += 1
    assert outcomes["error"] > 50 and outcomes["ok"] + outcomes["error"] == 200


def test_core_binding_returns_tensors_and_metadata(tmp_path):
    p = tmp_path / "c.st"
    _core.save_safetensors(str(p), {"x": peftcpp.ones(2)}, {"a": "b"})
    tensors, meta = _core.load_safetensors(str(p))
    assert meta == {"a": "b"}
    assert list(tensors) == ["x"] and tensors["x"].numpy().tolist() == [1.0, 1.0]
    _core.save_safetensors(str(p), {"y": peftcpp.zeros(1)})  # metadata defaults to None
    assert _core.load_safetensors(str(p))[1] == {}


def test_streamed_writer_keeps_the_plan_order_and_loads_in_safetensors(tmp_path):
    """_core.write_safetensors (the GGUF importer's writer): tensors in the
    given order, produced one at a time, readable by the reference reader."""
    rng = np.random.default_rng(0)
    arrays = {"b.w": rng.standard_normal((3, 4)).astype(np.float32), "a.w": rng.standard_normal(5).astype(np.float16),
              "c.bits": rng.integers(0, 2**16, (2, 3), dtype=np.uint16), "d.ids": np.arange(4, dtype=np.int64)}
    plan = [("b.w", "F32", [3, 4]), ("a.w", "F16", [5]), ("c.bits", "BF16", [2, 3]), ("d.ids", "I64", [4])]
    asked = []

    def produce(i):
        asked.append(i)
        return arrays[plan[i][0]]
    path = str(tmp_path / "s.safetensors")
    _core.write_safetensors(path, plan, produce, {"format": "pt"})
    assert asked == [0, 1, 2, 3]
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    assert list(header) == ["__metadata__", "b.w", "a.w", "c.bits", "d.ids"]
    ref = st_torch_load(path)
    np.testing.assert_array_equal(ref["b.w"].numpy(), arrays["b.w"])
    np.testing.assert_array_equal(ref["a.w"].numpy(), arrays["a.w"])
    np.testing.assert_array_equal(ref["c.bits"].view(torch.int16).numpy().view(np.uint16), arrays["c.bits"])
    np.testing.assert_array_equal(ref["d.ids"].numpy(), arrays["d.ids"])


@pytest.mark.parametrize("produce, exc, needle", [
    (lambda i: np.zeros(5, np.float32), ValueError, "produced 20 bytes"),   # wrong size
    (lambda i: np.zeros(6, np.float16), ValueError, "2-byte elements"),    # wrong dtype width
    (lambda i: 1 / 0, ZeroDivisionError, "division"),                      # the producer fails
])
def test_streamed_writer_failures_leave_the_old_file(tmp_path, produce, exc, needle):
    path = tmp_path / "s.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(exc, match=needle):
        _core.write_safetensors(str(path), [("w", "F32", [2, 3])], produce)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]
