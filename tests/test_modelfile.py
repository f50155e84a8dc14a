"""Ollama Modelfile (peftcpp.gguf.write_modelfile): family detection, the
file's lines, atomic writing, and - the real check - that each Go TEMPLATE
renders a conversation to exactly the prompt the family's Jinja chat template
renders (jinja2, as transformers runs it). Go's text/template is not available
offline, so a small interpreter of the subset the templates use (trim
markers, if/else if/else, range with $i, variables, eq/ne/and/or/not/len/
slice) renders them; the Ollama convention is followed: the system prompt in
.System, the other turns in .Messages."""
import os
import re
import warnings

import jinja2
import pytest

from peftcpp.gguf import modelfile_text, write_modelfile
from peftcpp.gguf.modelfile import GO_TEMPLATES, detect_chat_family

# The families' chat templates (as shipped in their tokenizer_config.json, text-only parts).
JINJA = {
    "chatml": ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
               "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
               "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
               "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
               "{% endif %}"),
    "llama3": ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
               "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
               "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"),
    "gemma3": ("{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
               "messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}"
               "{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}{%- endif -%}"
               "{%- for message in loop_messages -%}{%- set role = \"model\" if message['role'] == 'assistant' "
               "else message['role'] -%}{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first "
               "else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{%- endfor -%}"
               "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}"),
    "phi3": ("{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + "
             "message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + "
             "message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + "
             "message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
             "{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"),
}

CONVERSATIONS = [
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?\nThanks"}],
]


# ----------------------------------------------- a tiny Go template subset
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(template):
    out, pos, trim_next = [], 0, False
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = template[pos:]
    out.append(("text", text.lstrip() if trim_next else text))
    return out


def _parse(tokens, i=0, stop=("end",)):
    """Nodes until a stop keyword; returns (nodes, index, the stop action)."""
    nodes = []
    while i < len(tokens):
        kind, s = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", s))
            continue
        word = s.split(None, 1)[0] if s else ""
        if word in stop or (word == "else" and "else" in stop):
            return nodes, i, s
        if word == "if":
            branches, cond = [], s[2:].strip()
            while True:
                body, i, end = _parse(tokens, i, ("end", "else"))
                branches.append((cond, body))
                if end == "end":
                    break
                cond = end[4:].strip()[2:].strip() if end.startswith("else if") else None
            nodes.append(("if", branches))
        elif word == "range":
            m = re.match(r"range\s+\$(\w+)\s*,\s*\$(\w+)\s*:=\s*(.+)", s)
            body, i, _ = _parse(tokens, i, ("end",))
            nodes.append(("range", m.group(1), m.group(2), m.group(3), body))
        elif re.match(r"\$\w+\s*:=", s):
            name, expr = s.split(":=", 1)
            nodes.append(("set", name.strip()[1:], expr.strip()))
        else:
            nodes.append(("expr", s))
    return nodes, i, None


def _expr_tokens(s):
    return re.findall(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+', s)


def _eval(toks, env):
    def atom(t, rest):
        if t == "(":
            val, rest = call(rest)
            assert rest[0] == ")"
            return val, rest[1:]
        if t.startswith('"'):
            return t[1:-1], rest
        if re.fullmatch(r"-?\d+", t):
            return int(t), rest
        if t.startswith("$."):
            return env["$"][t[2:]], rest
        if t.startswith("$"):
            return env[t[1:]], rest
        if t.startswith("."):
            return env["."][t[1:]], rest
        raise ValueError(t)

    funcs = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "and": lambda a, b: a if not a else b,
             "or": lambda a, b: a if a else b, "not": lambda a: not a, "len": len, "slice": lambda x, i: x[i:]}

    def call(ts):
        if ts[0] in funcs:
            f, args, rest = funcs[ts[0]], [], ts[1:]
            while rest and rest[0] != ")":
                v, rest = atom(rest[0], rest[1:])
                args.append(v)
            return f(*args), rest
        return atom(ts[0], ts[1:])

    return call(_expr_tokens(toks))[0]


def _render(nodes, env):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "expr":
            out.append(str(_eval(n[1], env)))
        elif n[0] == "set":
            env[n[1]] = _eval(n[2], env)
        elif n[0] == "if":
            for cond, body in n[1]:
                if cond is None or _eval(cond, env):
                    out.append(_render(body, env))
                    break
        elif n[0] == "range":
            for i, item in enumerate(_eval(n[3], env)):
                out.append(_render(n[4], dict(env, **{n[1]: i, n[2]: item, ".": item})))
    return "".join(out)


def render_go(template, messages):
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    msgs = [{"Role": m["role"], "Content": m["content"]} for m in messages if m["role"] != "system"]
    root = {"System": system, "Messages": msgs}
    nodes, _, _ = _parse(_tokens(template))
    return _render(nodes, {"$": root, ".": root})


# ------------------------------------------------------------------ tests
def test_go_interpreter_basics():
    assert render_go("a {{- if eq 1 1 }} b {{- end }} c", []) == "a b c"
    assert render_go("{{ range $i, $_ := .Messages }}{{ $i }}{{ .Role }}{{ end }}",
                     [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]) == "0user1assistant"


@pytest.mark.parametrize("family", sorted(JINJA))
@pytest.mark.parametrize("conv", range(len(CONVERSATIONS)))
def test_go_template_renders_like_jinja(family, conv):
    assert detect_chat_family(JINJA[family]) == family
    messages = CONVERSATIONS[conv]
    want = jinja2.Environment().from_string(JINJA[family]).render(
        messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
    got = render_go(GO_TEMPLATES[family], messages)
    assert got == want, f"{family}:\nGo:    {got!r}\nJinja: {want!r}"


def test_modelfile_lines(tmp_path):
    gguf_path = tmp_path / "m.Q4_K_M.gguf"
    gguf_path.write_bytes(b"")  # the file need not be a GGUF when template and eos are given
    out = write_modelfile(str(gguf_path), JINJA["chatml"], stop=["<|endoftext|>"], eos_token="<|im_end|>")
    assert out == str(tmp_path / "Modelfile")
    text = open(out).read()
    lines = text.splitlines()
    assert lines[0] == "FROM ./m.Q4_K_M.gguf"
    assert 'TEMPLATE """' + GO_TEMPLATES["chatml"] + '"""' in text
    stops = [ln for ln in lines if ln.startswith("PARAMETER stop")]
    assert stops == ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"',
                     'PARAMETER stop "<|endoftext|>"']
    assert sorted(os.listdir(tmp_path)) == ["Modelfile", "m.Q4_K_M.gguf"]  # no temporary left
    # elsewhere: FROM takes the absolute path
    other = tmp_path / "sub"
    other.mkdir()
    out2 = write_modelfile(str(gguf_path), JINJA["llama3"], out_path=str(other / "Modelfile"), eos_token="x")
    assert open(out2).read().splitlines()[0] == f"FROM {gguf_path}"
    assert 'PARAMETER stop "<|eot_id|>"' in open(out2).read()


def test_unknown_template_falls_back_with_warning():
    with pytest.warns(UserWarning, match="not recognised"):
        text = modelfile_text("x.gguf", "{{ messages[0]['content'] }}", eos_token="</s>")
    assert "# The model's chat template was not recognised" in text
    assert GO_TEMPLATES["plain"] in text
    assert 'PARAMETER stop "</s>"' in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GO_TEMPLATES["plain"] in modelfile_text("x.gguf", None)  # no template: plain, no warning


def test_template_and_eos_from_gguf(tmp_path):
    """Without arguments the GGUF's own tokenizer.chat_template and eos token are used."""
    from peftcpp import _core

    path = str(tmp_path / "t.gguf")
    w = _core.GGUFWriter(path)
    w.set("general.architecture", "llama", "STRING")
    w.set("tokenizer.ggml.tokens", ["<s>", "<|im_end|>", "<|endoftext|>"], "ARRAY[STRING]")
    w.set("tokenizer.ggml.eos_token_id", 2, "UINT32")
    w.set("tokenizer.chat_template", JINJA["chatml"], "STRING")
    w.write()
    text = open(write_modelfile(path)).read()
    assert GO_TEMPLATES["chatml"] in text
    assert 'PARAMETER stop "<|endoftext|>"' in text


# ------------------------------------ hostile values: Ollama's own grammar
def ollama_parse(text):
    """A port of Ollama's Modelfile parser (parser/parser.go, ParseFile): the
    (command, argument) list it builds. A value ends at the first line end
    where it is complete (`\"\"\"...\"\"\"`, `"..."` or unquoted); quotes are cut,
    nothing is unescaped; characters that are not printable are dropped."""
    NIL, NAME, VALUE, PARAM, COMMENT = range(5)
    commands = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser", "parameter",
                "message", "requires")

    def unquote(s):
        if s.startswith('"""'):
            return s[3:-3] if len(s) >= 6 and s.endswith('"""') else None
        if s.startswith('"'):
            return s[1:-1] if len(s) >= 2 and s.endswith('"') else None
        return s

    out, cur, buf, name = [], NIL, [], None
    for r in text:
        if cur == NIL:
            nxt, keep = (COMMENT, None) if r == "#" else (NIL, None) if r in " \t\r\n" else (NAME, r)
        elif cur == NAME:
            if r.isascii() and r.isalpha():
                nxt, keep = NAME, r
            elif r in " \t":
                nxt, keep = VALUE, None
            else:
                raise ValueError(f"invalid command after {''.join(buf)!r}")
        elif cur == VALUE:
            nxt, keep = (NIL, r) if r in " \t\r\n" else (VALUE, r)
        elif cur == PARAM:
            if r.isascii() and (r.isalnum() or r == "_"):
                nxt, keep = PARAM, r
            elif r in " \t":
                nxt, keep = VALUE, None
            else:
                raise ValueError("unexpected EOF")
        else:
            nxt, keep = (NIL, None) if r in "\r\n" else (COMMENT, None)
        if nxt != cur:
            if cur == NAME:
                word = "".join(buf).lower()
                if word not in commands:
                    raise ValueError(f"invalid command {word!r}")
                if word == "parameter":
                    nxt = PARAM
                name = "model" if word == "from" else word
            elif cur == PARAM:
                name = "".join(buf)
            elif cur == VALUE:
                value = unquote("".join(buf).strip())
                if value is None or r in " \t":
                    buf.append(r)
                    continue
                out.append((name, value))
            buf, cur = [], nxt
        if keep is not None and keep.isprintable():
            buf.append(keep)
    if cur == VALUE:
        value = unquote("".join(buf).strip())
        if value is None:
            raise ValueError("unexpected EOF")
        out.append((name, value))
    elif cur not in (NIL, COMMENT):
        raise ValueError("unexpected EOF")
    return out


INJECTION = '\nFROM evil\nADAPTER x\nPARAMETER temperature 9\nSYSTEM "'
HOSTILE_SYSTEM = [
    'say """ and then' + INJECTION,  # """ inside a line, then directive-looking lines
    'ends with a quote"' + INJECTION + '"',
    '"""',  # only the quotes
    'x"""',
    '""leading quotes and trailing ones""',
    "  spaces around, tabs\tand\r\nCRLF lines  ",
    "# not a comment\nMESSAGE user hi\nTEMPLATE {{ .Prompt }}",
]


@pytest.mark.parametrize("system", HOSTILE_SYSTEM)
def test_system_prompt_cannot_inject_modelfile_lines(system):
    text = modelfile_text("m.gguf", JINJA["chatml"], eos_token="<|im_end|>", system=system)
    cmds = ollama_parse(text)
    assert [c for c in cmds if c[0] == "model"] == [("model", "./m.gguf")]
    assert [c for c in cmds if c[0] == "adapter"] == []
    assert [v for n, v in cmds if n == "system"] == [system]
    assert [v for n, v in cmds if n == "template"] == [GO_TEMPLATES["chatml"]]
    assert [n for n, _ in cmds if n not in ("model", "template", "system")] == ["stop", "stop"]
    assert [v for n, v in cmds if n == "stop"] == ["<|im_end|>", "<|im_start|>"]


@pytest.mark.parametrize("system", ['"""' + INJECTION + '"""', 'x """  \nFROM evil', 'a\u200dzero-width joiner'])
def test_system_prompt_ollama_cannot_read_back_is_refused(tmp_path, system):
    """A line ending in \"\"\" ends every Modelfile quoting (there is no escape),
    and Ollama drops unprintable characters: refused, naming the field, and
    nothing is written."""
    with pytest.raises(ValueError, match=r"^SYSTEM \(the system prompt\) cannot be written into an Ollama "
                                         r"Modelfile: (a line of it ends with '\"\"\"'|it contains the character "
                                         r"U\+200D)"):
        write_modelfile(str(tmp_path / "m.gguf"), JINJA["chatml"], eos_token="</s>", system=system)
    assert os.listdir(tmp_path) == []


def test_stop_strings_parameters_and_paths_read_back_unchanged(tmp_path):
    eos = '</s>"\nFROM evil'
    name = 'we"ird\nADAPTER evil.gguf '
    text = modelfile_text(name, JINJA["chatml"], eos_token=eos, stop=['"quoted"', "a b"],
                          parameters={"temperature": 0.5, "num_ctx": "4096\nFROM x"})
    cmds = ollama_parse(text)
    assert [c for c in cmds if c[0] in ("model", "adapter")] == [("model", "./" + name)]
    assert [v for n, v in cmds if n == "stop"] == ["<|im_end|>", "<|im_start|>", '"quoted"', "a b", eos]
    assert ("temperature", "0.5") in cmds and ("num_ctx", "4096\nFROM x") in cmds
    assert "PARAMETER temperature 0.5" in text.splitlines()  # plain values stay plain
    with pytest.raises(ValueError, match=r"^PARAMETER name 'top k' cannot be written"):
        modelfile_text("m.gguf", parameters={"top k": 1})
    with pytest.raises(ValueError, match=r"^PARAMETER stop '.*' cannot be written.*U\+0000"):
        modelfile_text("m.gguf", eos_token="a\x00b")


def test_the_port_of_ollamas_parser_reads_what_the_old_writer_got_wrong():
    """The parser port agrees with Ollama on the injection the issue found."""
    old = 'FROM ./m.gguf\nSYSTEM """' + '"""' + INJECTION + '"""' + '"""\n'
    cmds = ollama_parse(old)
    assert [c for c in cmds if c[0] == "model"] == [("model", "./m.gguf"), ("model", "evil")]
    assert ("adapter", "x") in cmds and ("temperature", "9") in cmds
