"""Devices as torch names them. peftcpp computes on the CPU only: "cpu" (or
``device("cpu")``) is accepted wherever torch takes a device, and any other
device raises where it would be used, so that a script written for a GPU
fails at its first ``.to("cuda")`` instead of silently running elsewhere."""

_KNOWN_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hpu", "xla", "mtia", "npu", "ipu", "privateuseone")


class device:
    """torch.device: a type ("cpu", "cuda", ...) and an optional index.
    Building one for another type is allowed (as in torch); using it is not."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type  # torch: a bare ordinal means a CUDA device
        elif not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type.__class__.__name__}")
        else:
            name, sep, idx = type.partition(":")
            if name not in _KNOWN_TYPES or (sep and not idx.isdigit()):
                raise RuntimeError(f"device(): invalid device string {type!r} (expected 'cpu', 'cuda', 'cuda:0', ...)")
            if sep:
                if index is not None:
                    raise RuntimeError(f"device(): type {type!r} already has an index; got index={index} too")
                index = int(idx)
            type = name
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name, value):
        raise AttributeError("device objects are immutable")

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


CPU = device("cpu")


def is_device(value):
    """Whether value names a device (a device, a device string, or an ordinal)."""
    if isinstance(value, device) or (isinstance(value, int) and not isinstance(value, bool)):
        return True
    if isinstance(value, str):
        return value.partition(":")[0] in _KNOWN_TYPES
    return False


def check_device(value, op):
    """device(value) when it is the CPU (None means the CPU); otherwise a
    one-line error naming op and the device."""
    if value is None:
        return CPU
    try:
        d = device(value)
    except (TypeError, RuntimeError) as e:
        raise type(e)(f"[{op}] {e}") from None
    if d.type != "cpu" or d.index not in (None, 0):
        raise RuntimeError(f"[{op}] device '{d}' is not available: peftcpp computes on the CPU only "
                           "(use 'cpu', or leave the device out)")
    return CPU


class _Accelerator:
    """torch.cuda / torch.backends.mps's questions, answered for a CPU-only engine."""

    def __init__(self, name):
        self.name = name

    def is_available(self):
        return False

    def is_built(self):
        return False

    def device_count(self):
        return 0

    def manual_seed(self, seed):
        """No device generator to seed (torch does nothing either without a GPU)."""

    manual_seed_all = manual_seed

    def empty_cache(self):
        """Nothing is cached on a device."""

    def __repr__(self):
        return f"<peftcpp.{self.name}: not available, peftcpp computes on the CPU>"


class _Backends:
    def __init__(self):
        self.mps = _Accelerator("backends.mps")
        self.cuda = _Accelerator("backends.cuda")


cuda = _Accelerator("cuda")
backends = _Backends()
