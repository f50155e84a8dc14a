"""ggml quantization (peftcpp.gguf.tensor_quantization, _core.quantize_rows) against two
oracles, compared byte for byte:

- the PyPI ``gguf`` package's numpy quantizers (F16, BF16, Q4_0, Q4_1, Q5_0,
  Q5_1, Q8_0: the types it can quantize);
- llama.cpp itself: ``ggml_quantize_chunk(type, src, dst, 0, nrows, n, NULL)``
  in the libggml-base shared library shipped inside llama-cpp-python, called
  with ctypes - every type we support, K-quants included. Without an
  importance matrix that function runs exactly the quantize_row_*_ref code
  llama-quantize uses.

Inputs cover ordinary rows at several scales and widths plus the edge cases
where the reference arithmetic takes other branches: zero rows, constant
rows, one huge value, tiny values (1e-30, below ggml's 1e-15 group cutoff),
negative-only and positive-only rows, ties, integer-valued and sparse rows.
Round trips are checked against llama.cpp's test-quantize-fns bounds, and
dequantize_tensor against gguf.quants.dequantize on the same bytes."""
import ctypes
import importlib.util
import os
import warnings

import numpy as np
import pytest

import gguf
from gguf import GGMLQuantizationType as QT

import peftcpp
from peftcpp import _core
from peftcpp.gguf.tensor_quantization import dequantize_tensor, quantize_tensor

NUMPY_ORACLE_TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
LEGACY = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]
KQUANTS = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
ALL_TYPES = ["F32", "F16", "BF16"] + LEGACY + KQUANTS


def edge_rows(rng, n):
    """Rows of width n exercising every branch of the reference quantizers."""
    rows = []
    for scale in (1e-3, 0.02, 1.0, 30.0, 5e3):
        rows.append(rng.standard_normal(n) * scale)
    rows.append(np.zeros(n))                                   # all zero
    rows.append(np.full(n, 3.5))                               # constant positive
    rows.append(np.full(n, -0.75))                             # constant negative
    r = rng.standard_normal(n); r[n // 3] = 1e30; rows.append(r)   # one huge value
    r = rng.standard_normal(n) * 0.01; r[1] = 6e4; rows.append(r)  # near the f16 limit
    rows.append(rng.standard_normal(n) * 1e-30)                # tiny (below GROUP_MAX_EPS)
    rows.append(rng.standard_normal(n) * 1e-14)                # just above it
    rows.append(np.full(n, 1e-30))
    rows.append(-np.abs(rng.standard_normal(n)))               # negative only
    rows.append(np.abs(rng.standard_normal(n)) + 0.5)          # positive only, min > 0
    rows.append(rng.uniform(0, 1, n))
    r = rng.standard_normal(n); r[0], r[1] = 2.0, -2.0; r[2:] *= 0.1; rows.append(r)  # tie on |max|
    rows.append(np.round(rng.standard_normal(n) * 4))          # integer valued
    r = np.zeros(n); r[rng.choice(n, 3, replace=False)] = rng.standard_normal(3); rows.append(r)  # sparse
    r = np.zeros(n); r[::16] = 1.0; rows.append(r)
    rows.append(rng.standard_t(2, n))                          # heavy tails
    rows.append(0.1 + 2 * np.cos(np.arange(n)))                # test-quantize-fns data
    return np.ascontiguousarray(np.stack(rows).astype(np.float32))


WIDTHS = (256, 512, 1024)


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(20240611)
    return [edge_rows(rng, n) for n in WIDTHS]


# ---------------------------------------------------------------- oracle 1: gguf numpy

@pytest.mark.parametrize("qtype", NUMPY_ORACLE_TYPES)
def test_identical_to_gguf_numpy(qtype, cases):
    rng = np.random.default_rng(7)
    # The legacy types also take widths that are not multiples of 256.
    extra = [edge_rows(rng, n) for n in (32, 96)]
    for x in cases + extra:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on f16 overflow to inf
            want = np.asarray(gguf.quants.quantize(x, QT[qtype])).view(np.uint8).reshape(x.shape[0], -1)
        got = _core.quantize_rows(x, qtype)
        assert got.dtype == np.uint8 and got.shape == want.shape
        bad = np.nonzero((got != want).any(axis=1))[0]
        assert bad.size == 0, f"{qtype} width {x.shape[1]}: rows {bad.tolist()} differ from gguf.quants.quantize"


def test_bf16_nan_inf_match_gguf_numpy():
    bits = np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FFFFFFF, 0x7F800000, 0xFF800000,
                     0x3F808000, 0x3F818000, 0x00000001, 0x80008000] * 4, dtype=np.uint32)
    x = bits.view(np.float32).reshape(1, -1)
    want = np.asarray(gguf.quants.quantize(x, QT.BF16)).view(np.uint8).reshape(1, -1)
    assert np.array_equal(_core.quantize_rows(x, "BF16"), want)


# ---------------------------------------------------------------- oracle 2: llama.cpp's ggml

GGML_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
            "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}


@pytest.fixture(scope="module")
def ggml():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        pytest.fail("llama-cpp-python is not installed: these tests compare against ggml_quantize_chunk in its "
                    "libggml-base shared library (install it: pip install llama-cpp-python, or `make setup`)")
    libdir = os.path.join(os.path.dirname(spec.origin), "lib")
    path = os.path.join(libdir, "libggml-base.so")
    if not os.path.exists(path):
        pytest.fail(f"llama-cpp-python is installed but {path} is missing (needed for ggml_quantize_chunk)")
    lib = ctypes.CDLL(path)
    fn = lib.ggml_quantize_chunk
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p]

    def quantize(x, qtype):
        x = np.ascontiguousarray(x, dtype=np.float32)
        nrows, n = x.shape
        out = np.zeros((nrows, _core_row_bytes(qtype, n)), dtype=np.uint8)
        size = fn(GGML_IDS[qtype], x.ctypes.data, out.ctypes.data, 0, nrows, n, None)
        assert size == out.size, (qtype, size, out.size)
        return out

    return quantize


def _core_row_bytes(qtype, n):
    _, block, type_size, _ = _core.gguf_type_traits()[qtype]
    return n // block * type_size


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_identical_to_ggml_quantize_chunk(qtype, cases, ggml):
    for x in cases:
        want = ggml(x, qtype)
        got = _core.quantize_rows(x, qtype)
        bad = np.nonzero((got != want).any(axis=1))[0]
        assert bad.size == 0, f"{qtype} width {x.shape[1]}: rows {bad.tolist()} differ from ggml_quantize_chunk"


@pytest.mark.parametrize("qtype", KQUANTS + LEGACY)
def test_identical_to_ggml_on_many_random_rows(qtype, ggml):
    # Many blocks at once: exercises the solvers' rarely taken branches
    # (candidate scales that tie, clamped mins, coordinate-descent moves).
    rng = np.random.default_rng(99)
    x = rng.standard_normal((64, 2048)) * rng.uniform(1e-3, 10, (64, 1))
    x[::4] = rng.standard_t(3, (16, 2048))
    x = x.astype(np.float32)
    got = _core.quantize_rows(x, qtype, 2)
    want = ggml(x, qtype)
    assert np.array_equal(got, want), f"{qtype}: {int((got != want).any(axis=1).sum())} of 64 rows differ"


def test_f16_special_values_match_ggml(ggml):
    bits = np.array([0x7FC00000, 0xFFC00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x00000001, 0x33000000,
                     0x33000001, 0x477FF000, 0x477FE000, 0x387FC000, 0x80000000] * 8, dtype=np.uint32)
    x = bits.view(np.float32).reshape(1, -1)
    for qtype in ("F16", "BF16"):
        assert np.array_equal(_core.quantize_rows(x, qtype), ggml(x, qtype)), qtype


# ---------------------------------------------------------------- threads, round trip, dequantize

@pytest.mark.parametrize("qtype", ["Q4_K", "Q8_0", "Q6_K"])
def test_bytes_do_not_depend_on_thread_count(qtype, cases):
    x = cases[1]
    one = _core.quantize_rows(x, qtype, 1)
    for nt in (2, 3, 8):
        assert np.array_equal(_core.quantize_rows(x, qtype, nt), one)
    assert quantize_tensor(x, qtype, nthreads=2) == one.tobytes()


# llama.cpp tests/test-quantize-fns.cpp: total error sqrt(sum d^2)/n on
# 4096 values of 0.1 + 2*cos(i).
RMSE_BOUND = {"Q2_K": 0.0075, "Q3_K": 0.004}


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_round_trip_error_bound(qtype):
    x = (0.1 + 2 * np.cos(np.arange(4096))).astype(np.float32).reshape(4, 1024)
    y = dequantize_tensor(quantize_tensor(x, qtype), qtype, x.shape)
    assert y.shape == x.shape and y.dtype == np.float32
    err = float(np.sqrt(np.sum((y.astype(np.float64) - x) ** 2)) / x.size)
    assert err < RMSE_BOUND.get(qtype, 0.002), (qtype, err)


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_dequantize_matches_gguf_and_is_close(qtype, cases):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 512)) * 0.05).astype(np.float32)
    raw = quantize_tensor(x, qtype)
    y = dequantize_tensor(raw, qtype, x.shape)
    want = np.asarray(gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(6, -1), QT[qtype]))
    assert np.array_equal(y.view(np.uint32), want.astype(np.float32).reshape(x.shape).view(np.uint32))
    # Relative error per row against the row's RMS: loose per-type bounds.
    tol = {"F32": 0, "F16": 1e-3, "BF16": 5e-3, "Q8_0": 0.01, "Q6_K": 0.03, "Q5_0": 0.06, "Q5_1": 0.06,
           "Q5_K": 0.06, "Q4_0": 0.12, "Q4_1": 0.12, "Q4_K": 0.12, "Q3_K": 0.25, "Q2_K": 0.45}[qtype]
    rel = np.sqrt(np.mean((y - x) ** 2, axis=1)) / np.sqrt(np.mean(x ** 2, axis=1))
    assert rel.max() <= tol, (qtype, rel.max())
    # Edge rows never decode to NaN (except the row holding 1e30, whose f16
    # scale overflows in ggml too).
    e = cases[0]
    finite_rows = np.abs(e).max(axis=1) < 6.5e4
    y = dequantize_tensor(quantize_tensor(e, qtype), qtype, e.shape)
    assert not np.isnan(y[finite_rows]).any(), qtype


def test_quantize_tensor_inputs():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 3, 64))).astype(np.float32)
    raw = quantize_tensor(x, "Q8_0")
    assert isinstance(raw, bytes) and len(raw) == 6 * 2 * 34
    assert raw == _core.quantize_rows(x.reshape(6, 64), "Q8_0").tobytes()
    assert quantize_tensor(x, "q8_0") == raw                      # case-insensitive
    assert quantize_tensor(x, QT.Q8_0) == raw                     # gguf enum
    assert quantize_tensor(x.astype(np.float64), "Q8_0") == raw   # widened exactly
    assert quantize_tensor(np.asfortranarray(x[0]), "Q8_0") == _core.quantize_rows(x[0], "Q8_0").tobytes()
    assert quantize_tensor(x[:, :, ::-1], "Q8_0") == quantize_tensor(x[:, :, ::-1].copy(), "Q8_0")
    assert quantize_tensor(peftcpp.tensor(x[0]), "Q8_0") == _core.quantize_rows(x[0], "Q8_0").tobytes()
    xb = peftcpp.tensor(x[0], dtype=peftcpp.bfloat16)                # widened to float32 first
    assert quantize_tensor(xb, "Q4_0") == _core.quantize_rows(xb.numpy().astype(np.float32), "Q4_0").tobytes()
    assert quantize_tensor(np.zeros((0, 256), np.float32), "Q4_K") == b""
    y = dequantize_tensor(bytearray(raw), "Q8_0", (2, 3, 64))
    assert y.shape == (2, 3, 64)
    assert np.array_equal(y, dequantize_tensor(np.frombuffer(raw, np.uint8), "Q8_0", [2, 3, 64]))
    assert dequantize_tensor(b"", "Q4_K", (0, 256)).shape == (0, 256)


def test_quantize_errors():
    x = np.ones((2, 100), np.float32)
    with pytest.raises(ValueError, match=r"Q4_K.*256.*100"):
        quantize_tensor(x, "Q4_K")
    with pytest.raises(ValueError, match=r"Q8_0.*32.*100"):
        quantize_tensor(x, "Q8_0")
    with pytest.raises(ValueError, match="unknown ggml type 'Q9_9'"):
        quantize_tensor(np.ones((1, 256), np.float32), "Q9_9")
    with pytest.raises(ValueError, match="IQ4_NL is not supported"):
        quantize_tensor(np.ones((1, 256), np.float32), "IQ4_NL")
    with pytest.raises(TypeError, match="floating-point"):
        quantize_tensor(np.ones((1, 256), np.int32), "Q8_0")
    with pytest.raises(ValueError, match="scalar"):
        quantize_tensor(np.float32(1.0), "F32")
    with pytest.raises(TypeError, match="type must be"):
        quantize_tensor(np.ones((1, 256), np.float32), 12)
    # The binding itself
    with pytest.raises(ValueError, match=r"Q6_K quantizes blocks of 256 values: row length 300"):
        _core.quantize_rows(np.ones((2, 300), np.float32), "Q6_K")
    with pytest.raises(ValueError, match="2-D"):
        _core.quantize_rows(np.ones(256, np.float32), "Q6_K")
    with pytest.raises(ValueError, match="unknown ggml type 'nope'"):
        _core.quantize_rows(np.ones((1, 256), np.float32), "nope")
    with pytest.raises(ValueError, match="IQ2_XS is not supported"):
        _core.quantize_rows(np.ones((1, 256), np.float32), "IQ2_XS")
    with pytest.raises(TypeError, match="float32"):
        _core.quantize_rows(np.ones((1, 256), np.float64), "Q8_0")
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.quantize_rows(np.ones((256, 2), np.float32).T, "Q8_0")


def test_dequantize_errors():
    raw = quantize_tensor(np.ones((2, 256), np.float32), "Q4_K")
    with pytest.raises(ValueError, match=r"Q4_K data for shape \(3, 256\) must be 432 bytes, got 288"):
        dequantize_tensor(raw, "Q4_K", (3, 256))
    with pytest.raises(ValueError, match=r"Q4_K stores blocks of 256.*\(2, 128\)"):
        dequantize_tensor(raw, "Q4_K", (2, 128))
    with pytest.raises(ValueError, match="unknown ggml type 'Q4_X'"):
        dequantize_tensor(raw, "Q4_X", (2, 256))
    with pytest.raises(ValueError, match="at least one dimension"):
        dequantize_tensor(raw, "Q4_K", ())
    with pytest.raises(TypeError, match="shape must be"):
        dequantize_tensor(raw, "Q4_K", 256)
