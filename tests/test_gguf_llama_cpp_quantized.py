"""Quantized GGUF files from peftcpp, loaded by llama.cpp (llama-cpp-python).

(1) Every file type, every architecture: the file peftcpp.gguf.quantize
writes loads in llama.cpp, and llama.cpp's logits equal those of a
dequantizing reader of the same file (peftcpp's GGUF importer, or
transformers' GGUF loader for gpt2/phi3). Tolerance 8e-2 relative (max|a-b| /
max|b|): llama.cpp also quantizes the activations (to Q8) for quantized
matmuls, which the dequantizing reader does not.

(2) The embedded default model (SmolLM2-135M-Instruct) with a LoRA adapter,
fused, converted to f16 and quantized to Q4_K_M: llama.cpp's logits against
peftcpp's fused float model on a natural prompt: f16 within 1e-2 relative;
Q8_0 top-1 token equal on at least 90% of the positions; the Q4_K_M file
byte-identical to llama.cpp's own quantizer's, with its top-1 agreement
reported (at least 80%; see the test for why not 95% on this model)."""
import os

import numpy as np
import pytest
import torch
import transformers

import peftcpp
import peftcpp.export
from peftcpp.gguf import GGUFFile, convert, quantize
from helpers import rel_err
from test_gguf_export import ARCHS, PROMPT, hf_case, llama_cpp
from test_gguf_quantize import llama_quantize


def llama_logits(path, ids, n_ctx=64):
    llm = llama_cpp().Llama(model_path=path, logits_all=True, n_ctx=n_ctx, verbose=False, n_threads=2)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    llm.close()
    return out

# The reader on the other side: peftcpp's GGUF importer (its dequantizers are
# bit-identical to the gguf package's) where it knows the architecture, else
# transformers' GGUF loader (which mis-reads gemma3 and fails on qwen3).
OWN_READER = ("llama", "mistral", "qwen2", "qwen3", "gemma3")
FILE_TYPES = ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q5_K_S", "Q3_K_M", "Q6_K", "Q8_0", "Q4_0", "Q5_1"]
TOL = 8e-2


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf_quantized")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_file_type_loads_in_llama_cpp(workdir, arch):
    folder, tok, model = hf_case(workdir, arch)
    f16 = str(workdir / f"{arch}.f16.gguf")
    convert(folder, f16, outtype="f16", progress=False)
    worst = {}
    for ftype in FILE_TYPES:
        path = str(workdir / f"{arch}.{ftype}.gguf")
        quantize(f16, path, ftype, progress=False)
        with GGUFFile(path) as g:
            assert g.metadata["general.file_type"] == peftcpp._core.gguf_file_type_id(ftype)
        if arch in OWN_READER:
            want = peftcpp.AutoModelForCausalLM.from_pretrained(path)(
                peftcpp.tensor(np.asarray(PROMPT))).logits.numpy()[0]
        else:
            ref = transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(path),
                                                                   gguf_file=os.path.basename(path))
            with torch.no_grad():
                want = ref(torch.tensor(PROMPT)).logits[0].float().numpy()
        got = llama_logits(path, PROMPT[0])
        assert np.isfinite(got).all()
        worst[ftype] = rel_err(got, want)
    print(f"[{arch}] llama.cpp vs a dequantizing reader, same file:",
          ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    bad = {k: v for k, v in worst.items() if v > TOL}
    assert not bad, f"{arch}: llama.cpp and transformers read these files differently: {bad}"


PASSAGE = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
           "Explain in a few sentences why the sky is blue during the day and red at sunset, and what "
           "Rayleigh scattering has to do with it.<|im_end|>\n<|im_start|>assistant\n"
           "The sky looks blue because sunlight is scattered by the molecules of the air. Blue light has a "
           "shorter wavelength than red light, so it is scattered much more strongly, and it reaches our eyes "
           "from every direction of the sky.")


def test_default_model_fused_f16_and_q4_k_m_in_llama_cpp(workdir):
    from peftcpp import LoraConfig, get_peft_model
    from peftcpp.app.default_model import default_model_path
    base = peftcpp.AutoModelForCausalLM.from_pretrained(default_model_path(), dtype="float32")
    tok = peftcpp.AutoTokenizer.from_pretrained(base.name_or_path)
    peftcpp.manual_seed(0)  # lora_A's init: the same adapter whatever ran before
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    rng = np.random.default_rng(0)
    for name, p in peft_model.named_parameters():  # a fine-tuned adapter: B away from zero
        if "lora_B" in name:
            with peftcpp.no_grad():
                p.numpy()[...] = rng.normal(0, 0.02, size=tuple(p.shape))
    ids = tok(PASSAGE)["input_ids"]
    assert len(ids) > 60
    ours = peft_model(input_ids=peftcpp.tensor(np.asarray([ids]))).logits.numpy()[0]
    fused = peftcpp.export.fuse(peft_model, str(workdir / "fused"))

    f16 = str(workdir / "smollm2-fused.f16.gguf")
    convert(fused, f16, outtype="f16", progress=False)
    got = llama_logits(f16, ids, n_ctx=256)
    err = rel_err(got, ours)
    assert err < 1e-2, f"f16: llama.cpp vs peftcpp relative error {err:.3g}"

    q4 = str(workdir / "smollm2-fused.Q4_K_M.gguf")
    quantize(f16, q4, "Q4_K_M", progress=False)
    # The file is llama.cpp's own Q4_K_M, byte for byte ...
    ref = llama_quantize(f16, str(workdir / "smollm2-fused.Q4_K_M.llama.gguf"), 15)
    with open(q4, "rb") as a, open(ref, "rb") as b:
        assert a.read() == b.read(), "Q4_K_M file differs from llama_model_quantize's"
    # ... so its top-1 agreement with the float model is Q4_K_M's own on this
    # model. SmolLM2-135M ships as Q4_1 and its hidden size (576) sends most
    # tensors to the Q5_0 fallback: a second rounding onto another grid,
    # measured at 83-85% agreement (Q8_0: 93-97% depending on the adapter,
    # f16: 99%); the bounds below leave room for llama.cpp's CPU kernels.
    gq = llama_logits(q4, ids, n_ctx=256)
    agree = float((gq.argmax(-1) == ours.argmax(-1)).mean())
    print(f"[default model fused] f16 rel err {err:.3g}; Q4_K_M top-1 agreement {agree:.1%} over {len(ids)} tokens")
    assert agree >= 0.80, f"Q4_K_M: top-1 agreement {agree:.1%} < 80%"
    q8 = str(workdir / "smollm2-fused.Q8_0.gguf")
    quantize(f16, q8, "Q8_0", progress=False)
    agree8 = float((llama_logits(q8, ids, n_ctx=256).argmax(-1) == ours.argmax(-1)).mean())
    print(f"[default model fused] Q8_0 top-1 agreement {agree8:.1%}")
    assert agree8 >= 0.90, f"Q8_0: top-1 agreement {agree8:.1%} < 90%"


def test_smollm3_nope_layers_in_llama_cpp(workdir):
    """SmolLM3 (DonkeyTune's 3B option): llama with no RoPE on every 4th
    layer. 8 layers so layers 3 and 7 are NoPE; f16 export read by
    llama.cpp's smollm3 architecture against peftcpp's float model (which
    matches transformers, tests/test_models_archs.py) within 1e-2."""
    from test_gguf_export import make_hf_tokenizer
    folder = str(workdir / "hf-smollm3")
    tok = make_hf_tokenizer("llama-bpe", folder)
    torch.manual_seed(0)
    cfg = transformers.SmolLM3Config(vocab_size=len(tok) + 3, hidden_size=64, intermediate_size=128,
                                     num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=2,
                                     max_position_embeddings=256, rope_theta=1e5, tie_word_embeddings=True,
                                     bos_token_id=0, eos_token_id=2, pad_token_id=2)
    assert [i for i, r in enumerate(cfg.no_rope_layers) if not r] == [3, 7]
    model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    path = str(workdir / "smollm3.f16.gguf")
    convert(folder, path, outtype="f16", progress=False)
    with GGUFFile(path) as g:
        assert g.metadata["general.architecture"] == "smollm3"
    ids = [3, 17, 101, 250, 7, 42, 99, 5, 300, 12, 64, 201, 8, 150] * 3
    ours = peftcpp.AutoModelForCausalLM.from_pretrained(folder)(peftcpp.tensor(np.asarray([ids]))).logits.numpy()[0]
    with torch.no_grad():
        assert rel_err(ours, model(torch.tensor([ids])).logits[0].numpy()) < 1e-4
    err = rel_err(llama_logits(path, ids), ours)
    print(f"[smollm3 f16] llama.cpp vs peftcpp {err:.3g}")
    assert err < 1e-2, f"smollm3: llama.cpp logits relative error {err:.3g}"
