"""Chat templates are code from a model's files: every rendering runs on a budget (steps, sizes,
output, nesting, seconds), and a template that goes past it fails fast with one line naming where the
template came from and the limit hit; real templates render exactly as before (issue 12, item 5)."""
import json
import os
import shutil
import time

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from peftcpp.tokenization import AutoTokenizer
from peftcpp.tokenization.chat_template import render_chat
from peftcpp.tokenization.template_budget import LIMITS, TemplateBudgetError
from peftcpp.tokenization import template_env

from test_cli import make_tiny_model
from test_tokenizer import GEMMA_TEMPLATE, GENERATION_TEMPLATE, LLAMA3_TEMPLATE, QWEN25_TEMPLATE, SMOLLM2_TEMPLATE

CHAT = [{"role": "user", "content": "hi"}]

HOSTILE = {  # template -> the limit its message names
    "nested ranges": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps"),
    "nested ranges with output": ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}"
                                  "{% endfor %}", "steps"),
    "huge repeated string": ("{{ 'x' * 10**9 }}", "characters"),
    "loop emitting text": ("{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}", "characters of output"),
    "literal text in a macro's loop": ("{% macro m() %}{% for i in range(90000) %}" + "z" * 1000 +
                                       "{% endfor %}{% endmacro %}{{ m() }}", "characters of output"),
    "literal text in a set block": ("{% set x %}{% for i in range(90000) %}" + "z" * 1000 + "{% endfor %}"
                                    "{% endset %}{{ x|length }}", "characters of output"),
    "macro recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro calls nested more than"),
    "exponential macro recursion": ("{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}"
                                    "{% endmacro %}{{ f(0) }}", "steps"),
    "argument doubling": ("{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
                          "{% endmacro %}{{ f('x', 60) }}", "a concatenation"),
    "set doubling": ("{% set s = 'x' %}" + "{% set s = s + s %}" * 60 + "{{ s|length }}", "a concatenation"),
    "namespace doubling": ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
                           "{% endfor %}{{ ns.s|length }}", "a concatenation"),
    "recursive loop": ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursive loops nested"),
    "center filter": ("{{ 'x'|center(10**9) }}", "integer argument"),
    "str.ljust": ("{{ 'x'.ljust(10**9) }}", "str.ljust()"),
    "str.format width": ("{{ '{:>1000000000}'.format(1) }}", "str.format()"),
    "%-format width": ("{{ '%1000000000d' % 1 }}", "%-format"),
    "format filter width": ("{{ '%1000000000d'|format(1) }}", "format()"),
    "replace": ("{{ ('x' * 100000)|replace('x', 'y' * 100000) }}", "replace()"),
    "join": ("{{ ('x' * 100000)|list|join('y' * 100000) }}", "join()"),
    "indent": ("{{ ('\n' * 100000)|indent(100000) }}", "indent()"),
    "tojson indent": ("{{ messages|tojson(indent=100000) }}", "tojson(indent=100000)"),
    "huge power": ("{{ 2 ** 100000000 }}", "a power"),
    "integer squaring": ("{% set ns = namespace(x=10**1000) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
                         "{% endfor %}{{ ns.x > 1 }}", "a product"),
    "repeated list": ("{{ ([1] * 10**8)|length }}", "a repeated list"),
    "sum of lists": ("{{ ([[1] * 1000] * 1000)|sum(start=[])|length }}", "sum() of 1,000 sequences"),
    "deep nesting": ("{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000, "nests too deeply to compile"),
    "huge template": ("x" * (2 ** 21), "characters (limit"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_template_fails_fast_naming_source_and_limit(case):
    template, limit = HOSTILE[case]
    t0 = time.perf_counter()
    with pytest.raises(TemplateBudgetError) as info:
        render_chat([CHAT], template, template_source="/m/tokenizer_config.json")
    assert time.perf_counter() - t0 < 2.0
    msg = str(info.value)
    assert msg.startswith("/m/tokenizer_config.json: the chat template ") and "\n" not in msg, msg
    assert limit in msg, (limit, msg)


def test_wall_clock_limit(monkeypatch):
    monkeypatch.setitem(LIMITS, "seconds", 0.05)
    monkeypatch.setitem(LIMITS, "steps", 10 ** 9)
    t0 = time.perf_counter()
    with pytest.raises(TemplateBudgetError, match=r"^t\.jinja: .*more than 0\.05 seconds"):
        render_chat([CHAT], HOSTILE["nested ranges"][0], template_source="t.jinja")
    assert time.perf_counter() - t0 < 1.0


def _plain_environment(template):
    """The environment before budgets (main's), to compare outputs with."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[template_env.GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = template_env._tojson
    env.globals.update(raise_exception=template_env._raise_exception, strftime_now=template_env._strftime_now,
                       dict=template_env._SafeDict(), namespace=template_env._SafeNamespace)
    return env.from_string(template)


PHI3 = ("{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
        "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
        "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}"
        "{% endif %}")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MACROS = ("{% macro render(m, sep='') %}{{ m['role'] ~ ': ' ~ m['content']|trim ~ sep }}{% endmacro %}"
          "{% set ns = namespace(n=0, text='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
          "{% set ns.text = ns.text ~ render(m, '\n') %}{% endfor %}{{ ns.text }}{{ ns.n * 2 }}{{ '%d-%s' % (ns.n, 'x') }}"
          "{{ messages|map(attribute='role')|join(',') }}{{ '{}|{}'.format(1, 2) }}{{ 'ab'|center(6) }}")


@pytest.mark.parametrize("name, template", [
    ("smollm2", SMOLLM2_TEMPLATE), ("qwen2.5 tools", QWEN25_TEMPLATE), ("llama3", LLAMA3_TEMPLATE),
    ("gemma", GEMMA_TEMPLATE), ("phi3", PHI3), ("chatml", CHATML), ("generation", GENERATION_TEMPLATE),
    ("macros and operators", MACROS)])
def test_real_templates_render_exactly_as_before(name, template):
    chats = [[{"role": "user", "content": "Hello"}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " What is 2+2? "},
              {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]]
    chats.append([{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 20} for i in range(200)])
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]
    plain = _plain_environment(template)
    for chat in chats:
        for gen in (False, True):
            kw = dict(bos_token="<s>", eos_token="</s>", tools=tools if "tools" in name else None, documents=None,
                      add_generation_prompt=gen, date_string="26 Jul 2024")
            if name == "gemma" and chat[0]["role"] == "system":
                continue  # Gemma refuses system messages (raise_exception), in both
            got = render_chat([chat], template, **kw)[0][0]
            assert got == plain.render(messages=chat, **kw), (name, gen)


def test_budget_is_per_rendering(monkeypatch):
    """Many renderings of a template (a dataset) never add up to one budget."""
    monkeypatch.setitem(LIMITS, "steps", 1000)
    for _ in range(50):
        render_chat([CHAT * 100], CHATML)


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tpl") / "model")


def _with_template(src, dst, template, where):
    shutil.copytree(src, dst)
    cfg_path = os.path.join(dst, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    if where == "tokenizer_config.json":
        cfg["chat_template"] = template
    else:
        cfg.pop("chat_template")
        with open(os.path.join(dst, where), "w") as f:
            f.write(template)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    return str(dst)


@pytest.mark.parametrize("where", ["tokenizer_config.json", "chat_template.jinja"])
def test_apply_chat_template_names_the_file_the_template_came_from(tokenizer_folder, tmp_path, where):
    folder = _with_template(tokenizer_folder, tmp_path / "m", HOSTILE["nested ranges"][0], where)
    tok = AutoTokenizer.from_pretrained(folder)
    t0 = time.perf_counter()
    with pytest.raises(TemplateBudgetError) as info:
        tok.apply_chat_template(CHAT)
    assert time.perf_counter() - t0 < 2.0
    assert str(info.value).startswith(f"{folder}/{where}: the chat template went past its render budget: more "
                                      "than 1,000,000 steps")
    tok.save_pretrained(tmp_path / "saved")  # the source is bookkeeping, never written
    assert "chat_template_sources" not in open(tmp_path / "saved" / "tokenizer_config.json").read()
    with pytest.raises(TemplateBudgetError, match=r"^the chat_template argument: "):
        tok.apply_chat_template(CHAT, chat_template=HOSTILE["huge repeated string"][0])
    tok.chat_template = HOSTILE["macro recursion"][0]
    with pytest.raises(TemplateBudgetError, match=rf"^tokenizer.chat_template of {folder}: "):
        tok.apply_chat_template(CHAT)


def test_a_template_from_a_gguf_file_names_the_gguf(tokenizer_folder, tmp_path, monkeypatch):
    from peftcpp import gguf
    monkeypatch.setenv("PEFTCPP_CACHE", str(tmp_path / "cache"))
    folder = _with_template(tokenizer_folder, tmp_path / "m", HOSTILE["huge repeated string"][0],
                            "tokenizer_config.json")
    path = str(tmp_path / "m.gguf")
    gguf.convert(folder, path, outtype="f32")
    tok = AutoTokenizer.from_pretrained(path)
    with pytest.raises(TemplateBudgetError, match=rf"^{path} \(tokenizer\.chat_template\): the chat template "
                                                  r"went past its render budget: a repeated string"):
        tok.apply_chat_template(CHAT)
