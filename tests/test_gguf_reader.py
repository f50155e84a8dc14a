"""GGUF reader and dequantization against the reference implementation (the
PyPI ``gguf`` package, used here only as a test oracle): files written with
gguf.GGUFWriter read back with equal metadata (every value type, string and
nested arrays), equal tensor layout, F32/F16/BF16 tensors bit-exact and
zero-copy, quantized tensors bit-exact against gguf.quants.dequantize;
malformed files raise errors naming the file."""
import os
import struct

import numpy as np
import pytest

import gguf
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import GGUFValueType as VT  # noqa: E402

from peftcpp import _core  # noqa: E402

LEGACY = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
KQUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"]  # dequantize-only in the oracle
IQUANTS = ["IQ4_NL"]

# Byte offsets of the f16 scale fields inside one block, per type.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ4_NL": [0], "IQ4_XS": [0],
}


def random_blocks(rng, qtype, n_blocks, finite=True):
    """Random bytes for n_blocks blocks; with finite=True the f16 scale fields
    hold ordinary values (so every output is finite)."""
    _, type_size = gguf.GGML_QUANT_SIZES[QT[qtype]]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if finite:
        for off in F16_FIELDS[qtype]:
            vals = (rng.standard_normal(n_blocks) * 0.05).astype(np.float16)
            raw[:, off:off + 2] = vals.view(np.uint8).reshape(n_blocks, 2)
    return raw


def assert_bits_equal(a, b):
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


# ----------------------------------------------------------------- writing


METADATA = [
    # key, value, GGUF type (None: the writer infers it)
    ("t.u8", 200, VT.UINT8),
    ("t.i8", -100, VT.INT8),
    ("t.u16", 60000, VT.UINT16),
    ("t.i16", -30000, VT.INT16),
    ("t.u32", 4_000_000_000, VT.UINT32),
    ("t.i32", -2_000_000_000, VT.INT32),
    ("t.f32", 0.1, VT.FLOAT32),
    ("t.bool_true", True, VT.BOOL),
    ("t.bool_false", False, VT.BOOL),
    ("t.str", "héllo wörld ✓", VT.STRING),
    ("t.str_empty", "", VT.STRING),
    ("t.u64", 2**64 - 1, VT.UINT64),
    ("t.i64", -(2**63), VT.INT64),
    ("t.f64", 1.0 / 3.0, VT.FLOAT64),
    ("t.arr_str", ["a", "Ġthe", "", "<|im_end|>", "日本"], None),
    ("t.arr_i32", [1, -2, 3, 2**31 - 1], None),
    ("t.arr_f32", [0.5, -1.25, 3.0e-8], None),
    ("t.arr_bool", [True, False, True], None),
    ("t.arr_nested", [[1, 2, 3], [4], [5, 6]], None),
    ("t.arr_nested_str", [["x", "yy"], ["zzz"]], None),
]
TYPED_ARRAYS = [
    ("t.arr_u8", [0, 255, 7], VT.UINT8),
    ("t.arr_i8", [-128, 127], VT.INT8),
    ("t.arr_u16", [65535, 1], VT.UINT16),
    ("t.arr_i16", [-32768, 5], VT.INT16),
    ("t.arr_u32", [2**32 - 1, 0], VT.UINT32),
    ("t.arr_u64", [2**64 - 1, 3], VT.UINT64),
    ("t.arr_i64", [-(2**63), 2**63 - 1], VT.INT64),
    ("t.arr_f64", [1e300, -2.5], VT.FLOAT64),
]
EXPECTED_TYPES = {
    "general.architecture": "STRING",
    "t.u8": "UINT8", "t.i8": "INT8", "t.u16": "UINT16", "t.i16": "INT16", "t.u32": "UINT32",
    "t.i32": "INT32", "t.f32": "FLOAT32", "t.bool_true": "BOOL", "t.bool_false": "BOOL",
    "t.str": "STRING", "t.str_empty": "STRING", "t.u64": "UINT64", "t.i64": "INT64", "t.f64": "FLOAT64",
    "t.arr_str": "ARRAY[STRING]", "t.arr_i32": "ARRAY[INT32]", "t.arr_f32": "ARRAY[FLOAT32]",
    "t.arr_bool": "ARRAY[BOOL]", "t.arr_nested": "ARRAY[ARRAY[INT32]]",
    "t.arr_nested_str": "ARRAY[ARRAY[STRING]]",
    "t.arr_u8": "ARRAY[UINT8]", "t.arr_i8": "ARRAY[INT8]", "t.arr_u16": "ARRAY[UINT16]",
    "t.arr_i16": "ARRAY[INT16]", "t.arr_u32": "ARRAY[UINT32]", "t.arr_u64": "ARRAY[UINT64]",
    "t.arr_i64": "ARRAY[INT64]", "t.arr_f64": "ARRAY[FLOAT64]",
}


def expected_value(value, vtype):
    """What a reader should return: float32 values rounded to float32."""
    if vtype == VT.FLOAT32:
        return float(np.float32(value))
    if isinstance(value, list):
        return [expected_value(v, VT.FLOAT32 if isinstance(v, float) and vtype is None else vtype) for v in value]
    return value


def write_gguf(path, tensors, metadata=True, alignment=None):
    """tensors: list of (name, array, raw_dtype or None)."""
    w = gguf.GGUFWriter(os.fspath(path), "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        for key, value, vtype in METADATA:
            if vtype is None:
                w.add_array(key, value)
            else:
                w.add_key_value(key, value, vtype)
        for key, value, sub in TYPED_ARRAYS:
            w.add_key_value(key, value, VT.ARRAY, sub_type=sub)
    for name, arr, raw_dtype in tensors:
        w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture
def model_file(tmp_path):
    """A file with metadata of every type and tensors of every supported type.
    Returns (path, {name: (type name, expected float32 array or exact array)})."""
    rng = np.random.default_rng(0)
    tensors, expect = [], {}

    def add(name, arr, raw_dtype, type_name, value):
        tensors.append((name, arr, raw_dtype))
        expect[name] = (type_name, value)

    a = rng.standard_normal((3, 5)).astype(np.float32)
    add("w.f32", a, None, "F32", a)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    add("w.f32_3d", a, None, "F32", a)
    a = rng.standard_normal(7).astype(np.float32)
    add("norm.f32_1d", a, None, "F32", a)
    a = rng.standard_normal((4, 6)).astype(np.float16)
    add("w.f16", a, None, "F16", a)
    a = rng.standard_normal((5, 8)).astype(np.float32)
    raw = gguf.quants.quantize(a, QT.BF16)
    add("w.bf16", raw, QT.BF16, "BF16", gguf.quants.dequantize(raw, QT.BF16))
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    add("ids.i32", a, None, "I32", a)
    for q in LEGACY:
        data = rng.standard_normal((3, 64)).astype(np.float32)
        raw = gguf.quants.quantize(data, QT[q])
        add(f"w.{q}", raw, QT[q], q, gguf.quants.dequantize(raw, QT[q]))
    for q in IQUANTS:
        raw = random_blocks(rng, q, 6).reshape(3, -1)
        add(f"w.{q}", raw, QT[q], q, gguf.quants.dequantize(raw, QT[q]))
    for q in KQUANTS:
        rows, blocks_per_row = 3, 2
        raw = random_blocks(rng, q, rows * blocks_per_row).reshape(rows, -1)
        add(f"w.{q}", raw, QT[q], q, gguf.quants.dequantize(raw, QT[q]))
    path = tmp_path / "model.gguf"
    write_gguf(path, tensors)
    return path, expect


# ------------------------------------------------------------------- tests


def test_metadata_every_type(model_file):
    path, _ = model_file
    f = _core.GGUFFile(str(path))
    assert f.version == 3
    assert f.alignment == 32
    md = f.metadata
    assert list(md)[0] == "general.architecture"
    assert md["general.architecture"] == "llama"
    for key, value, vtype in METADATA:
        got = md[key]
        assert got == expected_value(value, vtype), key
        if vtype == VT.BOOL or key == "t.arr_bool":
            assert all(isinstance(x, bool) for x in (got if isinstance(got, list) else [got])), key
    for key, value, _ in TYPED_ARRAYS:
        assert md[key] == value, key
    assert f.metadata_types == EXPECTED_TYPES
    # Same order as the file, same as the oracle's reader.
    reader = gguf.GGUFReader(str(path))
    assert list(md) == [k for k in reader.fields if not k.startswith("GGUF.")]


def test_metadata_matches_gguf_reader(model_file):
    path, _ = model_file
    md = _core.gguf_read(str(path))["metadata"]
    reader = gguf.GGUFReader(str(path))
    for key, field in reader.fields.items():
        if key in ("t.arr_nested", "t.arr_nested_str") or key.startswith("GGUF."):
            continue  # the oracle's reader flattens nested arrays
        want = field.contents()
        got = md[key]
        if isinstance(want, list):
            want = [float(x) if isinstance(x, (float, np.floating)) else x for x in want]
        elif isinstance(want, np.floating):
            want = float(want)
        assert got == want, key


def test_tensor_infos_match_gguf_reader(model_file):
    path, expect = model_file
    info = _core.gguf_read(str(path))
    assert info["version"] == 3
    reader = gguf.GGUFReader(str(path))
    f = _core.GGUFFile(str(path))
    assert len(info["tensors"]) == len(reader.tensors) == len(f)
    for mine, ref in zip(info["tensors"], reader.tensors):
        assert mine["name"] == ref.name
        assert mine["type"] == ref.tensor_type.name == expect[ref.name][0]
        assert mine["type_id"] == int(ref.tensor_type)
        assert mine["ne"] == [int(x) for x in ref.shape]
        assert mine["shape"] == list(reversed(mine["ne"]))
        assert mine["shape"] == list(expect[ref.name][1].shape)
        assert mine["nbytes"] == int(ref.n_bytes)
        assert f.data_offset + mine["offset"] == int(ref.data_offset)
        np.testing.assert_array_equal(f.raw(ref.name), np.asarray(ref.data).view(np.uint8).reshape(-1))
    assert f.tensor_infos == info["tensors"]
    assert f.tensor_names == [t["name"] for t in info["tensors"]]
    assert "w.f32" in f and "nope" not in f


@pytest.mark.parametrize("name", ["w.f32", "w.f32_3d", "norm.f32_1d", "w.f16", "w.bf16", "ids.i32"])
def test_unquantized_tensors_are_exact_and_zero_copy(model_file, name):
    path, expect = model_file
    f = _core.GGUFFile(str(path))
    t = f.tensor(name)
    _, want = expect[name]
    assert list(t.shape) == list(want.shape)
    assert t._storage_is_owned() is False
    got = t.numpy()
    if want.dtype == np.float32 or name == "w.bf16":
        assert_bits_equal(got, want)
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    if name != "w.bf16":  # bf16 numpy() is a widened copy
        assert not got.flags.writeable


def test_dtypes(model_file):
    import peftcpp
    path, _ = model_file
    f = _core.GGUFFile(str(path))
    assert f.tensor("w.f32").dtype == peftcpp.float32
    assert f.tensor("w.f16").dtype == peftcpp.float16
    assert f.tensor("w.bf16").dtype == peftcpp.bfloat16
    assert f.tensor("ids.i32").dtype == peftcpp.int32
    for q in LEGACY + KQUANTS + IQUANTS:
        assert f.tensor(f"w.{q}").dtype == peftcpp.float32


@pytest.mark.parametrize("q", LEGACY + KQUANTS + IQUANTS)
def test_quantized_tensor_bit_exact(model_file, q):
    path, expect = model_file
    f = _core.GGUFFile(str(path))
    t = f.tensor(f"w.{q}")
    assert t._storage_is_owned() is True
    _, want = expect[f"w.{q}"]
    assert list(t.shape) == list(want.shape)
    assert_bits_equal(t.numpy(), want)
    # The module-level helper, by path and by handle.
    assert_bits_equal(_core.gguf_tensor(str(path), f"w.{q}").numpy(), want)
    assert_bits_equal(_core.gguf_tensor(f, f"w.{q}", dequantize=True).numpy(), want)
    with pytest.raises(TypeError, match=rf"w\.{q}.*{q}"):
        f.tensor(f"w.{q}", dequantize=False)


@pytest.mark.parametrize("q", LEGACY + KQUANTS + IQUANTS)
def test_dequantize_random_blocks(q):
    rng = np.random.default_rng(hash(q) % 2**32)
    # Finite scales: bit-exact.
    raw = random_blocks(rng, q, 300)
    want = gguf.quants.dequantize(raw, QT[q]).reshape(-1)
    assert_bits_equal(_core.gguf_dequantize(raw.reshape(-1), q).numpy(), want)
    # Entirely random bytes (inf/NaN scales too): same values, NaN where NaN.
    raw = random_blocks(rng, q, 300, finite=False)
    with np.errstate(all="ignore"):
        want = gguf.quants.dequantize(raw, QT[q]).reshape(-1)
    np.testing.assert_array_equal(_core.gguf_dequantize(raw.reshape(-1), q).numpy(), want)


def test_dequantize_large_parallel():
    rng = np.random.default_rng(7)
    raw = random_blocks(rng, "Q4_K", 2048)  # 512K elements: the OpenMP path
    want = gguf.quants.dequantize(raw, QT.Q4_K).reshape(-1)
    assert_bits_equal(_core.gguf_dequantize(raw.reshape(-1), "Q4_K").numpy(), want)


def test_quantize_roundtrip_close():
    """Sanity: the oracle's own quantizer, then our dequantizer, is close to the input."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((4, 256)).astype(np.float32)
    raw = gguf.quants.quantize(data, QT.Q8_0)
    got = _core.gguf_dequantize(raw.reshape(-1), "Q8_0").numpy().reshape(4, 256)
    np.testing.assert_allclose(got, data, atol=0.03)


def test_type_traits_match_gguf():
    traits = _core.gguf_type_traits()
    for name, (tid, bs, ts, _) in traits.items():
        assert QT[name] == tid
        assert gguf.GGML_QUANT_SIZES[QT[name]] == (bs, ts), name
    for q in LEGACY + KQUANTS + IQUANTS + ["F32", "F16", "BF16"]:
        assert traits[q][3] is True
    assert traits["IQ2_XXS"][3] is False


def test_custom_alignment(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float16)
    path = tmp_path / "a.gguf"
    write_gguf(path, [("a", a, None), ("b", b, None)], metadata=False, alignment=128)
    f = _core.GGUFFile(str(path))
    assert f.alignment == 128 and f.data_offset % 128 == 0
    assert all(t["offset"] % 128 == 0 for t in f.tensor_infos)
    assert_bits_equal(f.tensor("a").numpy(), a)
    np.testing.assert_array_equal(f.tensor("b").numpy(), b)


def test_tensor_outlives_handle(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "k.gguf"
    write_gguf(path, [("a", a, None)], metadata=False)
    f = _core.GGUFFile(str(path))
    t = f.tensor("a")
    raw = f.raw("a")
    del f
    import gc
    gc.collect()
    assert_bits_equal(t.numpy(), a)
    assert raw.tobytes() == a.tobytes()
    assert not raw.flags.writeable


def test_missing_tensor_and_missing_file(tmp_path, model_file):
    path, _ = model_file
    f = _core.GGUFFile(str(path))
    with pytest.raises(KeyError, match="nope"):
        f.tensor("nope")
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        _core.GGUFFile(str(tmp_path / "missing.gguf"))
    with pytest.raises(IsADirectoryError):
        _core.gguf_read(str(tmp_path))


def test_unsupported_type_names_tensor_and_type(tmp_path):
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, size=(2, 66), dtype=np.uint8)  # two IQ2_XXS blocks
    path = tmp_path / "iq.gguf"
    write_gguf(path, [("w.iq", raw, QT.IQ2_XXS)], metadata=False)
    f = _core.GGUFFile(str(path))
    assert f.tensor_infos[0]["type"] == "IQ2_XXS"
    assert f.tensor_infos[0]["shape"] == [2, 256]
    with pytest.raises(TypeError, match=r"w\.iq.*IQ2_XXS"):
        f.tensor("w.iq")
    assert f.raw("w.iq").tobytes() == raw.tobytes()


# ------------------------------------------------------- malformed files


def gguf_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def build(kvs=(), tensors=(), data=b"", version=3, magic=b"GGUF", n_kv=None, n_tensors=None, alignment=32):
    """A GGUF file from parts. kvs: (key, type id, value bytes); tensors:
    (name, ne, ggml type id, offset)."""
    out = bytearray(magic + struct.pack("<I", version))
    out += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    for key, t, val in kvs:
        out += gguf_string(key) + struct.pack("<i", t) + val
    for name, ne, t, off in tensors:
        out += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", n) for n in ne)
        out += struct.pack("<iQ", t, off)
    out += b"\0" * ((-len(out)) % alignment)
    return bytes(out) + data


VALID_KVS = [("general.architecture", 8, gguf_string("llama")), ("k.arr", 9, struct.pack("<iQ", 5, 2) + b"\1\0\0\0\2\0\0\0")]
VALID_TENSORS = [("a", [4, 2], 0, 0), ("b", [32], 8, 32)]
VALID_DATA = np.arange(8, dtype=np.float32).tobytes() + b"\0" * 0 + bytes(range(34))


def check_bad(tmp_path, content, match, exc=ValueError, name="bad.gguf"):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(exc, match=match) as ei:
        _core.GGUFFile(str(path))
    assert str(path) in str(ei.value)
    return str(ei.value)


def test_hand_built_file_is_valid(tmp_path):
    path = tmp_path / "ok.gguf"
    path.write_bytes(build(VALID_KVS, VALID_TENSORS, VALID_DATA))
    f = _core.GGUFFile(str(path))
    assert f.metadata == {"general.architecture": "llama", "k.arr": [1, 2]}
    assert_bits_equal(f.tensor("a").numpy(), np.arange(8, dtype=np.float32).reshape(2, 4))
    r = gguf.GGUFReader(str(path))  # the oracle agrees the file is valid
    assert [t.name for t in r.tensors] == ["a", "b"]
    want = gguf.quants.dequantize(np.frombuffer(bytes(range(34)), dtype=np.uint8).reshape(1, 34), QT.Q8_0)
    assert_bits_equal(f.tensor("b").numpy(), want.reshape(-1))


def test_version_2_accepted(tmp_path):
    path = tmp_path / "v2.gguf"
    path.write_bytes(build(VALID_KVS, VALID_TENSORS, VALID_DATA, version=2))
    assert _core.GGUFFile(str(path)).version == 2


def test_truncated_everywhere(tmp_path):
    content = build(VALID_KVS, VALID_TENSORS, VALID_DATA)
    path = tmp_path / "trunc.gguf"
    for n in range(len(content)):
        path.write_bytes(content[:n])
        with pytest.raises(ValueError) as ei:
            _core.GGUFFile(str(path))
        assert str(path) in str(ei.value), n


def test_bad_header(tmp_path):
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, magic=b"GGUG"), "not a GGUF file")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, version=1), "version 1")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, version=4), "version 4")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, version=3 << 24), "big-endian")
    check_bad(tmp_path, b"GGUF\3\0\0", "too short")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, n_kv=2**62), "metadata entries")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, n_tensors=2**63 + 5), "tensors")
    check_bad(tmp_path, build(VALID_KVS, VALID_TENSORS, VALID_DATA, n_kv=3), None)


def test_bad_metadata(tmp_path):
    arch = VALID_KVS[0]
    check_bad(tmp_path, build([("k", 8, struct.pack("<Q", 2**40) + b"ab")]), "'k'.*length")
    check_bad(tmp_path, build([("k", 13, b"\0" * 8)]), "'k'.*unknown value type 13")
    check_bad(tmp_path, build([("k", 9, struct.pack("<iQ", 4, 2**61))]), "'k'.*array of")
    check_bad(tmp_path, build([("k", 9, struct.pack("<iQ", 8, 2**40))]), "'k'.*array of")
    check_bad(tmp_path, build([("k", 9, struct.pack("<iQ", 77, 1))]), "'k'.*unknown array element type 77")
    check_bad(tmp_path, build([arch, arch]), "duplicate metadata key 'general.architecture'")
    check_bad(tmp_path, build([("", 4, b"\0" * 4)]), "empty key")
    check_bad(tmp_path, build([("general.alignment", 5, struct.pack("<i", 64))]), "general.alignment.*UINT32")
    check_bad(tmp_path, build([("general.alignment", 4, struct.pack("<I", 48))]), "general.alignment.*power of two")
    # Deeply nested arrays are refused rather than recursed into.
    nested = struct.pack("<iQ", 9, 1) * 20 + struct.pack("<iQ", 0, 0)
    check_bad(tmp_path, build([("k", 9, nested)]), "nested")


def test_bad_tensor_infos(tmp_path):
    kv = VALID_KVS
    check_bad(tmp_path, build(kv, [("a", [4, 2], 99, 0)], VALID_DATA), "'a'.*unknown ggml type id 99")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 4, 0)], VALID_DATA), "'a'.*unknown ggml type id 4")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 0, 0), ("a", [1], 0, 32)], VALID_DATA), "duplicate tensor 'a'")
    check_bad(tmp_path, build(kv, [("a", [1, 1, 1, 1, 1], 0, 0)], VALID_DATA), "'a'.*5 dimensions")
    check_bad(tmp_path, build(kv, [("a", [4, -2], 0, 0)], VALID_DATA), "'a'.*negative")
    check_bad(tmp_path, build(kv, [("a", [2**40, 2**40], 0, 0)], VALID_DATA), "'a'.*too many elements")
    check_bad(tmp_path, build(kv, [("b", [16], 8, 0)], VALID_DATA), "'b'.*not a multiple of the block size 32")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 0, 4)], VALID_DATA), "'a'.*not a multiple of the alignment")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 0, 2**20)], VALID_DATA), "'a'.*past the end of the file")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 0, 2**64 - 32)], VALID_DATA), "'a'.*past the end of the file")
    check_bad(tmp_path, build(kv, [("a", [4, 4], 0, 0)], VALID_DATA[:40]), "'a'.*past the end of the file")
    check_bad(tmp_path, build(kv, [("a", [4, 2], 0, 0), ("c", [8], 0, 0)], VALID_DATA), "'a'.*'c'.*overlap")


def test_random_corruption_never_crashes(tmp_path):
    """Bounded fuzz from Python (the C++ suite runs a larger one under ASan)."""
    content = bytearray(build(VALID_KVS, VALID_TENSORS, VALID_DATA))
    rng = np.random.default_rng(11)
    path = tmp_path / "fuzz.gguf"
    for _ in range(300):
        c = bytearray(content)
        for _ in range(rng.integers(1, 4)):
            c[rng.integers(0, len(c))] = rng.integers(0, 256)
        path.write_bytes(bytes(c))
        try:
            f = _core.GGUFFile(str(path))
        except ValueError as e:
            assert str(path) in str(e)
            continue
        f.metadata
        for name in f.tensor_names:
            try:
                f.tensor(name)
            except TypeError:
                pass
