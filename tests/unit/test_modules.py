"""Invariants of the cognitive modules (cognitive/model/modules.py, cognitive/model/inject.py) on every supported
family.

Tiny random-init models (hidden 64, 2 layers), fp32, CPU. With the default module config a 2-layer model gets
working memory on layer 0 and reasoning heads, step predictor, state tracker and planning head on layer 1.
Tolerances are stated per test; "gates open" means every zero-initialised gate is set to a non-zero value so
the modules really change the output (checked in each test, so a test cannot pass with dead modules).
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    DynamicCache,
    Gemma2Config,
    Gemma2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from cognitive.model.inject import capture_aux_outputs, inject_cognitive_modules
from cognitive.model.modules import cognitive_blocks, token_layout
from tests.conftest import open_gates

VOCAB = 96
TOL = 1e-5  # max abs difference of fp32 logits that must be equal


pytestmark = pytest.mark.usefixtures("one_thread")

# family -> (config class, model class, extra config, attention implementation). Mistral and Gemma2 get a
# sliding window shorter than the generated sequences, so sliding-window caches are exercised; Phi3 and Gemma2
# run eager attention (float masks), the others SDPA (bool masks or none).
FAMILIES = {
    "llama": (LlamaConfig, LlamaForCausalLM, {}, "sdpa"),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}, "sdpa"),
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": 6}, "sdpa"),
    "phi3": (Phi3Config, Phi3ForCausalLM, {"pad_token_id": 0}, "eager"),
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, {"head_dim": 16, "sliding_window": 6}, "eager"),
}


def tiny_model(family: str, seed: int = 0):
    config_cls, model_cls, extra, attn = FAMILIES[family]
    config = config_cls(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        **extra,
    )
    config._attn_implementation = attn
    torch.manual_seed(seed)
    return model_cls(config).eval()


def cognitive_model(family: str, gates: float | None = 0.7):
    model = tiny_model(family)
    inject_cognitive_modules(model, {})
    if gates is not None:
        open_gates(model, gates)
    return model


def tokens(*shape, seed=1):
    return torch.randint(1, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def forward(model, input_ids, attention_mask=None, position_ids=None):
    """Logits and aux outputs of one forward pass (no cache)."""
    with torch.no_grad(), capture_aux_outputs(model) as aux:
        logits = model(input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).logits
    return logits, aux


def left_pad(rows: list[torch.Tensor]):
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask


def positions_from_mask(mask):  # what generate() uses: real tokens count 0, 1, 2, ... whatever the padding
    return (mask.cumsum(-1) - 1).clamp(min=0)


FAMILY_NAMES = list(FAMILIES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_identity_at_init(family):
    """(1) Every module on, gates at their initial 0: logits equal the base model's (max abs diff <= 1e-5)."""
    model = tiny_model(family)
    ids, mask = left_pad([tokens(12), tokens(7, seed=2)])
    base = forward(model, ids, mask)[0]
    inject_cognitive_modules(model, {})
    plan = {
        i: sorted(n for n in ("memory", "reasoning", "state", "planning") if getattr(b, n) is not None)
        for i, b in cognitive_blocks(model).items()
    }
    assert plan == {0: ["memory"], 1: ["planning", "reasoning", "state"]}
    logits, aux = forward(model, ids, mask)
    assert (logits - base).abs().max().item() <= TOL
    assert aux.step_logits.shape == (2, 12, 8)
    assert aux.state_logits.shape == (2, 12, 32)
    assert aux.action_logits.shape == (2, 12, 8, 64)
    # the same model with its gates open is a different function (so the comparison above is not vacuous)
    open_gates(model, 0.7)
    assert (forward(model, ids, mask)[0] - base).abs().max().item() > 1e-3


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_causality(family):
    """(2) Changing tokens after position t changes no output (logits, step/state/action logits) at or before t."""
    model = cognitive_model(family)
    t = 5
    ids = tokens(2, 14)
    changed = ids.clone()
    changed[:, t + 1 :] = tokens(2, 14 - t - 1, seed=9)
    a_logits, a_aux = forward(model, ids)
    b_logits, b_aux = forward(model, changed)
    assert (a_logits[:, : t + 1] - b_logits[:, : t + 1]).abs().max().item() <= TOL
    for name in ("step_logits", "state_logits", "action_logits"):
        a, b = getattr(a_aux, name), getattr(b_aux, name)
        assert (a[:, : t + 1] - b[:, : t + 1]).abs().max().item() <= TOL, name
        assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().max().item() > 1e-6, name  # later outputs do react
    assert (a_logits[:, t + 1 :] - b_logits[:, t + 1 :]).abs().max().item() > 1e-3


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_no_hidden_state_and_batch_independence(family):
    """(3) Same input twice -> same output; an item's outputs do not depend on the other items of its batch,
    with left padding and with right padding (<= 1e-5 on its real positions)."""
    model = cognitive_model(family)
    short, long = tokens(9, seed=3), tokens(15, seed=4)
    alone_logits, alone_aux = forward(model, short.unsqueeze(0))
    again_logits, again_aux = forward(model, short.unsqueeze(0))
    assert torch.equal(alone_logits, again_logits)
    assert torch.equal(alone_aux.state_logits, again_aux.state_logits)

    # left padding: `short` is row 0, padded in front by 6
    ids, mask = left_pad([short, long])
    logits, aux = forward(model, ids, mask, positions_from_mask(mask))
    assert (logits[0, 6:] - alone_logits[0]).abs().max().item() <= TOL
    for name in ("step_logits", "state_logits", "action_logits"):
        assert (getattr(aux, name)[0, 6:] - getattr(alone_aux, name)[0]).abs().max().item() <= TOL, name
    # the long item is unaffected by the short one too
    long_alone = forward(model, long.unsqueeze(0))[0]
    assert (logits[1] - long_alone[0]).abs().max().item() <= TOL

    # right padding: `short` padded at the end
    ids = torch.zeros(2, 15, dtype=torch.long)
    mask = torch.zeros(2, 15, dtype=torch.long)
    ids[0, :9], mask[0, :9] = short, 1
    ids[1], mask[1] = long, 1
    logits, aux = forward(model, ids, mask)
    assert (logits[0, :9] - alone_logits[0]).abs().max().item() <= TOL
    assert (aux.state_logits[0, :9] - alone_aux.state_logits[0]).abs().max().item() <= TOL


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_generation_cache_matches_no_cache(family):
    """(4) Gates open: greedy generation of 20 tokens, batch of 2 with left padding, is the same with and without
    KV cache (same tokens; per-step scores within 1e-4). Mistral and Gemma2 run past their sliding window."""
    model = cognitive_model(family)
    ids, mask = left_pad([tokens(10, seed=5), tokens(6, seed=6)])
    kwargs = dict(
        attention_mask=mask,
        max_new_tokens=20,
        min_new_tokens=20,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=0,
    )
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert cached.sequences.shape == (2, 30)
    assert torch.equal(cached.sequences, uncached.sequences)
    for step, (a, b) in enumerate(zip(cached.scores, uncached.scores)):
        assert score_diff(a, b) <= 1e-4, f"step {step}"
    # and the modules are really in play: the plain base generates different scores
    base = tiny_model(family).generate(ids, use_cache=True, **kwargs)
    assert max(score_diff(a, b) for a, b in zip(cached.scores, base.scores)) > 1e-3


def score_diff(a, b) -> float:
    """Max abs difference of two score tensors whose -inf entries (tokens banned by min_new_tokens) coincide."""
    assert torch.equal(torch.isinf(a), torch.isinf(b))
    finite = torch.isfinite(a)
    return (a[finite] - b[finite]).abs().max().item()


def test_beam_search_cache_matches_no_cache():
    """Beam search reorders the cache every step; the modules' own cached state must follow."""
    model = cognitive_model("llama")
    ids, mask = left_pad([tokens(8, seed=7), tokens(5, seed=8)])
    kwargs = dict(
        attention_mask=mask, max_new_tokens=12, min_new_tokens=12, num_beams=3, do_sample=False, pad_token_id=0
    )
    assert torch.equal(model.generate(ids, use_cache=True, **kwargs), model.generate(ids, use_cache=False, **kwargs))


def test_cache_crop_is_followed():
    """Cropping the cache (assisted decoding) crops the modules' state too: continuing after a crop gives the
    logits of one uncached forward over the whole sequence."""
    model = cognitive_model("qwen2")
    ids = tokens(1, 14)
    full = forward(model, ids)[0]
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(ids[:, :10], past_key_values=cache, use_cache=True)
        cache.crop(-3)  # keep 7 tokens
        assert cache.get_seq_length() == 7
        logits = model(ids[:, 7:], past_key_values=cache, use_cache=True).logits
    assert (logits - full[:, 7:]).abs().max().item() <= TOL


def test_packed_reasoning_heads_attend_per_sequence_without_a_dense_mask(monkeypatch):
    """A packed row's reasoning heads run SDPA on each sequence's slice (the rows' own work) and give what the
    dense block-diagonal mask gives; the mask is never built."""
    from cognitive.model import modules as m

    torch.manual_seed(0)
    heads = m.ReasoningHeads(32, m.ReasoningHeadsConfig(num_reasoning_heads=2, reasoning_dim=8), step_predictor=False)
    with torch.no_grad():
        heads.gate.fill_(0.7)
    h = torch.randn(1, 16, 32)
    layout = token_layout(None, torch.cat([torch.arange(5), torch.arange(8), torch.arange(3)]).unsqueeze(0), 1, 16, 0)
    assert m._packed_bounds(layout, None) == [0, 5, 13, 16]
    dense = m._causal_mask(layout, None, 16, 16, h.device)
    built = []
    monkeypatch.setattr(m, "_causal_mask", lambda *a, **k: built.append(1))
    packed = heads(h, layout, None)
    assert not built
    monkeypatch.setattr(m, "_packed_bounds", lambda *a: None)
    monkeypatch.setattr(m, "_causal_mask", lambda *a, **k: dense)
    assert (packed - heads(h, layout, None)).abs().max().item() <= TOL
    padded = m.TokenLayout(0, torch.tensor([[True] * 15 + [False]]), layout.segment)
    assert m._packed_bounds(padded, padded.valid) is None  # padding: the mask path


def test_packed_sequences_match_separate_sequences():
    """Two sequences packed in one row (position_ids restart, no attention mask) give each sequence's own
    outputs: the reasoning heads do not look across the boundary and the state restarts."""
    model = cognitive_model("llama")
    a, b = tokens(7, seed=10), tokens(9, seed=11)
    packed = torch.cat([a, b]).unsqueeze(0)
    position_ids = torch.cat([torch.arange(7), torch.arange(9)]).unsqueeze(0)
    logits, aux = forward(model, packed, position_ids=position_ids)
    a_logits, _a_aux = forward(model, a.unsqueeze(0))
    b_logits, b_aux = forward(model, b.unsqueeze(0))
    assert (logits[0, :7] - a_logits[0]).abs().max().item() <= TOL
    assert (logits[0, 7:] - b_logits[0]).abs().max().item() <= TOL
    assert (aux.state_logits[0, 7:] - b_aux.state_logits[0]).abs().max().item() <= TOL


def test_token_layout_from_each_mask_form():
    """The layout derived from a 4D bool mask, a 4D float mask, a 2D flash mask and packed position_ids agree."""
    # left padding by 2 in row 0; 5 positions, no cache
    pad = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    bool_mask = (causal & pad[:, None, :])[:, None]  # [2, 1, 5, 5]
    float_mask = torch.where(bool_mask, 0.0, torch.finfo(torch.float32).min)
    unmasked_rows = bool_mask | ~bool_mask.any(-1, keepdim=True)  # kernels that open fully masked rows
    for mask in (bool_mask, float_mask, pad.long(), unmasked_rows):
        layout = token_layout(mask, None, 2, 5, past=0)
        assert torch.equal(layout.valid, pad), mask.dtype
    # a decode step with 6 cached positions, sliding window of 4 keys visible: the new token is valid
    decode = torch.ones(2, 1, 1, 4, dtype=torch.bool)
    assert token_layout(decode, None, 2, 1, past=6).valid.all()
    # packing: a block-diagonal mask and restarting position_ids mark the same sequence starts
    seg = torch.tensor([0, 0, 0, 1, 1])
    packed = (causal & (seg[:, None] == seg[None, :]))[None, None]
    from_mask = token_layout(packed, None, 1, 5, past=0).segment
    from_positions = token_layout(None, torch.tensor([[0, 1, 2, 0, 1]]), 1, 5, past=0).segment
    starts = lambda s: torch.diff(s, dim=-1) != 0  # noqa: E731
    assert torch.equal(starts(from_mask), starts(from_positions))
    assert starts(from_mask).tolist() == [[False, False, True, False]]


def test_flash_attention_mask_forms_give_the_same_block_outputs():
    """flash_attention_2 hands layers a 2D padding mask (or none, with packed position_ids) instead of a 4D mask:
    the block's outputs must be the same as with the equivalent 4D mask. (No flash kernel on CPU: the block is
    driven directly with each mask form.)"""
    model = cognitive_model("llama")
    layer = model.model.layers[1]  # reasoning heads + state tracker + planning
    block = cognitive_blocks(model)[1]
    hidden = torch.randn(2, 8, 64, generator=torch.Generator().manual_seed(0))
    causal = torch.ones(8, 8, dtype=torch.bool).tril()

    pad = torch.ones(2, 8, dtype=torch.bool)
    pad[0, :3] = False  # left padding in row 0
    with torch.no_grad():
        four_d = block.run(layer, {"attention_mask": (causal & pad[:, None, :])[:, None]}, hidden)
        two_d = block.run(layer, {"attention_mask": pad.long()}, hidden)
    assert (four_d[pad] - two_d[pad]).abs().max().item() <= TOL

    seg = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])  # two sequences packed in each row
    position_ids = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
    with torch.no_grad():
        block_diag = block.run(layer, {"attention_mask": (causal & (seg[:, None] == seg))[None, None]}, hidden)
        padding_free = block.run(layer, {"attention_mask": None, "position_ids": position_ids}, hidden)
        unpacked = block.run(layer, {"attention_mask": None}, hidden)  # as if one sequence per row
    assert (block_diag - padding_free).abs().max().item() <= TOL
    assert (block_diag[:, 5:] - unpacked[:, 5:]).abs().max().item() > 1e-4  # packing does matter here


def test_only_right_padded_single_sequence_rows_skip_the_explicit_mask():
    """Training batches (right padding, one sequence per row) take SDPA's fused causal kernel (no mask: what
    test_no_hidden_state_and_batch_independence's right-padding case checks the outputs of); left padding and
    packing keep the explicit [B, 1, q, q] mask, which they need."""
    from cognitive.model.modules import _causal_mask

    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    packed_positions = torch.tensor([[0, 1, 0, 1], [0, 1, 2, 3]])
    cases = [(right, None, True), (left, None, False), (None, packed_positions, False)]
    for mask, positions, fused in cases:
        layout = token_layout(mask, positions, 2, 4, 0)
        built = _causal_mask(layout, layout.valid, 4, 4, "cpu")
        assert (built is None) == fused, (mask, positions)
        if not fused:
            assert built.shape == (2, 1, 4, 4)
