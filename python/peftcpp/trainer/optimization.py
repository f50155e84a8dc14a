"""The optimizer a Trainer builds: AdamW with transformers' parameter groups
(no weight decay for biases and normalization weights), over trainable
weights the model owns."""
import re

from ..nn import Parameter
from ..optim import AdamW

__all__ = ["trainable_parameters", "no_decay_parameter_names", "own_trainable_weights", "create_adamw"]

NO_DECAY_RE = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)|(?:^|\.)ln_")


def trainable_parameters(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def no_decay_parameter_names(model):
    """HF's grouping: no weight decay for biases and normalization weights."""
    norm_params = set()
    for mname, mod in model.named_modules():
        if "norm" in type(mod).__name__.lower():
            for pname, _ in mod.named_parameters():
                norm_params.add(f"{mname}.{pname}" if mname else pname)
    return {n for n, _ in trainable_parameters(model) if n in norm_params or NO_DECAY_RE.search(n.lower())}


def own_trainable_weights(model):
    """Trainable weights that view a read-only (memory-mapped) checkpoint are
    copied into owned memory, keeping tied weights tied. Returns whether any
    was copied."""
    replaced = {}
    for _, mod in model.named_modules():
        for name, p in list(mod.named_parameters(recurse=False, remove_duplicate=False)):
            if not p.requires_grad:
                continue
            if id(p) not in replaced:
                if p._storage_is_owned():
                    continue
                replaced[id(p)] = Parameter(p.detach()._clone_raw(), requires_grad=True)
            mod.register_parameter(name, replaced[id(p)])
    return bool(replaced)


def create_adamw(model, args):
    """AdamW over the trainable weights with ``args``' hyperparameters."""
    params = trainable_parameters(model)
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=False everywhere)")
    nd = no_decay_parameter_names(model)
    groups = [{"params": [p for n, p in params if n not in nd], "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if n in nd], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    return AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
                 weight_decay=args.weight_decay)
