"""packed_sdpa (cognitive/model/packed_attention.py): a packed row's sequences attend to themselves alone, with the
outputs and gradients of each sequence run apart; without sequence boundaries it is transformers' SDPA."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cognitive.model.packed_attention import PACKED_SDPA, packed_sdpa_attention, packed_sdpa_mask, register_packed_sdpa


class _Attention(torch.nn.Module):  # what transformers' attention functions read from the module
    num_key_value_groups = 3
    is_causal = True


def _qkv(total: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 6, total, 8, generator=g, requires_grad=True)
    k = torch.randn(1, 2, total, 8, generator=g, requires_grad=True)
    v = torch.randn(1, 2, total, 8, generator=g, requires_grad=True)
    return q, k, v


def test_each_packed_sequence_attends_to_itself_alone():
    lengths = [5, 1, 9, 3]
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    q, k, v = _qkv(sum(lengths))
    out, weights = packed_sdpa_attention(_Attention(), q, k, v, None, scaling=0.3, cu_seq_lens_q=bounds)
    assert weights is None and out.shape == (1, sum(lengths), 6, 8)
    out.square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]

    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    pieces = []
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):  # each sequence run apart
        kk, vv = (t[:, :, start:end].repeat_interleave(3, dim=1) for t in (k2, v2))
        pieces.append(F.scaled_dot_product_attention(q2[:, :, start:end], kk, vv, is_causal=True, scale=0.3))
    apart = torch.cat(pieces, dim=2).transpose(1, 2)
    apart.square().sum().backward()
    assert torch.allclose(out, apart, atol=1e-5)
    for got, want in zip(grads, (q2.grad, k2.grad, v2.grad)):
        assert torch.allclose(got, want, atol=1e-5)


def test_without_boundaries_it_is_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = _qkv(7, seed=1)
    mask = torch.ones(1, 1, 7, 7, dtype=torch.bool).tril()
    mask[..., :2] = False  # left padding
    mask[..., :2, :2] = True
    for attention_mask in (None, mask):
        got, _ = packed_sdpa_attention(_Attention(), q, k, v, attention_mask)
        want, _ = sdpa_attention_forward(_Attention(), q, k, v, attention_mask)
        assert torch.equal(got, want)


def test_the_mask_is_left_to_the_boundaries_only_for_packed_rows():
    from transformers.masking_utils import sdpa_mask

    assert register_packed_sdpa() == PACKED_SDPA
    # transformers turns the causal skip off when it finds packed sequences and no padding mask
    assert (
        packed_sdpa_mask(batch_size=1, q_length=6, kv_length=6, attention_mask=None, allow_is_causal_skip=False) is None
    )
    padding = torch.tensor([[0, 1, 1, 1, 1, 1]], dtype=torch.bool)
    got = packed_sdpa_mask(batch_size=1, q_length=6, kv_length=6, attention_mask=padding)
    assert torch.equal(got, sdpa_mask(batch_size=1, q_length=6, kv_length=6, attention_mask=padding))
