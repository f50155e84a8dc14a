"""Which modules a tuner wraps: PEFT's target_modules / exclude_modules /
layers_to_transform rules, the "all-linear" shorthand, and the command
line's choice of "every linear layer in the last N transformer blocks"."""
import re

from ...nn import Conv1D, Linear, ModuleList

# names of a model's list of transformer blocks (llama's layers, gpt2's h)
BLOCK_LIST_NAMES = ("layers", "h", "blocks")


def is_linear_layer(m):
    """nn.Linear, or transformers' Conv1D (a linear layer stored [in, out])."""
    return isinstance(m, (Linear, Conv1D))


def is_conv1d(m):
    return isinstance(m, Conv1D)


class ExcludedModule:
    """check_target_module_exists' answer for a module excluded on purpose
    (exclude_modules, modules_to_save): falsy like "not matched"."""

    def __bool__(self):
        return False


def check_target_module_exists(config, key):
    """PEFT's rule: a str is a full regex match, a list matches the exact name
    or a `.name` suffix; exclude_modules alike; layers_to_transform filters by
    the layer index in the name."""
    if config.exclude_modules:
        ex = config.exclude_modules
        if isinstance(ex, str):
            if re.fullmatch(ex, key):
                return ExcludedModule()
        elif key in ex or any(key.endswith("." + e) for e in ex):
            return ExcludedModule()
    if config.modules_to_save and any(re.match(rf"(^|.*\.){m}($|\..*)", key) for m in config.modules_to_save):
        return ExcludedModule()
    tm = config.target_modules
    if isinstance(tm, str):
        return bool(re.fullmatch(tm, key))
    if key in tm:
        return True
    found = any(key.endswith("." + t) for t in tm)
    idxs, pattern = config.layers_to_transform, config.layers_pattern
    using = idxs is not None and (len(idxs) != 0 if isinstance(idxs, (list, tuple)) else True)
    if using and found:
        match = None
        if not pattern:
            match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
        else:
            for p in [pattern] if isinstance(pattern, str) else pattern:
                match = re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", key)
                if match is not None:
                    break
        if match is None:
            return False
        i = int(match.group("idx"))
        found = i == idxs if isinstance(idxs, int) else i in idxs
    return found


def module_names_summary(names):
    """The distinct leaf names of module paths (for error messages)."""
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n and not n.rsplit(".", 1)[-1].isdigit()})
    return ", ".join(leaves)


class BlocksNotFoundError(ValueError):
    """The model has no list of transformer blocks to choose layers from."""


def find_blocks(model):
    """(attribute path, attribute name, count) of the model's list of
    transformer blocks: the largest ModuleList named 'layers' or 'h'."""
    best = None
    for name, m in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(m, ModuleList) and leaf in BLOCK_LIST_NAMES and (best is None or len(m) > best[2]):
            best = (name, leaf, len(m))
    if best is None:
        raise BlocksNotFoundError(f"cannot find the transformer blocks of {type(model).__name__} (no 'layers' list)")
    return best


def last_blocks_linear_targets(model, num_layers):
    """mlx-lm's rule: every linear layer inside the last num_layers blocks
    (all blocks for -1). Returns (sorted leaf names for target_modules,
    layers_to_transform or None, layers_pattern, number of blocks)."""
    path, leaf, n = find_blocks(model)
    names = set()
    for name, m in model.named_modules():
        if name.startswith(path + ".") and is_linear_layer(m):
            names.add(name.rsplit(".", 1)[-1])
    if num_layers == -1 or num_layers >= n:
        layers = None
    else:
        layers = list(range(n - num_layers, n))
    return sorted(names), layers, leaf, n
