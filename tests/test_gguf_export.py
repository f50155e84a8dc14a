"""HF folder -> GGUF export (peftcpp.gguf.convert), checked against three
independent readers: the PyPI ``gguf`` package (every key, its GGUF type,
tensor names/types/shapes), a round trip back to transformers (peftcpp's own
GGUF importer for llama/qwen2/qwen3/gemma3, transformers' GGUF loader for
gpt2/phi3), and llama.cpp itself (llama-cpp-python: logits and tokenization).

Tolerances (max|a-b| / max|b| over the logits): f32 1e-5, f16/bf16 1e-2,
q8_0 5e-2. Tiny random models (2-6 layers, hidden 64) with tiny trained
byte-level BPE tokenizers of each pre-tokenizer family."""
import os

import numpy as np
import pytest

import gguf
import torch
import transformers

import peftcpp
from peftcpp.gguf import import_model as gi
from peftcpp.gguf.import_tokenizer import build_tokenizer, build_tokenizer_config
from peftcpp.gguf.names import unpermute_qk
from peftcpp.gguf import GGUFExportError, GGUFFile, convert
from peftcpp.gguf.convert import permute_qk
from helpers import rel_err
from test_gguf_import import TEST_STRINGS, make_hf_tokenizer, tiny_model as import_tiny_model

ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma3", "gpt2", "phi3"]
GGUF_ARCH = {"mistral": "llama"}
# tokenizer family per arch (the pre-tokenizer written as tokenizer.ggml.pre)
FAMILY = {"llama": "llama-bpe", "mistral": "smollm", "qwen2": "qwen2", "qwen3": "qwen2", "gemma3": "smollm",
          "gpt2": "gpt-2", "phi3": "smollm"}
TIED = {"llama": False, "mistral": False, "qwen2": True, "qwen3": False, "gemma3": True, "gpt2": True, "phi3": False}
PROMPT = [[3, 17, 101, 250, 7, 42, 99, 5, 300, 12, 64, 201, 8, 150]]
TOL = {"f32": 1e-5, "f16": 1e-2, "bf16": 1e-2, "q8_0": 5e-2}


def tiny_model(arch, vocab_size, tie, seed=0):
    """test_gguf_import's tiny model with a 6-layer Gemma 3 of head_dim 16, and only the norms around 1."""
    return import_tiny_model(arch, vocab_size, tie, seed, gemma3_layers=6, gemma3_head_dim=16,
                             norms_only_around_one=True)


_CACHE = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf_export")


def hf_case(workdir, arch, pad_vocab=3):
    """(folder, hf tokenizer, transformers model) of a tiny checkpoint, built once per module."""
    if arch not in _CACHE or not os.path.isdir(_CACHE[arch][0]):
        folder = str(workdir / f"hf-{arch}")
        tok = make_hf_tokenizer(FAMILY[arch], folder)
        if arch == "phi3":  # llama.cpp looks these up by text in models named like Phi-3
            tok.add_special_tokens({"additional_special_tokens": ["<|end|>", "<unk>", "<s>", "</s>"]})
            tok.save_pretrained(folder)
        model = tiny_model(arch, len(tok) + pad_vocab, TIED[arch])
        model.save_pretrained(folder)
        _CACHE[arch] = (folder, tok, model)
    return _CACHE[arch]


def exported(workdir, arch, outtype):
    folder, tok, model = hf_case(workdir, arch)
    path = str(workdir / f"{arch}.{outtype}.gguf")
    if not os.path.isfile(path):
        convert(folder, path, outtype=outtype, progress=False)
    return path, folder, tok, model


def round_like_file(arch, name, w, outtype):
    """A checkpoint weight as the GGUF file stores it (matrices in the
    outtype, everything else F32), back in float32: the exact weights a
    reader of the file sees."""
    if outtype == "f32" or w.ndim != 2 or "wpe" in name:
        return w
    conv = arch == "gpt2" and any(k in name for k in ("c_attn", "c_proj", "c_fc"))
    a = (w.T if conv else w).detach().float().contiguous()
    if outtype == "f16" or (outtype == "q8_0" and a.shape[1] % 32):
        a = a.half().float()
    elif outtype == "bf16":
        a = a.bfloat16().float()
    else:
        q = gguf.quants.quantize(a.numpy(), gguf.GGMLQuantizationType.Q8_0)
        a = torch.tensor(gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0).reshape(a.shape))
    return a.T.contiguous() if conv else a


def rounded_case(workdir, arch, outtype):
    """(folder, transformers model) of the checkpoint with the file's rounding applied."""
    folder, tok, model = hf_case(workdir, arch)
    if outtype == "f32":
        return folder, model
    key = (arch, outtype)
    if key not in _CACHE:
        out = str(workdir / f"hf-{arch}-{outtype}")
        m = tiny_model(arch, model.config.vocab_size, TIED[arch])
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(round_like_file(arch, n, dict(model.named_parameters())[n], outtype))
        m.save_pretrained(out)
        tok.save_pretrained(out)
        _CACHE[key] = (out, m)
    return _CACHE[key]


def ref_logits(model, ids=PROMPT):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits[0].numpy()


def field_value(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


U32, F32, STR, BOOL, ARR = (gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.STRING,
                            gguf.GGUFValueType.BOOL, gguf.GGUFValueType.ARRAY)
EPS = {"gpt2": "attention.layer_norm_epsilon"}


# ------------------------------------------------------------ (a) metadata
@pytest.mark.parametrize("arch", ARCHS)
def test_metadata_and_tensors(workdir, arch):
    path, folder, tok, model = exported(workdir, arch, "f16")
    g = GGUF_ARCH.get(arch, arch)
    r = gguf.GGUFReader(path)
    types = {k: [t for t in f.types] for k, f in r.fields.items()}
    want = {"general.architecture": [STR], "general.type": [STR], "general.name": [STR],
            "general.file_type": [U32], "general.quantization_version": [U32],
            f"{g}.context_length": [U32], f"{g}.embedding_length": [U32], f"{g}.block_count": [U32],
            f"{g}.feed_forward_length": [U32], f"{g}.attention.head_count": [U32],
            f"{g}.{EPS.get(g, 'attention.layer_norm_rms_epsilon')}": [F32],
            "tokenizer.ggml.model": [STR], "tokenizer.ggml.pre": [STR], "tokenizer.ggml.tokens": [ARR, STR],
            "tokenizer.ggml.token_type": [ARR, gguf.GGUFValueType.INT32], "tokenizer.ggml.merges": [ARR, STR],
            "tokenizer.ggml.bos_token_id": [U32], "tokenizer.ggml.eos_token_id": [U32],
            "tokenizer.ggml.add_bos_token": [BOOL], "tokenizer.chat_template": [STR]}
    if g != "gpt2":
        want.update({f"{g}.attention.head_count_kv": [U32], f"{g}.rope.freq_base": [F32]})
    if g in ("llama", "phi3"):
        want[f"{g}.rope.dimension_count"] = [U32]
    if g in ("qwen3", "gemma3"):
        want.update({f"{g}.attention.key_length": [U32], f"{g}.attention.value_length": [U32]})
    if g == "gemma3":
        want.update({"gemma3.attention.sliding_window": [U32], "gemma3.rope.freq_base_swa": [F32]})
    for k, t in want.items():
        assert k in types, f"{arch}: key {k} missing"
        assert types[k] == t, f"{arch}: key {k} has type {types[k]}, expected {t}"
    assert field_value(r, "general.architecture") == g
    assert field_value(r, "general.type") == "model"
    assert field_value(r, "general.file_type") == 1
    assert field_value(r, "general.quantization_version") == 2
    assert field_value(r, "tokenizer.ggml.pre") == FAMILY[arch]
    cfg = model.config
    assert field_value(r, f"{g}.block_count") == cfg.num_hidden_layers
    if g == "qwen3":
        assert field_value(r, "qwen3.attention.key_length") == 32
    if g == "gemma3":
        assert field_value(r, "gemma3.attention.sliding_window") == 4
        assert field_value(r, "gemma3.rope.freq_base") == 1e6
        assert field_value(r, "gemma3.rope.freq_base_swa") == 1e4

    # tokens: padded to the embedding rows, unique, types as llama.cpp's converter writes them
    tokens = field_value(r, "tokenizer.ggml.tokens")
    ttypes = field_value(r, "tokenizer.ggml.token_type")
    n_vocab = model.get_input_embeddings().weight.shape[0]
    assert len(tokens) == n_vocab == len(tok) + 3 and len(set(tokens)) == len(tokens)
    assert tokens[-1] == f"[PAD{n_vocab - 1}]" and ttypes[-1] == gguf.TokenType.UNUSED
    vocab = tok.get_vocab()
    assert ttypes[vocab["<|im_end|>"]] == gguf.TokenType.CONTROL
    assert ttypes[vocab["<tool_call>"]] == gguf.TokenType.USER_DEFINED
    assert ttypes[vocab["a"]] == gguf.TokenType.NORMAL
    assert field_value(r, "tokenizer.ggml.eos_token_id") == vocab["<|im_end|>"]
    assert field_value(r, "tokenizer.chat_template") == tok.chat_template

    # tensors: 32-byte aligned offsets, F32 for 1-D, f16 for matrices, no output.weight when tied
    names = {t.name: t for t in r.tensors}
    assert ("output.weight" in names) == (not TIED[arch])
    assert r.alignment == 32 if hasattr(r, "alignment") else True
    off = 0
    for t in r.tensors:
        assert t.data_offset % 32 == 0
        assert int(t.data_offset - r.tensors[0].data_offset) == off, t.name
        off += (int(t.n_bytes) + 31) // 32 * 32
        is_vec = len(t.shape) == 1
        want_type = gguf.GGMLQuantizationType.F32 if is_vec or t.name.startswith("position_embd") \
            else gguf.GGMLQuantizationType.F16
        assert t.tensor_type == want_type, f"{t.name}: {t.tensor_type.name}"
    assert names["token_embd.weight"].shape.tolist() == [64, n_vocab]  # ne order
    n_blocks = sum(1 for n in names if n.startswith("blk.0."))
    assert n_blocks == {"llama": 9, "qwen2": 12, "qwen3": 11, "gemma3": 13, "gpt2": 12, "phi3": 6}[g]

    # our own reader agrees
    with GGUFFile(path) as f:
        assert f.metadata["general.architecture"] == g
        assert f.metadata_types[f"{g}.block_count"] == "UINT32"
        infos = {t.name: t for t in f.tensors}
        assert infos["token_embd.weight"].shape == (n_vocab, 64)
        assert infos["token_embd.weight"].type == "F16"


def test_permute_is_inverse_of_importer(rng):
    for n_head, rows in ((4, 64), (2, 32)):
        w = rng.standard_normal((rows, 8)).astype(np.float32)
        p = permute_qk(w, n_head)
        assert not np.array_equal(p, w)
        np.testing.assert_array_equal(unpermute_qk(p, n_head), w)
        b = rng.standard_normal(rows).astype(np.float32)
        np.testing.assert_array_equal(unpermute_qk(permute_qk(b, n_head), n_head), b)


# --------------------------------------------------------- (b) round trip
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("outtype", ["f32", "bf16", "q8_0"])
def test_round_trip_logits(workdir, arch, outtype):
    """Reading the file back gives exactly the checkpoint's weights as rounded
    to the file's type (1e-5), and logits within the type's tolerance of the
    original model."""
    path, folder, tok, model = exported(workdir, arch, outtype)
    _, rounded = rounded_case(workdir, arch, outtype)
    g = GGUF_ARCH.get(arch, arch)
    if g in gi.SUPPORTED_ARCHS:
        out = str(workdir / f"imp-{arch}-{outtype}")
        gi.import_gguf(path, out)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    else:  # transformers' own GGUF loader (undoes the Conv1D transpose itself)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
    got = ref_logits(loaded)
    err = rel_err(got, ref_logits(rounded))
    print(f"[round trip {arch} {outtype}] vs rounded {err:.3g}, vs original {rel_err(got, ref_logits(model)):.3g}")
    assert err <= 1e-5, f"{arch} {outtype}: logits relative error {err:.3g} vs the rounded checkpoint"
    err = rel_err(got, ref_logits(model))
    assert err <= TOL[outtype] * (5 if outtype == "bf16" else 1), f"{arch} {outtype}: error {err:.3g} vs original"


def test_q8_0_bytes_match_gguf_package(workdir):
    """q8_0 tensors are byte-identical to the gguf package's reference quantizer."""
    path, folder, tok, model = exported(workdir, "qwen2", "q8_0")
    r = gguf.GGUFReader(path)
    names = {t.name: t for t in r.tensors}
    t = names["blk.0.attn_q.weight"]
    assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
    w = model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    want = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0)
    assert bytes(np.asarray(t.data).reshape(-1)) == bytes(want.reshape(-1))


def test_in_memory_peftcpp_model(workdir):
    folder, tok, model = hf_case(workdir, "qwen2")
    pm = peftcpp.AutoModelForCausalLM.from_pretrained(folder)
    ptok = peftcpp.AutoTokenizer.from_pretrained(folder)
    path = str(workdir / "inmem.gguf")
    convert(pm, path, outtype="f32", progress=False, tokenizer=ptok)
    base = gguf.GGUFReader(exported(workdir, "qwen2", "f32")[0])
    r = gguf.GGUFReader(path)
    for a, b in zip(base.tensors, r.tensors):
        assert a.name == b.name
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


# ---------------------------------------------------------- (c) llama.cpp
def llama_cpp():
    try:
        import llama_cpp as lc
    except ImportError as e:  # a hard failure: these tests are the point of the exporter
        pytest.fail(f"llama-cpp-python is needed to check GGUF files against llama.cpp "
                    f"(pip install --no-deps /tmp/lcpwheel/*.whl): {e}")
    return lc


def llama_logits(path, ids, lora_path=None):
    lc = llama_cpp()
    kw = {"lora_path": lora_path} if lora_path else {}
    llm = lc.Llama(model_path=path, logits_all=True, n_ctx=64, verbose=False, n_threads=2, **kw)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    llm.close() if hasattr(llm, "close") else None
    return out


_PEFTCPP_REF = {}


def peftcpp_logits(folder, ids=PROMPT):
    if folder not in _PEFTCPP_REF:
        pm = peftcpp.AutoModelForCausalLM.from_pretrained(folder)
        _PEFTCPP_REF[folder] = pm(np.asarray(ids)).logits.numpy()[0]
    return _PEFTCPP_REF[folder]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("outtype", ["f16", "bf16", "q8_0"])
def test_llama_cpp_logits(workdir, arch, outtype):
    path, folder, tok, model = exported(workdir, arch, outtype)
    rfolder, rounded = rounded_case(workdir, arch, outtype)
    ours = peftcpp_logits(rfolder)
    assert rel_err(ours, ref_logits(rounded)) < 1e-4  # peftcpp itself agrees with transformers
    got = llama_logits(path, PROMPT[0])
    err = rel_err(got, ours)
    print(f"[llama.cpp {arch} {outtype}] vs peftcpp (rounded weights) {err:.3g}, "
          f"vs original {rel_err(got, ref_logits(model)):.3g}")
    assert err <= TOL[outtype], f"{arch} {outtype}: llama.cpp logits relative error {err:.3g}"


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "gemma3"])
def test_llama_cpp_tokenizer(workdir, arch):
    """llama.cpp tokenizes like the HF tokenizer: the pre-tokenizer name we
    picked behaves as the tokenizer.json's own pre-tokenizer."""
    lc = llama_cpp()
    path, folder, tok, model = exported(workdir, arch, "f16")
    llm = lc.Llama(model_path=path, n_ctx=64, verbose=False, n_threads=2, vocab_only=True)
    for text in TEST_STRINGS:
        want = tok(text, add_special_tokens=False).input_ids
        got = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert got == want, f"{arch} ({FAMILY[arch]}): {text!r}: llama.cpp {got} != HF {want}"


def test_llama_cpp_tokenizer_smollm2(workdir):
    """The real SmolLM2 tokenizer (the default model's, offline) in a tiny model."""
    lc = llama_cpp()
    import json
    from peftcpp import _core
    from peftcpp.app.default_model import default_gguf_path

    # Only the tokenizer is needed: rebuilt from the shipped GGUF's metadata (no weights import).
    meta = _core.GGUFFile(default_gguf_path()).metadata
    folder = str(workdir / "smollm2-tok")
    os.makedirs(folder, exist_ok=True)
    build_tokenizer(meta).save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(build_tokenizer_config(meta), f)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(tok) == 49152
    model = tiny_model("llama", len(tok), tie=True)
    model.save_pretrained(folder)
    path = str(workdir / "smollm2-tok.gguf")
    convert(folder, path, outtype="f16", progress=False)
    r = gguf.GGUFReader(path)
    assert field_value(r, "tokenizer.ggml.pre") == "smollm"
    llm = lc.Llama(model_path=path, n_ctx=64, verbose=False, n_threads=2, vocab_only=True)
    texts = TEST_STRINGS + ["Привет, мир! Γειά σου κόσμε. こんにちは世界。 مرحبا بالعالم 12345678",
                            "<|im_start|>system\nYou are helpful.<|im_end|>\n"]
    for text in texts:
        want = tok(text, add_special_tokens=False).input_ids
        got = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert got == want, f"{text!r}: llama.cpp {got} != HF {want}"


# ----------------------------------------------------------- (d) bad input
def _no_output(path):
    d = os.path.dirname(path)
    return not os.path.exists(path) and not [f for f in os.listdir(d) if ".tmp-" in f]


def assert_fails_leaving_nothing(out, match, fn, *args, **kw):
    """fn(*args, **kw) raises GGUFExportError matching `match` and leaves neither
    the file `out` nor a temporary of it (also used by test_gguf_adapter)."""
    with pytest.raises(GGUFExportError, match=match):
        fn(*args, **kw)
    assert _no_output(out)


def test_unsupported_arch(workdir, tmp_path):
    folder, tok, model = hf_case(workdir, "llama")
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in os.listdir(folder):
        os.link(os.path.join(folder, f), bad / f) if f != "config.json" else None
    import json
    cfg = json.load(open(os.path.join(folder, "config.json")))
    cfg["model_type"] = "falcon"
    json.dump(cfg, open(bad / "config.json", "w"))
    out = str(tmp_path / "x.gguf")
    assert_fails_leaving_nothing(out, r"model_type 'falcon'.*supported: llama, mistral, qwen2",
                                 convert, str(bad), out, progress=False)


def test_wrong_tensor_shape(workdir, tmp_path):
    from safetensors.torch import save_file

    folder, tok, model = hf_case(workdir, "qwen2")
    bad = tmp_path / "bad"
    tok.save_pretrained(bad)
    model.config.save_pretrained(bad)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(64, 64)
    save_file(sd, str(bad / "model.safetensors"))
    out = str(tmp_path / "x.gguf")
    assert_fails_leaving_nothing(out, r"model\.layers\.1\.self_attn\.k_proj\.weight.*\(64, 64\)",
                                 convert, str(bad), out, progress=False)


def test_unwritable_output_and_failed_write(workdir, tmp_path):
    folder, tok, model = hf_case(workdir, "llama")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        convert(folder, str(tmp_path / "no-such-dir" / "x.gguf"), progress=False)
    # The native writer itself: a missing folder is an OSError naming the path.
    from peftcpp import _core
    w = _core.GGUFWriter(str(tmp_path / "nope" / "y.gguf"))
    w.set("general.architecture", "llama", "STRING")
    with pytest.raises(OSError, match=r"nope/y\.gguf"):
        w.write()
    # A failure mid-write (here: the progress callback) leaves neither the
    # file nor its temporary, and an older file under the name is untouched.
    out = tmp_path / "z.gguf"
    out.write_bytes(b"old")

    def boom(done, total):
        if done == 3:
            raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError, match="interrupted"):
        convert(folder, str(out), outtype="q8_0", progress=boom)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_writer_value_types(tmp_path):
    from peftcpp import _core
    path = str(tmp_path / "v.gguf")
    w = _core.GGUFWriter(path)
    vals = [("a.u32", 7, "UINT32"), ("a.i32", -7, "INT32"), ("a.f32", 0.5, "FLOAT32"), ("a.b", True, "BOOL"),
            ("a.s", "héllo", "STRING"), ("a.u64", 2**40, "UINT64"), ("a.f64", 0.1, "FLOAT64"),
            ("a.as", ["x", "", "Ġy"], "ARRAY[STRING]"), ("a.ai", [1, -2], "ARRAY[INT32]"),
            ("a.af", np.array([0.25, 2.0], np.float32), "ARRAY[FLOAT32]"), ("a.au", [3, 4], "ARRAY[UINT32]")]
    for k, v, t in vals:
        w.set(k, v, t)
    src = np.arange(64, dtype=np.float32).reshape(2, 32) / 7
    w.add_tensor("t.f32", "F32", src)
    w.add_tensor("t.f16", "F16", src)
    w.add_tensor("t.bf16", "BF16", (src.view(np.uint32) >> 16).astype(np.uint16), bf16=True)
    w.add_tensor("t.q8", "Q8_0", src.astype(np.float16))
    w.add_tensor("t.raw", "F32", src.view(np.uint8).reshape(-1).copy(), shape=[2, 32])
    big = np.sin(np.arange(1024, dtype=np.float32)).reshape(4, 256)
    w.add_tensor("t.q4k", "Q4_K", big)
    with pytest.raises(ValueError, match="t.bad"):
        w.add_tensor("t.bad", "F32", src, shape=[3, 32])
    with pytest.raises(TypeError, match="a.bad"):
        w.set("a.bad", "x", "UINT32")
    with pytest.raises(ValueError, match="unknown GGUF type"):
        w.set("a.bad", 1, "UINT33")
    w.write()
    r = gguf.GGUFReader(path)
    for k, v, t in vals:
        got = field_value(r, k)
        if isinstance(v, float):
            assert got == pytest.approx(v)
        elif isinstance(v, np.ndarray):
            assert got == v.tolist()
        else:
            assert got == v, k
    ts = {t.name: t for t in r.tensors}
    np.testing.assert_array_equal(np.asarray(ts["t.f32"].data), src)
    np.testing.assert_array_equal(np.asarray(ts["t.f16"].data), src.astype(np.float16))
    np.testing.assert_array_equal(np.asarray(ts["t.raw"].data), src)
    assert bytes(np.asarray(ts["t.q8"].data).reshape(-1)) == bytes(
        gguf.quants.quantize(src.astype(np.float16).astype(np.float32), gguf.GGMLQuantizationType.Q8_0).reshape(-1))
    # K-quants go through the engine's quantizer (peftcpp::quantize_rows); the gguf package decodes them
    kq = gguf.quants.dequantize(np.asarray(ts["t.q4k"].data).view(np.uint8), gguf.GGMLQuantizationType.Q4_K)
    assert ts["t.q4k"].tensor_type == gguf.GGMLQuantizationType.Q4_K
    assert rel_err(kq.reshape(4, 256), big) < 0.1
    with GGUFFile(path) as f:
        np.testing.assert_array_equal(f.tensor("t.q4k"), kq.reshape(4, 256))
        np.testing.assert_array_equal(f.tensor("t.bf16"), gguf.quants.dequantize(
            np.asarray(ts["t.bf16"].data).view(np.uint8), gguf.GGMLQuantizationType.BF16).reshape(2, 32))


def test_llama_cpp_tokenizer_sentencepiece_style(workdir):
    """A byte-fallback BPE with '▁' spaces (Llama-2/Gemma style tokenizer.json)
    is written as tokenizer.ggml.model 'llama' with merge-rank scores, and
    llama.cpp's SPM tokenizer then splits text exactly like the HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast
    from test_gguf_import import CORPUS

    lc = llama_cpp()
    tk = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False, special_tokens=[
        "<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)])
    tk.train_from_iterator(CORPUS, trainer)
    tk.add_special_tokens(["<start_of_turn>", "<end_of_turn>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    folder = str(workdir / "spm")
    tok.save_pretrained(folder)
    tiny_model("llama", len(tok), tie=True).save_pretrained(folder)
    path = str(workdir / "spm.gguf")
    convert(folder, path, outtype="f16", progress=False)
    r = gguf.GGUFReader(path)
    assert field_value(r, "tokenizer.ggml.model") == "llama"
    types = field_value(r, "tokenizer.ggml.token_type")
    assert types[tok.convert_tokens_to_ids("<0x41>")] == gguf.TokenType.BYTE
    assert types[tok.convert_tokens_to_ids("<unk>")] == gguf.TokenType.UNKNOWN
    assert types[tok.convert_tokens_to_ids("<end_of_turn>")] == gguf.TokenType.CONTROL
    llm = lc.Llama(model_path=path, n_ctx=64, verbose=False, n_threads=2, vocab_only=True)
    for text in TEST_STRINGS + ["Привет мир 🙂", "<start_of_turn>user\nhi<end_of_turn>"]:
        want = tok(text, add_special_tokens=False).input_ids
        got = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert got == want, f"{text!r}: llama.cpp {got} != HF {want}"


def test_llama3_rope_scaling(workdir, tmp_path):
    """Llama-3.1 rope scaling is written as llama.cpp's rope_freqs tensor;
    peftcpp's importer recovers the same rope_scaling and llama.cpp gives the
    same logits on a prompt longer than the original context."""
    folder, tok, _ = hf_case(workdir, "llama")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok) + 3, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8})
    model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    src = str(tmp_path / "hf")
    model.save_pretrained(src)
    tok.save_pretrained(src)
    path = str(tmp_path / "l3.gguf")
    convert(src, path, outtype="f32", progress=False)
    assert "rope_freqs.weight" in {t.name for t in gguf.GGUFReader(path).tensors}
    out = str(tmp_path / "imp")
    gi.import_gguf(path, out)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = [list(range(3, 40))]
    assert rel_err(ref_logits(loaded, ids), ref_logits(model, ids)) <= 1e-5
    err = rel_err(llama_logits(path, ids[0]), ref_logits(model, ids))
    assert err <= 1e-2, f"llama.cpp with rope_freqs: relative error {err:.3g}"
