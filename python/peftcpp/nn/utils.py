"""torch.nn.utils equivalents."""


def clip_grad_norm_(parameters, max_norm, norm_type=2.0):
    from ..optim import clip_grad_norm_ as _clip
    return _clip(parameters, max_norm, norm_type)
