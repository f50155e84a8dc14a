"""Paths read from files stay inside the folder they came from: the shard
names of model.safetensors.index.json (model loading and GGUF conversion)
and the validation data `peftcpp test` takes its prompts from."""
import json
import os
import shutil

import pytest

import peftcpp
from peftcpp import gguf
from peftcpp.fileio import path_inside, safetensors_index_shards
from test_cli import make_tiny_model

SECRET = "TOPSECRET-0123456789"
INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A tiny Llama saved in shards (with its tokenizer), and a foreign folder beside it."""
    import transformers
    root = tmp_path_factory.mktemp("paths")
    single = make_tiny_model(root / "single", hidden=32, layers=2)
    folder = root / "sharded"
    transformers.AutoModelForCausalLM.from_pretrained(single).save_pretrained(folder, max_shard_size="20KB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(single, f), folder / f)
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "secret.safetensors").write_text(SECRET * 50)
    return folder, foreign


def hostile_copy(src, dst, shard_name, link=None):
    """src with its first weight_map entry pointing at shard_name."""
    shutil.copytree(src, dst)
    index = json.loads((dst / INDEX).read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard_name
    (dst / INDEX).write_text(json.dumps(index))
    (dst / "sub").mkdir()
    if link:
        os.symlink(link, dst / "linked")
    return first


def _up(foreign, dst):
    return os.path.relpath(foreign / "secret.safetensors", dst)


HOSTILE = [  # each names the foreign file as it lies
    ("absolute", lambda foreign, dst: str(foreign / "secret.safetensors"), None, "is an absolute path"),
    ("dotdot", _up, None, "leads outside"),
    ("inner-dotdot", lambda foreign, dst: "sub/../" + _up(foreign, dst), None, "leads outside"),
    ("linked-folder", lambda foreign, dst: "linked/secret.safetensors", True, "resolves outside"),
]
# what the safetensors reader would quote from the foreign file: its first 8 bytes as the header length
LEAK = str(int.from_bytes(SECRET[:8].encode(), "little"))


@pytest.mark.parametrize("case,name,link,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("reader", ["from_pretrained", "gguf.convert"])
def test_shard_names_outside_the_model_folder_are_refused(sharded, tmp_path, case, name, link, reason, reader):
    folder, foreign = sharded
    dst = tmp_path / "model"
    shard = name(foreign, dst)
    tensor = hostile_copy(folder, dst, shard, link=str(foreign) if link else None)
    assert os.path.isfile(dst / shard)  # the name reaches the foreign file
    with pytest.raises(Exception) as e:
        if reader == "from_pretrained":
            peftcpp.AutoModelForCausalLM.from_pretrained(str(dst))
        else:
            gguf.convert(str(dst), str(tmp_path / "out.gguf"), outtype="f16")
    msg = str(e.value)
    assert "\n" not in msg and SECRET[:8] not in msg and LEAK not in msg
    assert msg.startswith(f"{dst / INDEX}: weight_map[{tensor!r}] = {shard!r} {reason}"), msg
    assert not (tmp_path / "out.gguf").exists()


def test_shards_inside_the_folder_still_load(sharded, tmp_path):
    """Sub-folders, and shard files that are symbolic links (as in the
    Hugging Face cache's snapshot folders) are inside."""
    folder, _ = sharded
    snap, blobs = tmp_path / "snapshot", tmp_path / "blobs"
    snap.mkdir()
    blobs.mkdir()
    for f in os.listdir(folder):
        shutil.copy(folder / f, blobs / f)
        os.symlink(os.path.join("..", "blobs", f), snap / f)
    assert len(safetensors_index_shards(snap / INDEX)) > 1
    want = peftcpp.AutoModelForCausalLM.from_pretrained(str(folder))(
        [[1, 2, 3]]).logits.numpy()
    got = peftcpp.AutoModelForCausalLM.from_pretrained(str(snap))([[1, 2, 3]]).logits.numpy()
    assert (got == want).all()
    gguf.convert(str(snap), str(tmp_path / "out.gguf"), outtype="f16")
    assert os.path.getsize(tmp_path / "out.gguf") > 0
    # a shard in a sub-folder
    assert path_inside(str(snap), "sub/x.safetensors", "x") == os.path.join(str(snap), "sub", "x.safetensors")


def test_malformed_index_names_the_file(tmp_path):
    (tmp_path / INDEX).write_text('{"weight_map": {"a": 5}}')
    with pytest.raises(ValueError, match=r"weight_map\['a'\] = 5 is not a file name"):
        safetensors_index_shards(tmp_path / INDEX)
    (tmp_path / INDEX).write_text('{"metadata": {}}')
    with pytest.raises(ValueError, match=r"index.json: no 'weight_map' object"):
        safetensors_index_shards(tmp_path / INDEX)
