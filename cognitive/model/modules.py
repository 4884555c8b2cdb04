"""Cognitive modules: adapter layers added beside the decoder layers of a pretrained causal LM.

This file imports only torch and transformers, so a merged release can ship it alone as remote code.
Read it top to bottom:

  1. Config          the guide's `cognitive_modules` block (names unchanged) plus a few optional keys.
  2. Token layout    what each new position may see (causal order, padding, packed sequences, KV cache),
                     derived from the inputs the decoder layer itself receives.
  3. Generation cache  the modules' own per-sequence state (reasoning K/V, tracked state) kept on the
                     transformers `Cache` object that `generate()` passes to every layer for the whole call.
  4. The modules     WorkingMemory, ReasoningHeads (+ step predictor), StateTracker, PlanningHead.
  5. CognitiveBlock  the modules that sit on one decoder layer, and the forward hook that runs them.
  6. attach / detach, auxiliary outputs (step/state/action logits) and the auxiliary loss.

Every module adds its output to the residual stream through a gate initialised to zero,

    h  ->  h + tanh(g) * f(norm(h)),   g = 0 at init,

so the wrapped model computes exactly the base model's logits until training moves g. The modules are
strictly causal, mutate no parameter in forward and keep no state across calls or batch items: the only
per-sequence state (reasoning keys/values, the tracked state distribution) lives in the generation cache
of the current call. The decoder layer itself is not copied or subclassed: a forward hook adds the modules'
contribution to the layer's output, so the base weights keep their names (`model.layers.3.mlp.up_proj`)
and the modules appear beside them (`model.layers.3.cognitive.reasoning.reasoning_qkv`).
"""

from __future__ import annotations

import functools
import itertools
import math
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_layers import GradientCheckpointingLayer

try:  # inside the cognitive-slm package a bad config is its one-line UserError (the recipes print it, exit 2)
    from cognitive.errors import UserError as _ConfigError
except ImportError:  # shipped alone as remote code: a ValueError with the same one-line message
    _ConfigError = ValueError


NUM_STEP_CLASSES = 8  # the guide's step predictor: "predict next reasoning step" over 8 classes
BLOCK_ATTR = "cognitive"  # attribute of a decoder layer that holds its CognitiveBlock


# ----------------------------------------------------------------------------------------------------------
# 1. Config
# ----------------------------------------------------------------------------------------------------------
# The guide's block, as it appears in a recipe YAML:
#
#   cognitive_modules:
#     working_memory:  {enabled: true, memory_size: 512, update_frequency: 4}
#     reasoning_heads: {enabled: true, num_reasoning_heads: 4, reasoning_dim: 256}
#     state_tracking:  {enabled: true, num_states: 32, state_dim: 128}
#     planning_module: {enabled: true, planning_horizon: 8, action_space_size: 64}
#
# Optional keys beyond the guide (defaults shown in the dataclasses): the width of the memory read-out,
# explicit layer placement, and the weights of the auxiliary losses (0 = off).


@dataclass
class WorkingMemoryConfig:
    enabled: bool = True
    memory_size: int = 512  # learned memory slots
    update_frequency: int = 4  # a memory read in decoder layers 0, f, 2f, ...
    num_heads: int = 4  # cross-attention heads reading the slots
    memory_dim: int = 256  # width of the slots' keys and values (split over the heads)
    layers: list[int] | None = None  # explicit decoder-layer indices instead of every f-th layer


@dataclass
class ReasoningHeadsConfig:
    enabled: bool = True
    num_reasoning_heads: int = 4  # extra causal attention heads
    reasoning_dim: int = 256  # width of each head
    layers: list[int] | None = None  # default: every layer of the upper half of the model
    aux_loss_weight: float = 0.0  # weight of the step-prediction loss (step labels per token)


@dataclass
class StateTrackingConfig:
    enabled: bool = True
    num_states: int = 32  # size of the soft state distribution carried along the sequence
    state_dim: int = 128  # width of the state embeddings and of the transition network
    layer: int = -1  # decoder layer (default: the last one)
    aux_loss_weight: float = 0.0  # weight of the state loss (state labels per token)


@dataclass
class PlanningModuleConfig:
    enabled: bool = True
    planning_horizon: int = 8  # how many next actions each position predicts
    action_space_size: int = 64  # classes per action
    layer: int = -1  # decoder layer (default: the last one)
    aux_loss_weight: float = 0.0  # weight of the action loss (action labels per token and horizon step)


MODULE_NAMES = ("working_memory", "reasoning_heads", "state_tracking", "planning_module")


@dataclass
class CognitiveModulesConfig:
    working_memory: WorkingMemoryConfig = field(default_factory=WorkingMemoryConfig)
    reasoning_heads: ReasoningHeadsConfig = field(default_factory=ReasoningHeadsConfig)
    state_tracking: StateTrackingConfig = field(default_factory=StateTrackingConfig)
    planning_module: PlanningModuleConfig = field(default_factory=PlanningModuleConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> CognitiveModulesConfig:
        """Parse the `cognitive_modules` block; an unknown key or a wrongly typed value is a one-line error."""
        d = {} if d is None else d
        if not isinstance(d, dict):
            raise _ConfigError(f"cognitive_modules: expected a mapping of modules, got {d!r}")
        for key in d:
            if key not in MODULE_NAMES:
                raise _ConfigError(f"cognitive_modules.{key}: unknown key (known: {', '.join(MODULE_NAMES)})")
        sections = {}
        for f in fields(cls):
            section_type = f.default_factory().__class__
            sections[f.name] = _parse_section(section_type, d.get(f.name), f"cognitive_modules.{f.name}")
        return cls(**sections)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def any_enabled(self) -> bool:
        return any(getattr(self, name).enabled for name in MODULE_NAMES)

    def layer_plan(self, num_layers: int) -> dict[int, list[str]]:
        """Which modules sit on which decoder layer: {layer index: [module names in the order they run]}.

        The step predictor rides on the last reasoning layer. Call `validate` first.
        """
        plan: dict[int, list[str]] = {}

        def put(layer: int, name: str) -> None:
            plan.setdefault(layer % num_layers, []).append(name)

        wm, rh, st, pm = self.working_memory, self.reasoning_heads, self.state_tracking, self.planning_module
        if wm.enabled:
            for i in wm.layers if wm.layers is not None else range(0, num_layers, wm.update_frequency):
                put(i, "working_memory")
        if rh.enabled:
            for i in rh.layers if rh.layers is not None else range(num_layers // 2, num_layers):
                put(i, "reasoning_heads")
        if st.enabled:
            put(st.layer, "state_tracking")
        if pm.enabled:
            put(pm.layer, "planning_module")
        return dict(sorted(plan.items()))

    def validate(self, num_layers: int) -> None:
        """Reject sizes that cannot work and layer indices the base does not have (one-line error)."""
        wm, rh, st, pm = self.working_memory, self.reasoning_heads, self.state_tracking, self.planning_module
        positive = {
            "working_memory.memory_size": wm.memory_size,
            "working_memory.update_frequency": wm.update_frequency,
            "working_memory.num_heads": wm.num_heads,
            "working_memory.memory_dim": wm.memory_dim,
            "reasoning_heads.num_reasoning_heads": rh.num_reasoning_heads,
            "reasoning_heads.reasoning_dim": rh.reasoning_dim,
            "state_tracking.state_dim": st.state_dim,
            "planning_module.planning_horizon": pm.planning_horizon,
            "planning_module.action_space_size": pm.action_space_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise _ConfigError(f"cognitive_modules.{key}: must be >= 1, got {value}")
        if st.num_states < 2:
            raise _ConfigError(f"cognitive_modules.state_tracking.num_states: must be >= 2, got {st.num_states}")
        if wm.memory_dim % wm.num_heads:
            raise _ConfigError(
                f"cognitive_modules.working_memory.memory_dim: {wm.memory_dim} is not divisible by "
                f"working_memory.num_heads {wm.num_heads}"
            )
        for key, weight in (
            ("reasoning_heads.aux_loss_weight", rh.aux_loss_weight),
            ("state_tracking.aux_loss_weight", st.aux_loss_weight),
            ("planning_module.aux_loss_weight", pm.aux_loss_weight),
        ):
            if weight < 0:
                raise _ConfigError(f"cognitive_modules.{key}: must be >= 0, got {weight}")
        placements = {
            "working_memory.layers": wm.layers or [],
            "reasoning_heads.layers": rh.layers or [],
            "state_tracking.layer": [st.layer],
            "planning_module.layer": [pm.layer],
        }
        for key, layers in placements.items():
            for i in layers:
                if not -num_layers <= i < num_layers:
                    raise _ConfigError(
                        f"cognitive_modules.{key}: layer {i} is beyond the model (the base has {num_layers} "
                        f"decoder layers: 0..{num_layers - 1}, or -{num_layers}..-1)"
                    )
            normalized = [i % num_layers for i in layers]
            if len(set(normalized)) != len(normalized):
                raise _ConfigError(f"cognitive_modules.{key}: repeated layer in {layers}")


def _parse_section(section_type: type, value, where: str):
    if value is None:
        return section_type()
    if not isinstance(value, dict):
        raise _ConfigError(f"{where}: expected a mapping, got {value!r}")
    known = {f.name: f for f in fields(section_type)}
    for key in value:
        if key not in known:
            raise _ConfigError(f"{where}.{key}: unknown key (known: {', '.join(known)})")
    kwargs = {}
    for key, raw in value.items():
        default = getattr(section_type(), key)
        kwargs[key] = _parse_value(raw, default, key, f"{where}.{key}")
    return section_type(**kwargs)


def _parse_value(raw, default, key: str, where: str):
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise _ConfigError(f"{where}: expected true or false, got {raw!r}")
        return raw
    if isinstance(default, float):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise _ConfigError(f"{where}: expected a number, got {raw!r}")
        return float(raw)
    if key == "layers":
        if raw is not None and not (isinstance(raw, list) and all(_is_int(i) for i in raw)):
            raise _ConfigError(f"{where}: expected a list of layer indices, got {raw!r}")
        return raw
    if not _is_int(raw):
        raise _ConfigError(f"{where}: expected an integer, got {raw!r}")
    return raw


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# ----------------------------------------------------------------------------------------------------------
# 2. Token layout: what each new position may see
# ----------------------------------------------------------------------------------------------------------
# A decoder layer receives the model's prepared attention mask. Its form depends on the attention kernel:
#   * None                        plain causal attention, no padding (SDPA / flash fast path);
#   * [B, k] 0/1 (flash attention) the padding mask over the k visible keys;
#   * [B, 1, q, k] bool (SDPA)    or float with 0 = visible, very negative = hidden (eager).
# The k key columns are the last k positions of the sequence (sliding-window caches keep fewer), or, for
# static caches, positions 0..k-1. From it we derive, for the q new positions, which are real tokens (not
# padding) and where packed sequences start. The modules then build their own causal masks from these,
# which keeps them independent of the layer's attention window and cache layout.


@dataclass
class TokenLayout:
    """Padding and packing of the q new positions; past positions are described by the generation cache."""

    past: int  # positions already in the cache before these q (0 without cache)
    valid: torch.Tensor | None  # [B, q] bool, False at padding; None = every position is a real token
    segment: torch.Tensor | None  # [B, q] int, index of the packed sequence; None = one sequence per row


def token_layout(attention_mask, position_ids, batch: int, q: int, past: int) -> TokenLayout:
    total = past + q
    if attention_mask is None or attention_mask.dim() == 2:
        valid = None
        if attention_mask is not None:  # flash-attention padding mask over the visible keys
            valid = attention_mask[:, -q:].bool().expand(batch, q)
        segment = None
        if past == 0 and position_ids is not None and position_ids.dim() == 2 and q > 1:
            # padding-free packing: a new sequence starts wherever the positions do not count up by one
            # (the rule transformers itself uses in `find_packed_sequence_indices`)
            positions = position_ids.expand(batch, q)
            starts = torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1) != 1
            if starts.any():
                segment = starts.cumsum(-1)
        return TokenLayout(past, valid, segment)

    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 4:
        raise NotImplementedError(
            f"cognitive modules: unsupported attention mask {type(attention_mask).__name__} "
            "(use attn_implementation 'sdpa', 'eager' or 'flash_attention_2')"
        )
    mask = attention_mask[:, 0].expand(batch, q, attention_mask.shape[-1])  # [B, q, k]
    k = mask.shape[-1]
    columns = torch.arange(q, device=mask.device) + (min(k, total) - q)  # column of each new position

    def visible(cols: torch.Tensor) -> torch.Tensor:  # [B, q] bool: may query i see key column cols[i]?
        picked = mask.gather(2, cols.view(1, q, 1).expand(batch, q, 1)).squeeze(2)
        return picked if picked.dtype == torch.bool else picked > torch.finfo(picked.dtype).min / 2

    # A real token sees itself and no later key (so not the last column, unless it is the last column). A
    # padding query sees nothing, or everything where a kernel un-masks fully masked rows.
    sees_last = visible(torch.full_like(columns, k - 1))
    valid = visible(columns) & (~sees_last | (columns == k - 1))
    segment = None
    if past == 0 and q > 1:
        starts = valid & ~visible((columns - 1).clamp(min=0))  # a real token that may not see its predecessor
        starts[:, 0] = True
        segment = starts.long().cumsum(-1)
    return TokenLayout(past, valid, segment)


# ----------------------------------------------------------------------------------------------------------
# 3. Generation cache
# ----------------------------------------------------------------------------------------------------------
# During generation the modules keep per-sequence tensors (reasoning keys/values and key validity, the
# tracked state per position) in a `SequenceStore` per decoder layer, held in `cache.cognitive_stores`.
# `generate()` passes the same Cache object to every layer for the whole call, so the store lives exactly
# as long as the base model's own keys and values. The cache's batch/length edits (beam reordering,
# cropping for assisted decoding, batch selection, reset) are applied to the stores too.


class SequenceStore:
    """Named tensors of shape [B, x, N, ...] that grow along dim 2 (the sequence) one forward at a time."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[2] if self.tensors else 0

    def append(self, **new: torch.Tensor) -> dict[str, torch.Tensor]:
        for name, t in new.items():
            old = self.tensors.get(name)
            self.tensors[name] = t if old is None else torch.cat([old, t], dim=2)
        return {name: self.tensors[name] for name in new}

    def get(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)

    def crop(self, tokens_to_remove: int) -> None:  # transformers' convention: a negative count
        if tokens_to_remove:
            keep = len(self) - abs(tokens_to_remove)
            self.tensors = {n: t[:, :, :keep] for n, t in self.tensors.items()}

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        self.tensors = {n: t.index_select(0, beam_idx.to(t.device)) for n, t in self.tensors.items()}

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.tensors = {n: t[indices] for n, t in self.tensors.items()}

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.tensors = {n: t.repeat_interleave(repeats, dim=0) for n, t in self.tensors.items()}

    def reset(self) -> None:
        self.tensors = {}


_CACHE_ATTR = "cognitive_stores"
_FOLLOWED_CACHE_METHODS = ("reset", "reorder_cache", "crop", "batch_repeat_interleave", "batch_select_indices")


def _store_for(cache, layer_idx: int, q: int) -> SequenceStore:
    """The store of decoder layer `layer_idx` on this cache, in step with the cache's own length."""
    stores = cache.__dict__.get(_CACHE_ATTR)
    if stores is None:
        stores = {}
        setattr(cache, _CACHE_ATTR, stores)
        for name in _FOLLOWED_CACHE_METHODS:  # bound to this cache object only; the Cache class is untouched
            setattr(cache, name, types.MethodType(_also_on_stores(name), cache))
    store = stores.setdefault(layer_idx, SequenceStore())
    # The base layer has already added this step's q tokens to its own cache.
    past = cache.get_seq_length(layer_idx) - q
    if len(store) > past:  # the cache was cropped behind our back: drop the same tail
        store.crop(-(len(store) - past))
    if len(store) < past:
        raise RuntimeError(
            f"cognitive modules: the generation cache holds {past} past tokens for layer {layer_idx} but the "
            f"modules' state only {len(store)}; a cache filled by a model without cognitive modules cannot be reused"
        )
    return store


def cache_stores(cache) -> dict[int, dict[str, torch.Tensor]]:
    """The modules' per-layer tensors held on a generation cache ({} for a cache they never used)."""
    return {idx: dict(store.tensors) for idx, store in cache.__dict__.get(_CACHE_ATTR, {}).items()}


def attach_stores(cache, tensors: dict[int, dict[str, torch.Tensor]]) -> None:
    """Give a fresh generation cache the modules' per-layer tensors (as `cache_stores` returned them, edited in step
    with the cache: the same rows and length)."""
    for idx, named in tensors.items():
        if _CACHE_ATTR not in cache.__dict__:
            _store_for(cache, idx, cache.get_seq_length(idx))  # creates the stores, follows the cache's edits
        cache.__dict__[_CACHE_ATTR].setdefault(idx, SequenceStore()).tensors = dict(named)


def _also_on_stores(name: str):
    def method(self, *args, **kwargs):
        result = getattr(type(self), name)(self, *args, **kwargs)
        for store in self.__dict__[_CACHE_ATTR].values():
            getattr(store, name)(*args, **kwargs)
        return result

    method.__name__ = name
    return method


# ----------------------------------------------------------------------------------------------------------
# 4. The modules. Each takes the residual stream h [B, q, H] and returns its gated contribution [B, q, H].
# ----------------------------------------------------------------------------------------------------------


class WorkingMemory(nn.Module):
    """`memory_size` learned slots, read by multi-head cross-attention from every token.

    The slots are parameters (keys and values directly, no projection), identical for every sequence and
    never written in forward; each token reads them independently, so the read is trivially causal.
    """

    def __init__(self, hidden_size: int, cfg: WorkingMemoryConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.memory_dim // cfg.num_heads
        self.norm = nn.RMSNorm(hidden_size, eps=1e-6)
        self.memory_query = nn.Linear(hidden_size, cfg.memory_dim, bias=False)
        self.memory_keys = nn.Parameter(torch.empty(cfg.memory_size, cfg.memory_dim))
        self.memory_values = nn.Parameter(torch.empty(cfg.memory_size, cfg.memory_dim))
        self.memory_out = nn.Linear(cfg.memory_dim, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, q, _ = h.shape  # h: [B, q, H]
        M = self.memory_keys.shape[0]
        query = self.memory_query(self.norm(h)).view(B, q, self.num_heads, self.head_dim)
        query = query.transpose(1, 2)  # [B, heads, q, d]
        keys = self.memory_keys.view(M, self.num_heads, self.head_dim).transpose(0, 1)  # [heads, M, d]
        values = self.memory_values.view(M, self.num_heads, self.head_dim).transpose(0, 1)
        keys = keys.to(query.dtype).unsqueeze(0).expand(B, -1, -1, -1)  # [B, heads, M, d]
        values = values.to(query.dtype).unsqueeze(0).expand(B, -1, -1, -1)
        read = F.scaled_dot_product_attention(query, keys, values)  # [B, heads, q, d]
        read = read.transpose(1, 2).reshape(B, q, self.num_heads * self.head_dim)  # [B, q, memory_dim]
        return torch.tanh(self.gate) * self.memory_out(read)  # [B, q, H]


class ReasoningHeads(nn.Module):
    """`num_reasoning_heads` extra causal self-attention heads of width `reasoning_dim`.

    They see every earlier real token of the same sequence (no sliding window, no position encoding: the
    causal order itself tells them where they are), never padding, never a later token. With a generation
    cache they append their keys/values (and which keys are padding) to the layer's SequenceStore, so one
    step of cached decoding computes what a full forward over the whole sequence would.
    """

    def __init__(self, hidden_size: int, cfg: ReasoningHeadsConfig, step_predictor: bool):
        super().__init__()
        self.num_heads = cfg.num_reasoning_heads
        self.head_dim = cfg.reasoning_dim
        width = self.num_heads * self.head_dim
        self.norm = nn.RMSNorm(hidden_size, eps=1e-6)
        self.reasoning_qkv = nn.Linear(hidden_size, 3 * width, bias=False)
        self.reasoning_out = nn.Linear(width, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))
        # the guide's step predictor: which of 8 reasoning-step classes each position is in (aux output only)
        self.step_predictor = nn.Linear(hidden_size, NUM_STEP_CLASSES, bias=False) if step_predictor else None

    def forward(self, h: torch.Tensor, layout: TokenLayout, store: SequenceStore | None) -> torch.Tensor:
        B, q, _ = h.shape  # h: [B, q, H]
        qkv = self.reasoning_qkv(self.norm(h)).view(B, q, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, q, d]
        key_valid = layout.valid  # [B, q] or None
        if store is not None:  # generation: attend over everything this sequence has produced so far
            valid = key_valid if key_valid is not None else torch.ones(B, q, dtype=torch.bool, device=h.device)
            full = store.append(key=key, value=value, key_valid=valid.reshape(B, 1, q))
            key, value = full["key"], full["value"]  # [B, heads, past + q, d]
            key_valid = full["key_valid"].reshape(B, -1)  # [B, past + q]
        bounds = _packed_bounds(layout, key_valid) if store is None else None
        if bounds is not None:  # one packed row: each sequence attends to itself alone, the rows' own work
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], is_causal=True)
                    for a, b in itertools.pairwise(bounds)
                ],
                dim=2,
            )
        else:
            mask = _causal_mask(layout, key_valid, q, key.shape[2], h.device)  # [B, 1, q, past + q] or None
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=mask is None and q > 1)
        out = out.transpose(1, 2).reshape(B, q, self.num_heads * self.head_dim)  # [B, q, heads * d]
        return torch.tanh(self.gate) * self.reasoning_out(out)  # [B, q, H]


def _causal_mask(layout: TokenLayout, key_valid, q: int, total: int, device) -> torch.Tensor | None:
    """[B, 1, q, total] bool mask for the new positions over all keys, or None for plain causal attention.

    A position sees earlier and current keys of its own sequence that are real tokens; a padding position
    sees only itself (its output is ignored, but must stay finite: a fully masked row would give NaN).
    """
    if key_valid is None and layout.segment is None:
        return None  # no padding, no packing, no cache (past == 0): SDPA's is_causal is exact
    if total == q and _right_padded_single_sequences(key_valid, layout.segment):
        # Training batches: padding only after each row's tokens, one sequence per row. Under a plain causal mask
        # a real token sees no padding (it all comes later) and its output is exactly the masked one; only the
        # ignored padding outputs differ. SDPA's is_causal then takes the fused kernel, which never builds the
        # [B, heads, q, q] attention weights (measured: 2.0 GB less for the 135M recipe at 4 x 1024).
        return None
    pos_q = torch.arange(q, device=device) + (total - q)  # [q]
    pos_k = torch.arange(total, device=device)  # [total]
    is_self = pos_k.view(1, total) == pos_q.view(q, 1)  # [q, total]
    allowed = pos_k.view(1, total) <= pos_q.view(q, 1)  # [q, total]
    allowed = allowed.unsqueeze(0)  # [1, q, total]
    if key_valid is not None:
        allowed = allowed & (key_valid.unsqueeze(1) | is_self)  # [B, q, total]
    if layout.segment is not None:  # packed rows (only without cache, so total == q)
        allowed = allowed & (layout.segment.unsqueeze(2) == layout.segment.unsqueeze(1))
    return allowed.unsqueeze(1)


def _packed_bounds(layout: TokenLayout, key_valid) -> list[int] | None:
    """Where the sequences of one packed row (padding-free training: batch 1, no padding, no cache) start and end,
    [0, ..., q]; None for any other layout. Attending within each slice under is_causal is exactly the packed mask
    of `_causal_mask`, at the sequences' own cost instead of one dense [q x q] mask over the whole row (for 4
    sequences of 1024 tokens: 4x the work, and no causal skip). cognitive/model/packed_attention.py does the same for
    the base's attention; this file imports only torch and transformers (it ships alone as remote code)."""
    segment = layout.segment
    if segment is None or layout.past or segment.shape[0] != 1 or (key_valid is not None and not key_valid.all()):
        return None
    counts = torch.unique_consecutive(segment[0], return_counts=True)[1]
    return [0, *torch.cumsum(counts, 0).tolist()]


def _right_padded_single_sequences(key_valid: torch.Tensor | None, segment: torch.Tensor | None) -> bool:
    """Every row is one sequence whose padding, if any, all comes after its real tokens."""
    right_padded = key_valid is None or bool((key_valid[:, 1:] <= key_valid[:, :-1]).all())
    single = segment is None or bool((segment == segment[:, :1]).all())
    return right_padded and single


class StateTracker(nn.Module):
    """A soft distribution over `num_states` states, carried causally along the sequence.

    Each token t proposes a row-stochastic transition matrix T_t [S, S] from its hidden state; the state
    distribution is the product s_t = s_{t-1} @ T_t, starting from a learned s_0. It is differentiable end to
    end (no argmax), stays a probability distribution, ignores padding (T = identity there) and restarts at
    the start of each packed sequence. The contribution to the residual stream is the expected state
    embedding s_t @ E, projected to the hidden size; `state_logits` = log s_t feed an optional state loss.
    """

    CHUNK = 64  # positions combined in parallel by the prefix-product scan; chunks are chained sequentially

    def __init__(self, hidden_size: int, cfg: StateTrackingConfig):
        super().__init__()
        S = self.num_states = cfg.num_states
        self.norm = nn.RMSNorm(hidden_size, eps=1e-6)
        self.state_in = nn.Linear(hidden_size, cfg.state_dim, bias=False)
        self.state_transition = nn.Linear(cfg.state_dim, S * S, bias=False)
        # prior: stay in the current state with probability 1/2 until the transition network learns otherwise
        self.transition_bias = nn.Parameter(torch.eye(S) * math.log(S - 1))
        self.initial_logits = nn.Parameter(torch.zeros(S))
        self.state_embeddings = nn.Parameter(torch.empty(S, cfg.state_dim))
        self.state_out = nn.Linear(cfg.state_dim, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, h, layout: TokenLayout, store: SequenceStore | None) -> tuple[torch.Tensor, torch.Tensor]:
        B, q, _ = h.shape  # h: [B, q, H]
        S = self.num_states
        logits = self.state_transition(F.gelu(self.state_in(self.norm(h)))).view(B, q, S, S)  # [B, q, from, to]
        with torch.autocast(h.device.type, enabled=False):  # products of many matrices: keep them in fp32
            transition = torch.softmax(logits.float() + self.transition_bias.float(), dim=-1)  # rows sum to 1
            initial = torch.softmax(self.initial_logits.float(), dim=-1)  # s_0 [S]
            if layout.valid is not None:  # padding leaves the state unchanged
                eye = torch.eye(S, device=h.device).expand(B, q, S, S)
                transition = torch.where(layout.valid.reshape(B, q, 1, 1), transition, eye)
            if layout.segment is not None:  # a packed sequence starts afresh from s_0, whatever came before
                starts = torch.diff(layout.segment, prepend=layout.segment[:, :1] - 1, dim=-1) != 0
                restart = (initial @ transition).unsqueeze(-2).expand(B, q, S, S)  # every row = s_0 @ T_t
                transition = torch.where(starts.reshape(B, q, 1, 1), restart, transition)
            previous = store.get("state") if store is not None else None
            carried = previous[:, 0, -1] if previous is not None and previous.shape[2] else initial.expand(B, S)
            states = _scan_states(carried, transition, self.CHUNK)  # [B, q, S]
            state_logits = torch.log(states.clamp_min(1e-30))
        if store is not None:
            store.append(state=states.detach().unsqueeze(1))
        expected = states.to(self.state_embeddings.dtype) @ self.state_embeddings  # [B, q, state_dim]
        return torch.tanh(self.gate) * self.state_out(expected), state_logits


def _scan_states(s0: torch.Tensor, transition: torch.Tensor, chunk: int) -> torch.Tensor:
    """All states s_t = s_{t-1} @ T_t, t = 1..q, from s0 [B, S] and T [B, q, S, S]: returns [B, q, S].

    Inside chunks of `chunk` positions the prefix products T_1 @ ... @ T_t are formed in log2(chunk) batched
    matmuls (Hillis-Steele scan); the chunks are then chained one after another.
    """
    B, q, S, _ = transition.shape
    C = min(chunk, q)
    n_chunks = -(-q // C)
    pad = n_chunks * C - q
    if pad:
        eye = torch.eye(S, device=transition.device, dtype=transition.dtype).expand(B, pad, S, S)
        transition = torch.cat([transition, eye], dim=1)
    prefix = transition.view(B, n_chunks, C, S, S)
    offset = 1
    while offset < C:  # prefix[i] <- prefix[i - offset] @ prefix[i]  (earlier matrices on the left)
        prefix = torch.cat([prefix[:, :, :offset], prefix[:, :, :-offset] @ prefix[:, :, offset:]], dim=2)
        offset *= 2
    states, s = [], s0
    for c in range(n_chunks):
        chunk_states = (s.view(B, 1, 1, S) @ prefix[:, c]).squeeze(-2)  # [B, C, S]
        states.append(chunk_states)
        s = chunk_states[:, -1]
    return torch.cat(states, dim=1)[:, :q]


class PlanningHead(nn.Module):
    """Predicts the next `planning_horizon` actions over `action_space_size` classes at every position.

    The predicted action distributions are fed back into the residual stream (through the gate), so the
    plan informs the next-token prediction; `action_logits` feed an optional action loss.
    """

    def __init__(self, hidden_size: int, cfg: PlanningModuleConfig):
        super().__init__()
        self.horizon = cfg.planning_horizon
        self.actions = cfg.action_space_size
        self.norm = nn.RMSNorm(hidden_size, eps=1e-6)
        self.plan_head = nn.Linear(hidden_size, self.horizon * self.actions, bias=False)
        self.plan_out = nn.Linear(self.horizon * self.actions, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, q, _ = h.shape
        action_logits = self.plan_head(self.norm(h)).view(B, q, self.horizon, self.actions)
        plan = torch.softmax(action_logits.float(), dim=-1).to(action_logits.dtype).view(B, q, -1)
        return torch.tanh(self.gate) * self.plan_out(plan), action_logits


# ----------------------------------------------------------------------------------------------------------
# 5. CognitiveBlock: the modules on one decoder layer, run by a forward hook on that layer
# ----------------------------------------------------------------------------------------------------------
# Gradient checkpointing. transformers 5.24 checkpoints a GradientCheckpointingLayer's `forward`, so module
# hooks (ours included) run outside the checkpoint; 5.17 checkpoints `__call__`, hooks included. Where the
# hook runs outside, the block checkpoints itself with the layer's own checkpoint function and flag (so also
# `every_n_layers` and the reentrant choice). Where it runs inside a reentrant checkpoint (5.17), the first
# forward runs without grad: the main output still trains (through the recompute), but captured auxiliary
# outputs could not, so capturing them there is an error that says to use `use_reentrant=False`.
_HOOKS_INSIDE_LAYER_CHECKPOINT = "__call__" in vars(GradientCheckpointingLayer)


class CognitiveBlock(nn.Module):
    """The cognitive modules that sit on decoder layer `layer_idx`, applied in the order of `modules`."""

    def __init__(
        self,
        cfg: CognitiveModulesConfig,
        hidden_size: int,
        layer_idx: int,
        modules: list[str],
        step_predictor: bool = False,
    ):
        super().__init__()
        self.layer_idx = layer_idx
        self.memory = WorkingMemory(hidden_size, cfg.working_memory) if "working_memory" in modules else None
        self.reasoning = (
            ReasoningHeads(hidden_size, cfg.reasoning_heads, step_predictor) if "reasoning_heads" in modules else None
        )
        self.state = StateTracker(hidden_size, cfg.state_tracking) if "state_tracking" in modules else None
        self.planning = PlanningHead(hidden_size, cfg.planning_module) if "planning_module" in modules else None
        self.aux_sink: CognitiveAuxOutputs | None = None  # set only inside `capture_aux_outputs`
        self._hook_handle = None
        self.apply(_init_weights)

    @property
    def needs_layout(self) -> bool:
        return self.reasoning is not None or self.state is not None

    def forward(self, hidden: torch.Tensor, layout: TokenLayout | None, store: SequenceStore | None):
        """hidden [B, q, H] (the decoder layer's output) -> (hidden, step_logits, state_logits, action_logits).

        The computation never depends on whether aux outputs are being captured, so a checkpoint's recompute
        always replays the same graph (the step predictor is one small linear layer).
        """
        dtype = self._dtype()
        h = hidden
        step_logits = state_logits = action_logits = None
        if self.memory is not None:
            h = h + self.memory(h.to(dtype)).to(h.dtype)
        if self.reasoning is not None:
            h = h + self.reasoning(h.to(dtype), layout, store).to(h.dtype)
            if self.reasoning.step_predictor is not None:
                step_logits = self.reasoning.step_predictor(self.reasoning.norm(h.to(dtype)))
        if self.state is not None:
            delta, state_logits = self.state(h.to(dtype), layout, store)
            h = h + delta.to(h.dtype)
        if self.planning is not None:
            delta, action_logits = self.planning(h.to(dtype))
            h = h + delta.to(h.dtype)
        return h, step_logits, state_logits, action_logits

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def run(self, layer: nn.Module, kwargs: dict, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the block to a decoder layer's output; called by the layer's forward hook."""
        checkpointing = (
            bool(getattr(layer, "gradient_checkpointing", False)) and layer.training and torch.is_grad_enabled()
        )
        # transformers 5.17 names the cache `past_key_values`, 5.24 `cache`; caching never mixes with checkpointing
        cache = None if checkpointing else kwargs.get("cache", kwargs.get("past_key_values"))
        B, q, _ = hidden.shape
        store = _store_for(cache, self.layer_idx, q) if cache is not None and self.needs_layout else None
        layout = None
        if self.needs_layout:
            layout = token_layout(
                kwargs.get("attention_mask"), kwargs.get("position_ids"), B, q, len(store) if store is not None else 0
            )
        if checkpointing and not _HOOKS_INSIDE_LAYER_CHECKPOINT and hidden.requires_grad:
            # the layer's own checkpoint function: the same reentrant choice as the base (TRL forces reentrant
            # for PEFT + ZeRO-3). A reentrant checkpoint only trains parameters when its input requires grad,
            # hence the `hidden.requires_grad` condition (otherwise the block runs without checkpoint).
            checkpoint_fn = getattr(layer, "_gradient_checkpointing_func", None)
            checkpoint_fn = checkpoint_fn or functools.partial(checkpoint, use_reentrant=False)
            outputs = checkpoint_fn(functools.partial(self.forward, layout=layout, store=None), hidden)
        else:
            outputs = self.forward(hidden, layout, store)
        hidden, step_logits, state_logits, action_logits = outputs
        if self.aux_sink is not None:
            inside_reentrant_forward = _HOOKS_INSIDE_LAYER_CHECKPOINT and not torch.is_grad_enabled()
            if inside_reentrant_forward and getattr(layer, "gradient_checkpointing", False) and layer.training:
                # inside a reentrant checkpoint's no-grad forward: these aux outputs could not train anything
                raise RuntimeError(
                    "cognitive modules: auxiliary losses under reentrant gradient checkpointing need "
                    "gradient_checkpointing_kwargs={'use_reentrant': False} with this transformers version"
                )
            self.aux_sink.record(step_logits, state_logits, action_logits)
        return hidden


def _cognitive_forward_hook(layer: nn.Module, args: tuple, kwargs: dict, output):
    block: CognitiveBlock = getattr(layer, BLOCK_ATTR)
    if isinstance(output, tuple):  # older decoder layers return (hidden_states, ...)
        return (block.run(layer, kwargs, output[0]),) + output[1:]
    return block.run(layer, kwargs, output)


@torch.no_grad()
def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
    elif isinstance(module, WorkingMemory):
        nn.init.normal_(module.memory_keys, std=0.02)
        nn.init.normal_(module.memory_values, std=0.02)
    elif isinstance(module, StateTracker):
        nn.init.normal_(module.state_embeddings, std=0.02)


# ----------------------------------------------------------------------------------------------------------
# 6. Attach / detach, auxiliary outputs and loss
# ----------------------------------------------------------------------------------------------------------


def unwrap_model(model: nn.Module) -> nn.Module:
    """The HF model inside DDP / DeepSpeed / FSDP wrappers (`.module`) and a PeftModel."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a HF causal LM (also when wrapped, see `unwrap_model`)."""
    model = unwrap_model(model)
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", model)
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no decoder layer list (`model.layers`)")
    return layers


def attach_cognitive_modules(model: nn.Module, cfg: CognitiveModulesConfig, dtype: torch.dtype = torch.float32) -> None:
    """Add the configured modules to the decoder layers of `model`, in place (no validation: see inject.py)."""
    layers = decoder_layers(model)
    hidden_size = model.config.get_text_config().hidden_size
    plan = cfg.layer_plan(len(layers))
    reasoning_layers = [i for i, names in plan.items() if "reasoning_heads" in names]
    step_layer = max(reasoning_layers) if reasoning_layers else None
    for layer_idx, names in plan.items():
        layer = layers[layer_idx]
        if hasattr(layer, BLOCK_ATTR):
            raise ValueError(f"decoder layer {layer_idx} already has cognitive modules")
        device = next(layer.parameters()).device
        with torch.device(device):
            block = CognitiveBlock(cfg, hidden_size, layer_idx, names, step_predictor=layer_idx == step_layer)
        block.to(dtype=dtype)
        setattr(layer, BLOCK_ATTR, block)
        block._hook_handle = layer.register_forward_hook(_cognitive_forward_hook, with_kwargs=True)


def cognitive_blocks(model: nn.Module) -> dict[int, CognitiveBlock]:
    """{decoder layer index: its CognitiveBlock} for the layers that have one."""
    layers = decoder_layers(model)
    return {i: getattr(layer, BLOCK_ATTR) for i, layer in enumerate(layers) if hasattr(layer, BLOCK_ATTR)}


def detach_cognitive_modules(model: nn.Module) -> None:
    """Remove every CognitiveBlock and its hook: the model is the plain base again."""
    for i, block in cognitive_blocks(model).items():
        block._hook_handle.remove()
        delattr(decoder_layers(model)[i], BLOCK_ATTR)


@dataclass
class CognitiveAuxOutputs:
    """Auxiliary outputs of one forward pass, for the auxiliary losses.

    step_logits   [B, T, 8]                                 reasoning-step class of each position
    state_logits  [B, T, num_states]                        log of the tracked state distribution
    action_logits [B, T, planning_horizon, action_space_size] next actions predicted at each position
    """

    step_logits: torch.Tensor | None = None
    state_logits: torch.Tensor | None = None
    action_logits: torch.Tensor | None = None

    def record(self, step_logits, state_logits, action_logits) -> None:
        for name, value in (
            ("step_logits", step_logits),
            ("state_logits", state_logits),
            ("action_logits", action_logits),
        ):
            if value is not None:
                setattr(self, name, value)


@contextmanager
def capture_aux_outputs(model: nn.Module) -> Iterator[CognitiveAuxOutputs]:
    """Collect the auxiliary outputs of the forward pass run inside the `with` block.

        with capture_aux_outputs(model) as aux:
            out = model(**batch)
        loss = out.loss + cognitive_aux_loss(aux, cfg, step_labels=..., state_labels=..., action_labels=...)

    Outside the block nothing is kept; inside, each forward overwrites the previous one's outputs, so use one
    context per forward. Capture only when an aux weight is > 0 (the outputs keep their autograd graph).
    """
    aux = CognitiveAuxOutputs()
    blocks = list(cognitive_blocks(model).values())
    for block in blocks:
        block.aux_sink = aux
    try:
        yield aux
    finally:
        for block in blocks:
            block.aux_sink = None


def cognitive_aux_loss(
    aux: CognitiveAuxOutputs, cfg: CognitiveModulesConfig, step_labels=None, state_labels=None, action_labels=None
) -> torch.Tensor | None:
    """Weighted sum of the auxiliary cross-entropies; labels use -100 for "no label".

    step_labels [B, T] in 0..7, state_labels [B, T] in 0..num_states-1, action_labels [B, T, planning_horizon]
    in 0..action_space_size-1; position t's label is about token t itself (not shifted). A term is skipped
    when its weight is 0, its labels are None, or it has no labelled position. Returns None if every term is.
    """
    terms = []
    if cfg.reasoning_heads.aux_loss_weight and step_labels is not None and aux.step_logits is not None:
        terms.append((cfg.reasoning_heads.aux_loss_weight, F.cross_entropy, aux.step_logits, step_labels))
    if cfg.state_tracking.aux_loss_weight and state_labels is not None and aux.state_logits is not None:
        terms.append((cfg.state_tracking.aux_loss_weight, F.nll_loss, aux.state_logits, state_labels))
    if cfg.planning_module.aux_loss_weight and action_labels is not None and aux.action_logits is not None:
        terms.append((cfg.planning_module.aux_loss_weight, F.cross_entropy, aux.action_logits, action_labels))
    total = None
    for weight, loss_fn, logits, labels in terms:
        labels = labels.to(logits.device)
        if not (labels != -100).any():
            continue
        term = weight * loss_fn(logits.float().flatten(0, -2), labels.flatten(), ignore_index=-100)
        total = term if total is None else total + term
    return total
