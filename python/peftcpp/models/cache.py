"""Key/value caches for generation (transformers' DynamicCache and
EncoderDecoderCache semantics)."""
from .. import _core


class DynamicCache:
    """Per layer, keys and values [B, Hkv, S, D] grown along S."""

    def __init__(self):
        self.keys = []
        self.values = []

    def update(self, key, value, layer_idx):
        """Appends this step's key/value for a layer and returns the full ones."""
        while len(self.keys) <= layer_idx:
            self.keys.append(None)
            self.values.append(None)
        if self.keys[layer_idx] is None:
            self.keys[layer_idx], self.values[layer_idx] = key.detach(), value.detach()
        else:
            self.keys[layer_idx] = _core.cat([self.keys[layer_idx], key.detach()], 2)
            self.values[layer_idx] = _core.cat([self.values[layer_idx], value.detach()], 2)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx=0):
        if layer_idx >= len(self.keys) or self.keys[layer_idx] is None:
            return 0
        return self.keys[layer_idx].shape[2]

    def reset(self):
        """Forgets every layer's keys and values."""
        self.keys, self.values = [], []

    def reorder(self, index):
        """Keeps batch rows `index` (int64 tensor), e.g. after dropping finished rows."""
        self.keys = [k.index_select(0, index) if k is not None else None for k in self.keys]
        self.values = [v.index_select(0, index) if v is not None else None for v in self.values]

    def __len__(self):
        return len(self.keys)


class EncoderDecoderCache:
    """Decoder self-attention keys/values (grown each step) and the
    cross-attention keys/values (computed once from the encoder output)."""

    def __init__(self, self_attention_cache=None):
        self.self_attention_cache = self_attention_cache or DynamicCache()
        self.cross = {}

    def get_seq_length(self, layer_idx=0):
        return self.self_attention_cache.get_seq_length(layer_idx)
