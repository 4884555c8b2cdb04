"""Attention for padding-free batches on a CPU: each packed sequence attends to itself alone, at its own cost.

    model = load_base(name, attn_implementation=PACKED_SDPA)        # after register_packed_sdpa()

TRL's padding-free collator (`padding_free: true`) concatenates a batch's rows into one row and passes the sequence
boundaries (`cu_seq_lens_q`, from position_ids that restart at 0) to the model. With flash attention these become
its varlen kernel; with transformers' SDPA they become a dense [T x T] block-diagonal mask over the whole packed row
(T = the batch's real tokens), which costs what one sequence of length T costs: for 4 rows of ~1000 tokens, 4x the
attention work of the rows apart, and a kernel path without the causal skip. On a CPU, without flash attention:

    packed_sdpa   with `cu_seq_lens_q`: SDPA on each sequence's slice with is_causal (the work of the rows
                  apart, no mask tensor); without (padded batches, generation): transformers' SDPA, unchanged.

Its mask function builds no mask for a packed row (the boundaries carry it) and is transformers' SDPA mask
otherwise. The cognitive modules read the packed layout from position_ids (cognitive/model/modules.py).
Measured with tests/performance/bench_cpu_speed.py (experiments/cpu_speed/README.md).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

PACKED_SDPA = "packed_sdpa"


def packed_sdpa_attention(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs
) -> tuple[torch.Tensor, None]:
    """query [1, heads, T, d], key / value [1, kv_heads, T, d] of one packed row -> ([1, T, heads, d], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None or attention_mask is not None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    groups = query.shape[1] // key.shape[1]
    bounds = bounds.tolist()
    outputs = []
    for start, end in itertools.pairwise(bounds):
        if end > start:
            outputs.append(
                F.scaled_dot_product_attention(
                    query[:, :, start:end],
                    key[:, :, start:end],
                    value[:, :, start:end],
                    dropout_p=dropout,
                    scale=scaling,
                    is_causal=True,
                    enable_gqa=groups > 1,
                )
            )
    out = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
    return out.transpose(1, 2).contiguous(), None


def packed_sdpa_mask(*args, attention_mask=None, allow_is_causal_skip=True, **kwargs):
    """No mask for a packed row (transformers turns the causal skip off when it finds one and no padding mask is
    given: the sequence boundaries reach the attention instead); transformers' SDPA mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None and not allow_is_causal_skip:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, allow_is_causal_skip=allow_is_causal_skip, **kwargs)


def register_packed_sdpa() -> str:
    """Register PACKED_SDPA with transformers' attention and mask interfaces (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_SDPA, packed_sdpa_mask)
    return PACKED_SDPA
