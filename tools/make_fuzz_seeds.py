#!/usr/bin/env python3
"""Writes the seed corpus of the C++ reader fuzzers (csrc/tests/fuzz/):
tests/fuzz/corpus/gguf/ and tests/fuzz/corpus/safetensors/.

    python3 tools/make_fuzz_seeds.py            # rewrite the committed corpus
    python3 tools/make_fuzz_seeds.py --out DIR  # write DIR/gguf, DIR/safetensors

Seeds are small (at most a few KB) and deterministic, so the output is
byte-identical on every run (tests/test_hostile_gguf.py checks the committed
files against it). ``valid-*`` files load; ``regress-*`` files are hostile
inputs that once crashed or misled a reader (issue 12) and must now be refused
with one clean line. Standard library only; no extension on the names, so the
repository's *.gguf / *.safetensors ignore rules leave them alone.
"""
import argparse
import json
import os
import struct

# ggml type ids and (block size, bytes per block)
F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, I32, I64, BF16 = 0, 1, 2, 8, 12, 14, 26, 27, 30
BLOCK = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q8_0: (32, 34), Q4_K: (256, 144), Q6_K: (256, 210),
         I32: (1, 4), I64: (1, 8), BF16: (1, 2)}

# GGUF value types
U8, I8, U16, I16, U32, I32V, F32V, BOOL, STR, ARR, U64, I64V, F64V = range(13)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return (key, vtype, payload)


def arr(elem_type, count, payload):
    return struct.pack("<iQ", elem_type, count) + payload


def pseudo_bytes(n, seed):
    """Deterministic filler bytes (a small LCG; no randomness between runs)."""
    out, x = bytearray(), seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((x >> 16) & 0xFF)
    return bytes(out)


def gguf(kvs, tensors, alignment=32, magic=b"GGUF", version=3, data=None):
    """A GGUF file. tensors: (name, ne, type, data bytes or None, offset or None);
    None data: filler of the size the shape needs; None offset: packed and aligned.
    data=...: the data section as given (the infos' offsets must say where)."""
    infos, blob = [], bytearray()
    for name, ne, t, tdata, off in tensors:
        if off is None:
            blob += b"\0" * ((-len(blob)) % alignment)
            off = len(blob)
            if tdata is None:
                numel = 1
                for n in ne:
                    numel *= n
                blk, size = BLOCK[t]
                tdata = pseudo_bytes(numel // blk * size, len(infos) + 1)
            blob += tdata
        infos.append((name, ne, t, off))
    out = bytearray(magic + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, vt, payload in kvs:
        out += gstr(key) + struct.pack("<i", vt) + payload
    for name, ne, t, off in infos:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", n) for n in ne)
        out += struct.pack("<iQ", t, off)
    out += b"\0" * ((-len(out)) % alignment)
    return bytes(out) + (bytes(blob) if data is None else data)


MODEL_KVS = [
    kv("general.architecture", STR, gstr("llama")),
    kv("general.name", STR, gstr("fuzz seed")),
    kv("llama.block_count", U32, struct.pack("<I", 1)),
    kv("llama.embedding_length", U32, struct.pack("<I", 32)),
    kv("llama.attention.head_count", U32, struct.pack("<I", 2)),
]

EVERY_TYPE_KVS = [
    kv("t.u8", U8, b"\xc8"), kv("t.i8", I8, b"\x9c"), kv("t.u16", U16, struct.pack("<H", 60000)),
    kv("t.i16", I16, struct.pack("<h", -30000)), kv("t.i32", I32V, struct.pack("<i", -2)),
    kv("t.f32", F32V, struct.pack("<f", 0.1)), kv("t.bool", BOOL, b"\1"), kv("t.u64", U64, struct.pack("<Q", 2**64 - 1)),
    kv("t.i64", I64V, struct.pack("<q", -(2**63))), kv("t.f64", F64V, struct.pack("<d", 1 / 3)),
    kv("t.str", STR, gstr("h\u00e9llo \u2713")),
    kv("t.arr_str", ARR, arr(STR, 3, gstr("a") + gstr("\u0120the") + gstr(""))),
    kv("t.arr_i32", ARR, arr(I32V, 3, struct.pack("<3i", 1, -2, 3))),
    kv("t.arr_f32", ARR, arr(F32V, 2, struct.pack("<2f", 0.5, -1.25))),
    kv("t.arr_nested", ARR, arr(ARR, 2, arr(U8, 2, b"\1\2") + arr(STR, 1, gstr("x")))),
]


def gguf_seeds():
    s = {}
    s["valid-model"] = gguf(MODEL_KVS + EVERY_TYPE_KVS, [
        ("token_embd.weight", [32, 4], F16, None, None),
        ("output_norm.weight", [32], F32, None, None),
        ("blk.0.attn_q.weight", [32, 2], Q8_0, None, None),
        ("blk.0.attn_k.weight", [32, 1], Q4_0, None, None),
        ("blk.0.ffn_down.weight", [256, 1], Q4_K, None, None),
        ("blk.0.ffn_up.weight", [256, 1], Q6_K, None, None),
        ("blk.0.attn_norm.weight", [8], BF16, None, None),
        ("t.positions", [4], I32, None, None),
        ("t.ids", [2], I64, None, None),
    ])
    s["valid-alignment-8"] = gguf(MODEL_KVS + [kv("general.alignment", U32, struct.pack("<I", 8))], [
        ("output_norm.weight", [6], F32, None, None),
        ("t.half", [3], F16, None, None),
        ("t.ids", [1], I64, None, None),
    ], alignment=8)
    s["valid-zero-elements"] = gguf(MODEL_KVS, [
        ("t.empty", [0, 5], F32, b"", None),
        ("t.scalar", [], F32, None, None),
        ("output_norm.weight", [4], F32, None, None),
    ])
    s["valid-v2-no-tensors"] = gguf(EVERY_TYPE_KVS, [], version=2)
    # Issue 12: element count x element size wraps to 0 (or to a few bytes)
    # past 2^64, so the bounds check saw an empty tensor inside the file;
    # reading it was a SIGBUS and `peftcpp quantize` copied it and exited 0.
    wraps = {
        "regress-f32-ne-2p62": [("output_norm.weight", [2**62], F32)],
        "regress-f32-ne-2p31x2p31": [("t.big", [2**31, 2**31], F32)],
        "regress-i32-ne-2p31x2p31": [("t.big", [2**31, 2**31], I32)],
        "regress-i64-ne-2p61": [("t.big", [2**61], I64)],
        "regress-f32-wraps-to-4-bytes": [("output_norm.weight", [2**62 + 1], F32)],
        "regress-f16-ne-2p63-1": [("t.big", [2**63 - 1], F16)],
    }
    for name, ts in wraps.items():
        s[name] = gguf(MODEL_KVS, [("token_embd.weight", [32, 2], F32, None, None)]
                       + [(n, ne, t, b"", 256) for n, ne, t in ts], data=pseudo_bytes(512, 7))
    # Magic bytes that pass a lax UTF-8 check (an overlong encoding): the
    # error message must still be one escaped line, not a UnicodeDecodeError.
    s["regress-magic-gg-c1-87"] = b"GG\xc1\x87" + s["valid-v2-no-tensors"][4:]
    s["regress-magic-nul"] = b"\0\0\0\0" + s["valid-v2-no-tensors"][4:]
    # A tensor name (overlong UTF-8 and a newline) quoted in an error message.
    s["regress-name-overlong-utf8"] = gguf(MODEL_KVS, [(b"w\xc0\xaf\n", [4], 99, b"", 0)])
    # An architecture name that is not UTF-8, quoted by quantize's "not a
    # model GGUF" error (found by the fuzz target's one-line-message check).
    s["regress-arch-not-utf8"] = gguf([kv("general.architecture", STR, gstr(b"lla\xf9a"))],
                                      [("output_norm.weight", [4], F32, None, None)])
    # Offsets: unaligned, past the end, and wrapping the 64-bit sum.
    s["regress-offset-wraps"] = gguf(MODEL_KVS, [("t.a", [8], F32, b"", 2**64 - 32)], data=pseudo_bytes(64, 3))
    s["regress-offset-unaligned"] = gguf(MODEL_KVS, [("t.a", [8], F32, b"", 4)], data=pseudo_bytes(64, 3))
    return s


def safetensors(header, data=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_valid():
    header, data = {"__metadata__": {"format": "pt", "note": "fuzz seed"}}, bytearray()
    for name, dtype, shape, es in [("ids", "I64", [3], 8), ("w", "F32", [4, 2], 4), ("pos", "I32", [2], 4),
                                   ("b", "BF16", [3], 2), ("h", "F16", [2, 2], 2), ("empty", "F32", [0, 7], 4)]:
        n = es
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += pseudo_bytes(n, len(header))
    return safetensors(header, bytes(data))


def safetensors_seeds():
    s = {"valid-every-dtype": st_valid(), "valid-empty": safetensors({}),
         "valid-misaligned": safetensors({"x": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}},
                                         pseudo_bytes(9, 5))}
    # Shapes whose byte size overflows or wraps; offsets that lie.
    s["regress-shape-2p62"] = safetensors({"x": {"dtype": "F32", "shape": [2**62], "data_offsets": [0, 0]}})
    s["regress-shape-2p32x2p32"] = safetensors({"x": {"dtype": "F32", "shape": [2**32, 2**32],
                                                      "data_offsets": [0, 0]}})
    s["regress-i64-wraps-to-8-bytes"] = safetensors({"x": {"dtype": "I64", "shape": [2**61 + 1],
                                                           "data_offsets": [0, 8]}}, pseudo_bytes(8, 1))
    s["regress-zero-dim-huge-rest"] = safetensors({"x": {"dtype": "F32", "shape": [0, 2**40, 2**40],
                                                         "data_offsets": [0, 0]}})
    s["regress-offsets-past-end"] = safetensors({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2**63 - 1]}})
    s["regress-header-length-huge"] = struct.pack("<Q", 2**64 - 1) + b"{}"
    s["regress-name-newline"] = safetensors({"a\nb": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}},
                                            pseudo_bytes(8, 2))
    return s


def write(out_root):
    for sub, seeds in (("gguf", gguf_seeds()), ("safetensors", safetensors_seeds())):
        folder = os.path.join(out_root, sub)
        os.makedirs(folder, exist_ok=True)
        for name, content in sorted(seeds.items()):
            assert len(content) <= 4096, (name, len(content))
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(here, "..", "tests", "fuzz", "corpus"),
                   help="corpus root (default: tests/fuzz/corpus)")
    write(p.parse_args().out)


if __name__ == "__main__":
    main()
