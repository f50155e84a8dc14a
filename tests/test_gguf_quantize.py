"""Whole-file GGUF quantization against llama.cpp's own quantizer.

Oracle: ``llama_model_quantize`` from llama-cpp-python (the llama.cpp C API,
no importance matrix). Inputs are tiny random llama-architecture GGUF files
written with the ``gguf`` package's GGUFWriter: hidden 256 (K-quants apply),
hidden 576 (K-quant -> legacy fallbacks, like SmolLM2-135M) and hidden 80
(not a multiple of 32: F16 fallback); 16 layers so the use_more_bits and
i < n/16 patterns show; tied and untied output. For every file type, the
two outputs must agree exactly: tensor names and order, per-tensor types,
tensor bytes, general.file_type, and the whole file byte for byte
(tolerance: none).
"""
import ctypes
import os

import numpy as np
import pytest

import gguf  # the PyPI gguf package: writes the inputs, reads both outputs

from peftcpp import _core  # noqa: E402
from peftcpp.gguf.file_quantization import FILE_TYPES, quantize, tensor_types  # noqa: E402


def _llama_cpp():
    try:
        import llama_cpp
    except Exception as e:  # noqa: BLE001 - any import failure means no oracle
        pytest.fail("llama-cpp-python (module llama_cpp) is required as the reference quantizer for these tests "
                    f"and could not be imported: {e!r}. Install it (pip install llama-cpp-python).")
    return llama_cpp


def make_llama_gguf(path, *, hidden, n_layer, n_ff, n_head, n_kv, vocab=64, dtype=np.float32, tied=False, seed=0):
    """A minimal llama-architecture model file llama.cpp will load."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // n_head)
    w.add_file_type({np.float32: 0, np.float16: 1}.get(dtype, 32))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    toks = [f"t{i}" for i in range(vocab - 2)] + ["<s>", "</s>"]
    w.add_token_list(toks)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(["t 1", "t 2"])
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)
    head_dim = hidden // n_head

    def mat(rows, cols):  # numpy shape (rows, cols) -> ggml ne = [cols, rows]
        m = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        if dtype == "bf16":  # top half of the float32 bits (truncation is fine for an input)
            return (m.view(np.uint32) >> 16).astype(np.uint16)
        return m.astype(dtype)

    def add(name, arr):
        if arr.dtype == np.uint16:
            w.add_tensor(name, arr, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, arr)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    # Written in HF order (not llama.cpp's sorted order), so the reorder is exercised.
    add("token_embd.weight", mat(vocab, hidden))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(hidden))
        add(p + "attn_q.weight", mat(n_head * head_dim, hidden))
        add(p + "attn_k.weight", mat(n_kv * head_dim, hidden))
        add(p + "attn_v.weight", mat(n_kv * head_dim, hidden))
        add(p + "attn_output.weight", mat(hidden, n_head * head_dim))
        w.add_tensor(p + "ffn_norm.weight", norm(hidden))
        add(p + "ffn_gate.weight", mat(n_ff, hidden))
        add(p + "ffn_up.weight", mat(n_ff, hidden))
        add(p + "ffn_down.weight", mat(hidden, n_ff))
    w.add_tensor("output_norm.weight", norm(hidden))
    if not tied:
        add("output.weight", mat(vocab, hidden))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def llama_quantize(src, dst, ftype, nthread=2, allow_requantize=False):
    lc = _llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    params.allow_requantize = allow_requantize
    rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize failed ({rc}) on {src}"
    return str(dst)


def read_gguf(path):
    r = gguf.GGUFReader(str(path))
    tensors = [(t.name, t.tensor_type.name, np.asarray(t.data).tobytes()) for t in r.tensors]
    file_type = int(r.fields["general.file_type"].parts[-1][0])
    return tensors, file_type


MODELS = {
    # name: (hidden, n_layer, n_ff, n_head, n_kv, dtype, tied)
    "h256_f32": (256, 16, 512, 4, 2, np.float32, False),
    "h256_f16_tied": (256, 16, 512, 4, 1, np.float16, True),
    "h576_f16": (576, 4, 512, 9, 3, np.float16, False),
    "h576_f32_tied": (576, 4, 512, 9, 3, np.float32, True),
    "h80_f32": (80, 2, 96, 2, 1, np.float32, False),
    "h256_bf16_tied": (256, 8, 512, 4, 2, "bf16", True),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant_models")
    out = {}
    for seed, (name, (h, nl, ff, nh, nkv, dt, tied)) in enumerate(MODELS.items()):
        out[name] = make_llama_gguf(d / f"{name}.gguf", hidden=h, n_layer=nl, n_ff=ff, n_head=nh, n_kv=nkv,
                                    dtype=dt, tied=tied, seed=seed)
    return out


def assert_same_as_llama_cpp(src, ftype_name, tmp_path, nthreads=2):
    ftype = FILE_TYPES[ftype_name]
    ref = llama_quantize(src, tmp_path / "ref.gguf", ftype)
    ours = quantize(src, tmp_path / "ours.gguf", ftype_name, nthreads=nthreads, progress=False)
    ref_t, ref_ft = read_gguf(ref)
    our_t, our_ft = read_gguf(ours)
    assert our_ft == ref_ft == ftype
    assert [t[0] for t in our_t] == [t[0] for t in ref_t], "tensor order differs"
    assert [(t[0], t[1]) for t in our_t] == [(t[0], t[1]) for t in ref_t], "tensor types differ"
    bad = [t[0] for t, r in zip(our_t, ref_t) if t[2] != r[2]]
    assert not bad, f"{len(bad)}/{len(ref_t)} tensors differ from llama.cpp, first: {bad[:5]}"
    # The plan API agrees with what was written.
    assert tensor_types(src, ftype_name) == [(t[0], t[1]) for t in ref_t]
    # Whole file: header, KV order/types, offsets and padding included.
    with open(ref, "rb") as a, open(ours, "rb") as b:
        assert a.read() == b.read(), "files differ outside the tensor data"
    return ref_t


K_FTYPES = ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q3_K_S", "Q3_K_L", "Q2_K", "Q6_K"]
LEGACY_FTYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "F16", "BF16", "F32"]


@pytest.mark.parametrize("ftype", K_FTYPES + LEGACY_FTYPES)
def test_h256_matches_llama_cpp(models, ftype, tmp_path):
    ref = assert_same_as_llama_cpp(models["h256_f32"], ftype, tmp_path)
    types = dict((n, t) for n, t, _ in ref)
    if ftype == "Q4_K_M":  # the rules really did something
        assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
        # use_more_bits(i, 16): 0, 1, 4, 7, 10, 13, 14, 15
        more = {i for i in range(16) if types[f"blk.{i}.ffn_down.weight"] == "Q6_K"}
        assert more == {0, 1, 4, 7, 10, 13, 14, 15}
        assert {i for i in range(16) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"} == more


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q3_K_M", "Q2_K", "Q6_K", "Q8_0", "Q4_0"])
def test_h256_f16_tied_matches_llama_cpp(models, ftype, tmp_path):
    ref = assert_same_as_llama_cpp(models["h256_f16_tied"], ftype, tmp_path)
    if ftype == "Q4_K_M":  # tied embeddings take the output rule
        assert dict((n, t) for n, t, _ in ref)["token_embd.weight"] == "Q6_K"


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q2_K", "Q6_K", "Q8_0", "Q4_0"])
@pytest.mark.parametrize("model", ["h576_f16", "h576_f32_tied"])
def test_h576_fallbacks_match_llama_cpp(models, model, ftype, tmp_path):
    ref = assert_same_as_llama_cpp(models[model], ftype, tmp_path)
    types = dict((n, t) for n, t, _ in ref)
    if ftype == "Q4_K_M":
        assert types["blk.1.attn_q.weight"] == "Q5_0"     # Q4_K -> Q5_0
        assert types["blk.1.ffn_down.weight"] == "Q4_K"   # ne0 = n_ff = 512 keeps the K-quant
        assert types["blk.2.attn_v.weight"] == "Q8_0"     # use_more_bits(2, 4): Q6_K -> Q8_0


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q3_K_M", "Q8_0", "Q4_0"])
def test_h80_f16_fallback_matches_llama_cpp(models, ftype, tmp_path):
    ref = assert_same_as_llama_cpp(models["h80_f32"], ftype, tmp_path)
    assert dict((n, t) for n, t, _ in ref)["blk.0.attn_q.weight"] == "F16"


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q8_0", "F16", "F32"])
def test_bf16_input_matches_llama_cpp(models, ftype, tmp_path):
    src_types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(models["h256_bf16_tied"]).tensors}
    assert src_types["blk.0.attn_q.weight"] == "BF16"
    ref = assert_same_as_llama_cpp(models["h256_bf16_tied"], ftype, tmp_path)
    assert dict((n, t) for n, t, _ in ref)["blk.0.attn_norm.weight"] == "F32"


def test_thread_count_does_not_change_bytes(models, tmp_path):
    src = models["h256_f32"]
    a = quantize(src, tmp_path / "a.gguf", "Q4_K_M", nthreads=1, progress=False)
    b = quantize(src, tmp_path / "b.gguf", "Q4_K_M", nthreads=3, progress=True)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()


def test_requantize_from_quantized_source(models, tmp_path):
    # Q8_0 -> Q4_K_M: quantized sources are dequantized to float32 first, as
    # llama.cpp does when allowed to requantize (it refuses by default; we don't).
    q8 = llama_quantize(models["h576_f16"], tmp_path / "q8.gguf", FILE_TYPES["Q8_0"])
    ours = quantize(q8, tmp_path / "q4.gguf", "Q4_K_M", progress=False)
    ref = llama_quantize(q8, tmp_path / "ref.gguf", FILE_TYPES["Q4_K_M"], allow_requantize=True)
    with open(ref, "rb") as a, open(ours, "rb") as b:
        assert a.read() == b.read()
    assert ("blk.2.ffn_down.weight", "Q6_K") in tensor_types(q8, "Q4_K_M")  # use_more_bits(2, 4)


def test_plan_api_and_ftype_errors(models, tmp_path):
    plan = _core.gguf_tensor_types(models["h256_f32"], "q4_k_m")
    names = [n for n, _ in plan]
    # Non-block tensors first (sorted), then blk.0.*, blk.1.*, ..., blk.10.* after blk.9.*.
    assert names[:3] == ["output.weight", "output_norm.weight", "token_embd.weight"]
    assert names.index("blk.10.attn_k.weight") > names.index("blk.9.ffn_up.weight")
    assert _core.gguf_tensor_types(models["h256_f32"], 15) == plan
    with pytest.raises(ValueError, match="Q4_K_M"):
        quantize(models["h256_f32"], tmp_path / "x.gguf", "Q4_K_X", progress=False)
    with pytest.raises(ValueError, match="valid"):
        _core.quantize_gguf(models["h256_f32"], str(tmp_path / "x.gguf"), 5)
    with pytest.raises(TypeError):
        quantize(models["h256_f32"], tmp_path / "x.gguf", 1.5, progress=False)
    assert not (tmp_path / "x.gguf").exists()


def test_adapter_and_garbage_inputs_leave_no_file(tmp_path):
    adapter = tmp_path / "adapter.gguf"
    w = gguf.GGUFWriter(str(adapter), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 16.0)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 256), np.float32))
    w.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((256, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out.gguf"
    with pytest.raises(ValueError, match="adapter"):
        quantize(adapter, out, progress=False)
    assert not out.exists()

    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="garbage.gguf"):
        quantize(garbage, out, progress=False)
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        quantize(tmp_path / "missing.gguf", out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["adapter.gguf", "garbage.gguf"]


def test_progress_callback_error_and_unconvertible_tensor_leave_no_file(models, tmp_path):
    out = tmp_path / "out.gguf"
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done == 3:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        _core.quantize_gguf(models["h80_f32"], str(out), "Q4_K_M", 1, progress)
    assert seen == [(1, 21), (2, 21), (3, 21)] and not out.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind either

    # A 2-D "weight" stored as I32 is quantizable by name but cannot be converted.
    bad = tmp_path / "i32.gguf"
    w = gguf.GGUFWriter(str(bad), "llama")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((32, 256), np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(TypeError, match="blk.0.attn_q.weight.*I32"):
        quantize(bad, out, progress=False)
    assert not out.exists()
