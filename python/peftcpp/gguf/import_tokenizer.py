"""GGUF → tokenizer: a ``tokenizers.Tokenizer`` (tokenizer.json) and
tokenizer_config.json rebuilt from ``tokenizer.ggml.*`` metadata: a byte-level
BPE (``tokenizer.ggml.model == "gpt2"``) with the pre-tokenizer of the model
family (``tokenizer.ggml.pre``), or a SentencePiece BPE with byte fallback
(``"llama"``; merges recovered from the scores, or from the file order for
Gemma). The other direction is :mod:`peftcpp.gguf.vocab`."""
from .names import LLAMA3_RE, PRE_TOKENIZERS, QWEN2_RE, GGUFImportError, TokenType

__all__ = ["build_tokenizer", "build_tokenizer_config", "required_key"]


def required_key(meta, key, source):
    if key not in meta:
        raise GGUFImportError(f"{source}: metadata key '{key}' is missing")
    return meta[key]


def _pre_tokenizer(pre, source):
    from tokenizers import Regex, normalizers, pre_tokenizers

    if pre not in PRE_TOKENIZERS:
        raise GGUFImportError(f"{source}: tokenizer.ggml.pre '{pre}' is not supported "
                              f"(supported: {', '.join(sorted(PRE_TOKENIZERS))})")
    kind, norm = PRE_TOKENIZERS[pre]
    if kind == "gpt2":
        pt = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "digits+gpt2":
        pt = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        regex = {"llama3": LLAMA3_RE, "qwen2": QWEN2_RE}[kind.split(":")[1]]
        pt = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    normalizer = normalizers.NFC() if norm == "NFC" else None
    return normalizer, pt


def _spm_merges(vocab, rank):
    """BPE merges implied by a SentencePiece vocabulary: every split of a
    piece into two pieces of the vocabulary, best-ranked merged piece first
    (the recovery ``tokenizers``/transformers use for SentencePiece BPE)."""
    merges = []
    for piece, r in rank.items():
        local = [(piece[:k], piece[k:], r) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: (x[2], len(x[0]), len(x[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def _spm_tokenizer(meta, tokens, types, source):
    """SentencePiece BPE (``tokenizer.ggml.model == "llama"``) as a
    ``tokenizers`` BPE with byte fallback: Llama-style (Metaspace, a prefix
    space) or, for Gemma, spaces replaced by ``▁`` and no prefix space."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    arch = meta.get("general.architecture")
    gemma = arch in ("gemma", "gemma2", "gemma3")
    if gemma:  # Gemma files store pieces made of several spaces as real spaces
        tokens = ["\u2581" * len(t) if t and not t.strip(" ") else t for t in tokens]
    vocab = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    if gemma:  # Gemma's scores do not follow its merge order; the file order does
        rank = {t: -i for t, i in vocab.items()}
    else:
        scores = meta.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(tokens):
            raise GGUFImportError(f"{source}: SentencePiece tokenizer without one tokenizer.ggml.scores per token")
        rank = {t: float(scores[i]) for t, i in vocab.items()}
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    bpe = BPE(vocab=vocab, merges=_spm_merges(vocab, rank), fuse_unk=True, byte_fallback=True,
              unk_token=tokens[unk] if unk is not None and 0 <= unk < len(tokens) else None)
    tk = Tokenizer(bpe)
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if gemma:
        tk.normalizer = normalizers.Replace(" ", "\u2581")
        tk.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    else:
        prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first" if prefix else "never",
                                                    split=False)
        if prefix:
            steps.append(decoders.Strip(content=" ", left=1))
    tk.decoder = decoders.Sequence(steps)
    return tk, vocab


def _bpe_tokenizer(meta, tokens, types, source):
    """Byte-level BPE (``tokenizer.ggml.model == "gpt2"``)."""
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE

    merges = list(meta.get("tokenizer.ggml.merges") or [])
    vocab = {}
    for i, (tok, tt) in enumerate(zip(tokens, types)):
        if tt == TokenType.UNUSED:  # [PAD{i}] fillers up to the embedding size
            continue
        vocab.setdefault(tok, i)
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise GGUFImportError(f"{source}: malformed merge {m!r}")
        pairs.append((a, b))
    bpe = BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False, ignore_merges=False)
    tk = Tokenizer(bpe)
    normalizer, pre = _pre_tokenizer(meta.get("tokenizer.ggml.pre", "default"), source)
    if normalizer is not None:
        tk.normalizer = normalizer
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    return tk, vocab


def build_tokenizer(meta, source="<gguf>"):
    """A ``tokenizers.Tokenizer`` rebuilt from ``tokenizer.ggml.*`` metadata:
    byte-level BPE (``tokenizer.ggml.model == "gpt2"``) or SentencePiece BPE
    (``"llama"``)."""
    from tokenizers import AddedToken, processors

    model = meta.get("tokenizer.ggml.model")
    if model is None:
        raise GGUFImportError(f"{source}: no tokenizer.ggml.model metadata")
    if model not in ("gpt2", "llama"):
        raise GGUFImportError(f"{source}: tokenizer.ggml.model '{model}' is not supported (supported: gpt2 = "
                              "byte-level BPE, llama = SentencePiece BPE)")
    tokens = list(required_key(meta, "tokenizer.ggml.tokens", source))
    types = list(meta.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens))
    if len(types) != len(tokens):
        raise GGUFImportError(f"{source}: {len(tokens)} tokens but {len(types)} token types")
    if model == "gpt2":
        tk, vocab = _bpe_tokenizer(meta, tokens, types, source)
    else:
        tk, vocab = _spm_tokenizer(meta, tokens, types, source)
    # control → special added tokens, user-defined → plain added tokens (matched whole, like llama.cpp);
    # their ids come from the vocab, which holds every token
    control = [AddedToken(t, special=True, normalized=False) for t, tt in zip(tokens, types) if tt == TokenType.CONTROL]
    user = [AddedToken(t, special=False, normalized=False) for t, tt in zip(tokens, types) if tt == TokenType.USER_DEFINED]
    if control:
        tk.add_special_tokens(control)
    if user:
        tk.add_tokens(user)
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", model == "llama"))  # llama.cpp's defaults
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    bos_id, eos_id = meta.get("tokenizer.ggml.bos_token_id"), meta.get("tokenizer.ggml.eos_token_id")
    add_bos = add_bos and bos_id is not None
    add_eos = add_eos and eos_id is not None
    if add_bos or add_eos:
        bos, eos = (tokens[bos_id] if add_bos else None), (tokens[eos_id] if add_eos else None)
        single = ([f"{bos}:0"] if bos else []) + ["$A:0"] + ([f"{eos}:0"] if eos else [])
        pair = single + ([f"{bos}:1"] if bos else []) + ["$B:1"] + ([f"{eos}:1"] if eos else [])
        special = [(t, vocab.get(t, tokens.index(t))) for t in dict.fromkeys(x for x in (bos, eos) if x)]
        tk.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
    elif model == "gpt2":
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    return tk


def build_tokenizer_config(meta, source="<gguf>"):
    tokens = meta.get("tokenizer.ggml.tokens") or []
    types = meta.get("tokenizer.ggml.token_type") or []

    def tok(key):
        i = meta.get(f"tokenizer.ggml.{key}")
        if i is None or not 0 <= int(i) < len(tokens):
            return None
        return tokens[int(i)]

    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", meta.get("tokenizer.ggml.model") == "llama")),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get(f"{meta.get('general.architecture')}.context_length", 0)) or int(1e30),
    }
    for key, name in (("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"),
                      ("padding_token_id", "pad_token"), ("unknown_token_id", "unk_token")):
        cfg[name] = tok(key)
    added = {}
    for i, (t, tt) in enumerate(zip(tokens, types)):
        if tt in (TokenType.CONTROL, TokenType.USER_DEFINED):
            added[str(i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": tt == TokenType.CONTROL}
    cfg["added_tokens_decoder"] = added
    template = meta.get("tokenizer.chat_template")
    if template is not None:
        cfg["chat_template"] = template
    return cfg

