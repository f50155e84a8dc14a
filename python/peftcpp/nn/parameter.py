from .._tensor import Tensor, empty


class Parameter(Tensor):
    """A tensor that a Module registers as a parameter (like torch.nn.Parameter).

    It shares the data of the tensor it wraps; ops on it return plain Tensors.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = empty(0)
        super().__init__(data.detach() if data.grad_fn is not None else data)
        if requires_grad != self.requires_grad:
            self.requires_grad_(requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
