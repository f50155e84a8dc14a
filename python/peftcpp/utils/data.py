"""torch.utils.data's Dataset, TensorDataset and DataLoader, in process: the
batches a notebook's training loop iterates over (num_workers is accepted and
the loading stays in this process)."""
import numbers

import numpy as np

from .._tensor import Tensor, seed_from_generator, stack, tensor


class Dataset:
    """A map-style dataset: subclasses define __getitem__ (and __len__)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class TensorDataset(Dataset):
    """Samples are the index-th rows of tensors of the same first dimension."""

    def __init__(self, *tensors):
        if any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError(f"[TensorDataset] first dimensions differ: {[t.shape[0] for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


def default_collate(batch):
    """torch's rule: tensors, arrays and numbers are stacked; tuples and dicts
    are collated field by field."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch)
    if isinstance(first, np.ndarray):
        return tensor(np.stack(batch))
    if isinstance(first, (bool, np.bool_)):
        return tensor(np.array(batch, dtype=bool))
    if isinstance(first, numbers.Integral):
        return tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return tensor(np.array(batch, dtype=np.float32))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise ValueError("[default_collate] each sample of a batch must have the same number of fields")
        return type(first)(default_collate(list(f)) for f in zip(*batch)) if isinstance(first, tuple) else \
            [default_collate(list(f)) for f in zip(*batch)]
    raise TypeError(f"[default_collate] cannot batch samples of type {type(first).__name__}; pass a collate_fn")


class DataLoader:
    """Batches of a dataset: shuffled (from the seeded global generator, so
    peftcpp.manual_seed fixes the order) or in order, the last partial batch
    kept or dropped."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 generator=None, **kwargs):
        if sampler is not None or batch_sampler is not None:
            raise ValueError("[DataLoader] sampler and batch_sampler are not supported (use shuffle)")
        if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or batch_size < 1):
            raise ValueError(f"[DataLoader] batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.num_workers = num_workers
        self.collate_fn = collate_fn or default_collate

    def _order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng(seed_from_generator()).permutation(n)

    def __iter__(self):
        order = self._order()
        if self.batch_size is None:  # no batching: one sample at a time
            for i in order:
                yield self.dataset[int(i)]
            return
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) < self.batch_size and self.drop_last:
                return
            yield self.collate_fn([self.dataset[int(i)] for i in idx])

    def __len__(self):
        n = len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
