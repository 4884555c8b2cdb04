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
part copied once. Beam reordering writes the reordered rows back into the buffers. Crop, batch selection and reset
are DynamicLayer's own: any of them that leaves the keys outside the buffer makes the next update start a new one
from them. Keys and values may differ in width (each has its own buffer). Only for decoders whose layers are all
full attention, and not where the generation config names its own cache (`buffered_cache` returns None: generate()
builds its cache as before).
"""

from __future__ import annotations

import torch
import transformers
from packaging.version import Version
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from cognitive.model.modules import attach_stores, cache_stores

GROWTH = 256  # tokens of room added, at least, when a layer's buffer is full
# generate()'s argument for a cache object: renamed from past_key_values in transformers 5.24
CACHE_ARG = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"


class BufferedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views of buffers [batch, heads, capacity, head_dim]."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        past, new = self.get_seq_length(), key_states.shape[-2]
        if not self._fits(key_states, value_states, past + new):
            self._rebuffer(key_states, value_states, past, past + new)
        keys, values = self._buffers
        keys[:, :, past : past + new] = key_states
        values[:, :, past : past + new] = value_states
        self.keys, self.values = keys[:, :, : past + new], values[:, :, : past + new]
        return self.keys, self.values

    def _fits(self, key_states: torch.Tensor, value_states: torch.Tensor, length: int) -> bool:
        """Whether the buffers exist, still hold self.keys (no edit replaced them), match the new states' rows, widths,
        dtype and device, and have room."""
        buffers = getattr(self, "_buffers", None)
        if buffers is None or length > buffers[0].shape[2]:
            return False
        for buffer, states in zip(buffers, (key_states, value_states), strict=True):
            same_rows = buffer.shape[:2] == states.shape[:2] and buffer.shape[3] == states.shape[3]
            if not same_rows or buffer.dtype != states.dtype or buffer.device != states.device:
                return False
        return self.get_seq_length() == 0 or self._keys_in_buffer()

    def _keys_in_buffer(self) -> bool:
        """Whether self.keys is still the filled part of the keys buffer (no edit has replaced it with a copy)."""
        buffers = getattr(self, "_buffers", None)
        return (
            buffers is not None
            and self.keys.data_ptr() == buffers[0].data_ptr()
            and self.keys.stride() == buffers[0].stride()
        )

    def _rebuffer(self, key_states: torch.Tensor, value_states: torch.Tensor, past: int, length: int) -> None:
        capacity = length + max(GROWTH, length // 2)
        keys = key_states.new_empty(*key_states.shape[:2], capacity, key_states.shape[3])
        values = value_states.new_empty(*value_states.shape[:2], capacity, value_states.shape[3])
        if past:
            keys[:, :, :past] = self.keys
            values[:, :, :past] = self.values
        self._buffers = (keys, values)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Beam search: the reordered rows written back into the buffers (one copy, no new buffer)."""
        past = self.get_seq_length()
        if past and self._keys_in_buffer():
            keys, values = self._buffers
            keys[:, :, :past] = self.keys.index_select(0, beam_idx.to(keys.device))
            values[:, :, :past] = self.values.index_select(0, beam_idx.to(values.device))
            self.keys, self.values = keys[:, :, :past], values[:, :, :past]
        else:
            super().reorder_cache(beam_idx)

    def reset(self) -> None:
        self._buffers = None
        super().reset()


class BufferedCache(DynamicCache):
    """DynamicCache with BufferedLayer layers, created as generation needs them."""

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=BufferedLayer)


def buffered_cache(model) -> BufferedCache | None:
    """A BufferedCache for this model's generation, or None where generate() should build its own cache: a decoder
    with any layer that is not full attention (sliding window, linear attention, ...), an encoder-decoder model, or
    a model whose generation config names a cache implementation."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    if getattr(getattr(model, "generation_config", None), "cache_implementation", None):
        return None
    text = config.get_text_config(decoder=True)
    layer_types = getattr(text, "layer_types", None)
    if layer_types is None:  # no per-layer types: full attention unless the config names a sliding window
        sliding = getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True)
        return None if sliding else BufferedCache()
    return BufferedCache() if set(layer_types) == {"full_attention"} else None


def cache_kwargs(model) -> dict:
    """generate() keyword arguments that give it a BufferedCache ({CACHE_ARG: cache}), or {} where `buffered_cache`
    leaves generate() its own cache."""
    cache = buffered_cache(model)
    return {CACHE_ARG: cache} if cache is not None else {}


def stack_left_padded(caches: list[DynamicCache], length: int) -> BufferedCache:
    """One BufferedCache of the rows of `caches`, in order, each cache's keys and values left-padded with zeros to
    `length` tokens (rows of generating batches joined: their attention masks get the same left padding, so the zeros
    are never attended). The cognitive modules' tensors on the caches (keys, values and key validity, tracked state:
    cognitive/model/modules.py) are joined the same way, padding marked invalid. The caches given are not changed."""
    merged = BufferedCache()
    for index, layers in enumerate(zip(*(cache.layers for cache in caches), strict=True)):
        pads = [length - layer.keys.shape[-2] for layer in layers]
        if min(pads) < 0:
            raise ValueError(f"a cache holds {length - min(pads)} tokens, more than {length}")
        keys = torch.cat([_pad_left(layer.keys, pad) for layer, pad in zip(layers, pads, strict=True)])
        values = torch.cat([_pad_left(layer.values, pad) for layer, pad in zip(layers, pads, strict=True)])
        merged.update(keys, values, index)
    stores = [cache_stores(cache) for cache in caches]
    if any(stores):
        joined = {}
        for index in stores[0]:
            named = [store[index] for store in stores]
            joined[index] = {
                name: torch.cat([_pad_left(tensors[name], length - tensors[name].shape[2]) for tensors in named])
                for name in named[0]
            }
        attach_stores(merged, joined)
    return merged


def drop_left(cache: DynamicCache, columns: int) -> BufferedCache:
    """A BufferedCache of `cache` (and of the cognitive modules' tensors on it) without its first `columns` tokens:
    left padding every row has."""
    trimmed = BufferedCache()
    for index, layer in enumerate(cache.layers):
        trimmed.update(layer.keys[:, :, columns:], layer.values[:, :, columns:], index)
    stores = cache_stores(cache)
    if stores:
        attach_stores(trimmed, {i: {n: t[:, :, columns:] for n, t in named.items()} for i, named in stores.items()})
    return trimmed


def _pad_left(tensor: torch.Tensor, count: int) -> torch.Tensor:
    """`count` zeros (False for a mask) before dim 2 of `tensor`: [batch, heads or 1, sequence, ...]."""
    if not count:
        return tensor
    shape = list(tensor.shape)
    shape[2] = count
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)
