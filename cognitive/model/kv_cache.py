"""A generation cache that appends in place: transformers' DynamicCache without a copy of the whole cache per token.

    from cognitive.model.kv_cache import cache_kwargs
    model.generate(**inputs, **cache_kwargs(model))     # {} for a model it does not fit: DynamicCache as before

transformers' DynamicCache appends each new token's keys and values with `torch.cat`, which copies every layer's
whole cache at every generated token (and allocates it anew: large blocks come fresh from the kernel, page faults
included). On a CPU that copy was the largest single cost of a decoding step: 36% of a batch-16 step of the 135M at
350 tokens, more as the output grows (tests/performance/bench_cpu_speed.py, experiments/cpu_speed/README.md).
BufferedCache keeps each layer's keys and values in a buffer with room to grow, writes the new token into it and
hands attention a view of the filled part. The view holds the same values as DynamicCache's tensor, and SDPA gives
bit-identical outputs on it (tests/unit/test_kv_cache.py), so greedy generation produces the same tokens.

When the buffer is full it is reallocated with half again as much room (at least GROWTH tokens more) and the filled
part copied once. Crop, batch selection, beam reordering and reset are DynamicLayer's own: any of them that leaves
the keys outside the buffer makes the next update start a new one from them. Only for decoders whose layers are all
full attention (`buffered_cache` returns None otherwise: sliding-window layers keep DynamicCache's own handling).
"""

from __future__ import annotations

import torch
import transformers
from packaging.version import Version
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

GROWTH = 256  # tokens of room added, at least, when a layer's buffer is full
# generate()'s argument for a cache object: renamed from past_key_values in transformers 5.24
CACHE_ARG = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"


class BufferedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers [batch, heads, capacity, head_dim]."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        past, new = self.get_seq_length(), key_states.shape[-2]
        if not self._fits(key_states, past + new):
            self._rebuffer(key_states, past, past + new)
        keys, values = self._buffers
        keys[:, :, past : past + new] = key_states
        values[:, :, past : past + new] = value_states
        self.keys, self.values = keys[:, :, : past + new], values[:, :, : past + new]
        return self.keys, self.values

    def _fits(self, key_states: torch.Tensor, length: int) -> bool:
        """Whether the buffers exist, still hold self.keys (no crop-free edit replaced them) and have room."""
        buffers = getattr(self, "_buffers", None)
        if buffers is None or length > buffers[0].shape[2]:
            return False
        keys = buffers[0]
        same_rows = keys.shape[:2] == key_states.shape[:2] and keys.shape[3] == key_states.shape[3]
        if not same_rows or keys.dtype != key_states.dtype or keys.device != key_states.device:
            return False
        if self.get_seq_length() == 0:
            return True
        return self.keys.data_ptr() == keys.data_ptr() and self.keys.stride() == keys.stride()

    def _rebuffer(self, key_states: torch.Tensor, past: int, length: int) -> None:
        batch, heads, _, dim = key_states.shape
        capacity = length + max(GROWTH, length // 2)
        keys = key_states.new_empty(batch, heads, capacity, dim)
        values = key_states.new_empty(batch, heads, capacity, self.values.shape[-1] if past else dim)
        if past:
            keys[:, :, :past] = self.keys
            values[:, :, :past] = self.values
        self._buffers = (keys, values)

    def reset(self) -> None:
        self._buffers = None
        super().reset()


class BufferedCache(DynamicCache):
    """DynamicCache with BufferedLayer layers, created as generation needs them."""

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=BufferedLayer)


def buffered_cache(model) -> BufferedCache | None:
    """A BufferedCache for this model's generation, or None when some layer is not full attention (sliding window,
    linear attention, ...)."""
    config = getattr(model, "config", None)
    text = config.get_text_config(decoder=True) if config is not None else None
    if text is None or (getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True)):
        return None
    layer_types = getattr(text, "layer_types", None) or ["full_attention"]
    return BufferedCache() if set(layer_types) == {"full_attention"} else None


def cache_kwargs(model) -> dict:
    """generate() keyword arguments that give it a BufferedCache ({CACHE_ARG: cache}), or {} when the model has a
    layer that is not full attention."""
    cache = buffered_cache(model)
    return {CACHE_ARG: cache} if cache is not None else {}
