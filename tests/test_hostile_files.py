"""Hostile GGUF and safetensors files (issue 12): sizes that wrap past 2^64,
magic bytes and names that are not UTF-8, JSON nested too deep to print.
Each is refused with one line naming the file and the tensor, through the
library (peftcpp.gguf, peftcpp.serialization), through the writers, and
through the command line (`peftcpp quantize`, `peftcpp import-gguf`: exit
status 1, no output left behind). The inputs are the regression seeds of the
C++ fuzzers (tests/fuzz/corpus/, written by tools/make_fuzz_seeds.py)."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from peftcpp import _core, serialization
from peftcpp.gguf import GGUFFile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")

# seed -> the tensor its error must name
WRAPPING = {
    "regress-f32-ne-2p62": "output_norm.weight",
    "regress-f32-ne-2p31x2p31": "t.big",
    "regress-i32-ne-2p31x2p31": "t.big",
    "regress-i64-ne-2p61": "t.big",
    "regress-f32-wraps-to-4-bytes": "output_norm.weight",
}


def seed(name, reader="gguf"):
    return os.path.join(CORPUS, reader, name)


def run(*args, cwd=None):
    """A fresh interpreter (a crash is an exit status, not a dead test run)."""
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):  # a development build: the package is the source tree
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
        env["PEFTCPP_CORE_DIR"] = os.path.abspath(os.environ["PEFTCPP_CORE_DIR"])
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def one_line(text):
    assert "\n" not in text.strip() and "\r" not in text, text
    return text


def test_seed_corpus_is_what_the_generator_writes(tmp_path):
    res = run(os.path.join(ROOT, "tools", "make_fuzz_seeds.py"), "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    for reader in ("gguf", "safetensors"):
        names = sorted(os.listdir(os.path.join(CORPUS, reader)))
        assert names == sorted(os.listdir(tmp_path / reader)) and len(names) >= 8
        for n in names:
            with open(os.path.join(CORPUS, reader, n), "rb") as f:
                assert f.read() == (tmp_path / reader / n).read_bytes(), n
            assert os.path.getsize(os.path.join(CORPUS, reader, n)) <= 4096


@pytest.mark.parametrize("name", sorted(WRAPPING))
def test_gguf_tensor_size_that_wraps_is_refused(name):
    path = seed(name)
    with pytest.raises(ValueError) as ei:
        GGUFFile(path)
    msg = one_line(str(ei.value))
    assert type(ei.value) is ValueError
    assert path in msg and f"tensor '{WRAPPING[name]}'" in msg and "too large" in msg


def test_gguf_valid_seeds_load_every_tensor():
    for name in ("valid-model", "valid-alignment-8", "valid-zero-elements"):
        with GGUFFile(seed(name)) as f:
            assert f.tensors
            for t in f.tensors:
                assert f.tensor(t.name).shape == t.shape


@pytest.mark.parametrize("name,shown", [("regress-magic-gg-c1-87", r"'GG\xc1\x87'"),
                                        ("regress-magic-nul", r"'\x00\x00\x00\x00'")])
def test_gguf_bad_magic_is_not_a_gguf_file(name, shown):
    path = seed(name)
    with pytest.raises(ValueError) as ei:
        GGUFFile(path)
    assert type(ei.value) is ValueError  # not a UnicodeDecodeError
    msg = one_line(str(ei.value))
    assert f"{path}: not a GGUF file (magic bytes {shown}, expected 'GGUF')" in msg


def test_gguf_name_that_is_not_utf8_is_escaped_in_the_error():
    path = seed("regress-name-overlong-utf8")
    with pytest.raises(ValueError) as ei:
        GGUFFile(path)
    assert type(ei.value) is ValueError
    assert one_line(str(ei.value)).endswith(r"tensor 'w\xc0\xaf\x0a' has unknown ggml type id 99")


@pytest.mark.parametrize("name", ["regress-f32-ne-2p62", "regress-i32-ne-2p31x2p31"])
def test_cli_quantize_refuses_what_the_reader_refuses(tmp_path, name):
    out = tmp_path / "out.gguf"
    res = run("-m", "peftcpp", "quantize", seed(name), str(out), "Q8_0")
    assert res.returncode == 1, res
    err = one_line(res.stderr)
    assert err.startswith("peftcpp quantize: error: ") and seed(name) in err and f"'{WRAPPING[name]}'" in err
    assert "Traceback" not in err and not res.stdout
    assert os.listdir(tmp_path) == []  # no output, no temporary file


def test_cli_import_gguf_refuses_what_the_reader_refuses(tmp_path):
    out = tmp_path / "imported"
    res = run("-m", "peftcpp", "import-gguf", seed("regress-f32-ne-2p62"), str(out))
    assert res.returncode == 1, res
    err = one_line(res.stderr)
    assert err.startswith("peftcpp import-gguf: error: ") and seed("regress-f32-ne-2p62") in err
    assert "'output_norm.weight'" in err and "too large" in err
    assert os.listdir(tmp_path) == []


def test_cli_quantize_bad_magic(tmp_path):
    res = run("-m", "peftcpp", "quantize", seed("regress-magic-gg-c1-87"), str(tmp_path / "o.gguf"), "Q8_0")
    assert res.returncode == 1
    assert r"not a GGUF file (magic bytes 'GG\xc1\x87'" in one_line(res.stderr)
    assert os.listdir(tmp_path) == []


def test_gguf_writer_refuses_a_shape_whose_size_wraps(tmp_path):
    path = tmp_path / "w.gguf"
    w = _core.GGUFWriter(str(path))
    with pytest.raises(ValueError, match=r"tensor 'big' \(F32\) byte size is too large"):
        w.add_tensor("big", "F32", np.zeros(0, dtype=np.uint8), shape=[2**62])
    with pytest.raises(ValueError, match=r"tensor 'big' has too many elements"):
        w.add_tensor("big", "F32", np.zeros(0, dtype=np.uint8), shape=[2**32, 2**32])
    w.write()
    assert [t["name"] for t in _core.GGUFFile(str(path)).tensor_infos] == []


def test_safetensors_writer_refuses_a_shape_whose_size_wraps(tmp_path):
    path = tmp_path / "w.safetensors"
    with pytest.raises(ValueError, match=r"w.safetensors: tensor 'big' byte size is too large"):
        _core.write_safetensors(str(path), [("big", "F32", [2**62])], lambda i: np.zeros(0, np.float32))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,match", [
    ("regress-shape-2p62", r"tensor 'x' \(F32, shape \[4611686018427387904\]\) byte size is too large"),
    ("regress-i64-wraps-to-8-bytes", r"tensor 'x' \(I64, .*\) byte size is too large"),
    ("regress-zero-dim-huge-rest", r"tensor 'x' has too many elements"),
    ("regress-name-newline", r"tensor 'a\\x0ab' has dtype F64"),
])
def test_safetensors_hostile_seeds_refused_in_one_line(name, match):
    path = seed(name, "safetensors")
    with pytest.raises((ValueError, TypeError), match=match) as ei:
        serialization.load_file(path)
    assert path in one_line(str(ei.value))


def test_safetensors_deeply_nested_shape_is_refused_not_a_stack_overflow(tmp_path):
    depth = 200_000  # printing this shape recursively overflowed the stack (SIGSEGV)
    header = b'{"x":{"dtype":"F32","shape":' + b"[" * depth + b"]" * depth + b',"data_offsets":[0,0]}}'
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    res = run("-c", "import sys; from peftcpp import serialization; serialization.load_file(sys.argv[1])", str(path))
    assert res.returncode == 1, res  # an exception, not a signal
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: ") and str(path) in last and "tensor 'x': shape (a nested list)" in last


@pytest.mark.parametrize("name", ["regress-shape-2p62", "regress-offsets-past-end", "regress-header-length-huge"])
def test_convert_reads_checkpoints_through_the_validating_reader(tmp_path, name):
    """`peftcpp convert`'s own safetensors view (bfloat16 kept as bits) refuses
    what the reader refuses, naming the file, instead of a bare numpy or JSON error."""
    from peftcpp.gguf.convert import read_safetensors
    path = tmp_path / "model.safetensors"
    with open(seed(name, "safetensors"), "rb") as f:
        path.write_bytes(f.read())
    with pytest.raises(ValueError) as ei:
        read_safetensors(str(path))
    assert str(path) in one_line(str(ei.value))


def test_cli_quantize_architecture_that_is_not_utf8(tmp_path):
    path = seed("regress-arch-not-utf8")
    res = run("-m", "peftcpp", "quantize", path, str(tmp_path / "o.gguf"), "Q8_0")
    assert res.returncode == 1
    err = one_line(res.stderr)
    assert path in err and r"'lla\xf9a.block_count' is missing" in err
    assert os.listdir(tmp_path) == []
