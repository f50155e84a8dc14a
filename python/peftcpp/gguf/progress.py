"""The tqdm bar (counting tensors) behind the ``progress`` argument of the
GGUF writers: ``convert``, ``export_adapter`` and ``quantize``. The bar is
drawn only on a terminal (tqdm's ``disable=None``): a log gets no ``\\r``
frames."""

__all__ = ["progress_callback", "TensorProgress"]


class TensorProgress:
    """``(done, total)`` callback that draws a tqdm bar on ``file`` (default:
    standard error), created on the first call and closed when
    ``done == total`` (or by :meth:`close`)."""

    def __init__(self, desc, file=None):
        self.desc = desc
        self.file = file
        self.bar = None

    def __call__(self, done, total):
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit="tensor", file=self.file, disable=None)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def progress_callback(progress, desc="GGUF"):
    """A callable passes through; True gives a :class:`TensorProgress`; falsy, None."""
    if callable(progress):
        return progress
    return TensorProgress(desc) if progress else None
