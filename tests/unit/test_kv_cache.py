"""BufferedCache (cognitive/model/kv_cache.py): the same generation as transformers' DynamicCache, appended in place."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache

from cognitive.model import kv_cache
from cognitive.model.inject import inject_cognitive_modules
from cognitive.model.kv_cache import CACHE_ARG, BufferedCache, buffered_cache
from tests.conftest import TINY_MODULES, open_gates, tiny_family, varied_tiny

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = 96


def left_padded_batch():
    rows = [torch.randint(3, VOCAB, (n,), generator=torch.Generator().manual_seed(n)) for n in (5, 9, 7)]
    ids = torch.full((3, 9), 2, dtype=torch.long)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, 9 - len(row) :], mask[i, 9 - len(row) :] = row, 1
    return ids, mask


def generate(model, cache=None, **kwargs):
    ids, mask = left_padded_batch()
    extra = {CACHE_ARG: cache} if cache is not None else {}
    with torch.no_grad():
        return model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=30, do_sample=False, pad_token_id=2, **extra, **kwargs
        )


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_greedy_generation_is_identical_across_regrowth(family, monkeypatch):
    """Greedy tokens equal DynamicCache's exactly, with the buffer regrown many times on the way (GROWTH 4)."""
    monkeypatch.setattr(kv_cache, "GROWTH", 4)
    model = tiny_family(family, VOCAB)
    cache = buffered_cache(model)
    assert isinstance(cache, BufferedCache)
    out = generate(model, cache)
    assert torch.equal(out, generate(model))
    layer = cache.layers[0]
    assert layer.keys.shape[2] == out.shape[1] - 1  # the last token is generated, never fed back
    assert layer._buffers[0].shape[2] > layer.keys.shape[2]
    assert layer.keys.data_ptr() == layer._buffers[0].data_ptr()  # a view of the buffer, not a copy


def test_cognitive_modules_generate_identically():
    model = tiny_family("llama", VOCAB)
    inject_cognitive_modules(model, TINY_MODULES)
    open_gates(model, 0.7)
    assert torch.equal(generate(model, buffered_cache(model)), generate(model))


def test_crop_select_and_reset_keep_it_equal_to_dynamic_cache():
    """The cache edits DynamicLayer defines (crop, batch selection, reset) leave the same keys as DynamicCache's,
    and the next update continues from them."""
    torch.manual_seed(0)
    buffered, dynamic = BufferedCache(), DynamicCache()
    steps = [torch.randn(3, 2, n, 4) for n in (6, 1, 1, 300)]

    def both(fn):
        for cache in (buffered, dynamic):
            fn(cache)
        assert buffered.get_seq_length() == dynamic.get_seq_length()
        if dynamic.get_seq_length():
            assert torch.equal(buffered.layers[0].keys, dynamic.layers[0].keys)
            assert torch.equal(buffered.layers[0].values, dynamic.layers[0].values)

    for k in steps[:3]:
        both(lambda c, k=k: c.update(k, k + 1, 0))
    both(lambda c: c.crop(-2))
    both(lambda c: c.update(steps[3][:, :, :1], steps[3][:, :, :1] + 1, 0))
    both(lambda c: c.batch_select_indices(torch.tensor([2, 0])))
    both(lambda c: c.update(steps[3][:2], steps[3][:2] + 1, 0))  # 300 tokens: past the first buffer's room
    both(lambda c: c.reset())
    both(lambda c: c.update(steps[0], steps[0] + 1, 0))
    assert buffered.get_seq_length() == dynamic.get_seq_length() == 6


def test_sliding_window_models_keep_dynamic_cache():
    mistral = tiny_family("mistral", VOCAB)
    mistral.config.sliding_window = 6
    assert buffered_cache(mistral) is None
    assert buffered_cache(tiny_family("gemma2", VOCAB)) is None  # alternating sliding / full layers
    assert buffered_cache(tiny_family("llama", VOCAB)) is not None


def _generate_until(lm, contexts: list[str], until: list[str], max_gen_toks: int = 40) -> list[str]:
    from lm_eval.api.instance import Instance

    requests = [
        Instance("generate_until", {}, (context, {"until": until, "max_gen_toks": max_gen_toks}), i)
        for i, context in enumerate(contexts)
    ]
    return lm.generate_until(requests, disable_tqdm=True)


CONTEXTS = [f"Question {i}: what is {17 * i} plus {5 + i}?" for i in range(6)]


def _harness_models(tokenizer, modules: bool = False):
    """A tiny Llama (every cognitive module on, if asked) with weights large enough that its greedy answers vary (a
    fresh init repeats one token), and the harness's lm-eval model (segments of 4 tokens) and lm_eval's `hf` on it."""
    from lm_eval.models.huggingface import HFLM

    from cognitive.evaluation.lm import BufferedHFLM

    model = varied_tiny("llama", len(tokenizer), seed=1, modules=modules)
    ours, theirs = (cls(pretrained=model, tokenizer=tokenizer, batch_size=6) for cls in (BufferedHFLM, HFLM))
    ours.prune_every = 4
    return model, ours, theirs


@pytest.mark.parametrize("modules", [False, True])
def test_the_harness_lm_eval_model_answers_what_lm_evals_hf_model_does(embedded_tokenizer, modules):
    """`cognitive-hf` (the harness's model) generates with a BufferedCache and takes the rows whose answer is final
    (an end-of-sequence token, or a stop sequence in the text) out of the batch, and returns lm_eval's `hf` answers."""
    from lm_eval.api.registry import get_model

    from cognitive.evaluation.lm import MIN_ROWS, MODEL_NAME, BufferedHFLM

    assert get_model(MODEL_NAME) is BufferedHFLM
    model, ours, theirs = _harness_models(embedded_tokenizer, modules)
    free = _generate_until(theirs, CONTEXTS, ["<never>"])
    # stop sequences that end rows 1-3 at different lengths, and an end-of-sequence token that ends row 4 early
    stops = [free[row][8 * row : 8 * row + 4] for row in (1, 2, 3)]
    model.generation_config.eos_token_id = embedded_tokenizer(free[4], add_special_tokens=False).input_ids[5]

    rows, caches = [], []
    model.register_forward_pre_hook(lambda _, args, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    generate = model.generate
    model.generate = lambda **kw: caches.append(type(kw.get(CACHE_ARG))) or generate(**kw)
    answers = _generate_until(ours, CONTEXTS, stops)
    assert set(caches) == {BufferedCache} and len(caches) > 1  # several segments, each with the in-place cache
    assert rows[0] == 6 and min(rows) == MIN_ROWS  # finished rows left the batch, down to MIN_ROWS
    assert sum(rows) < 6 * len(rows)
    pruned_rows = list(rows)
    assert answers == _generate_until(theirs, CONTEXTS, stops)
    assert len(set(map(len, answers))) > 2 and len(rows) > len(pruned_rows)  # answers of several lengths


def test_a_stop_sequence_that_is_a_special_token_falls_back_to_one_generate_call(embedded_tokenizer):
    """lm_eval's stopping criteria see special tokens, its answers do not: a row that emits a special stop token
    (not an end-of-sequence one) goes on generating text that its answer includes, until the whole batch stops
    (here at once: every row emits it first). The harness's model notices it and generates that batch in one call,
    as lm_eval does, instead of continuing the row in segments."""
    model, ours, theirs = _harness_models(embedded_tokenizer)
    ours.refill = False  # batch by batch, as lm_eval hands them over (refilled rows: tests/unit/test_lm_refill.py)
    free = _generate_until(theirs, CONTEXTS, ["<never>"])
    special = embedded_tokenizer.convert_ids_to_tokens(0)  # <|endoftext|>: special, not the end of sequence here
    assert special in embedded_tokenizer.all_special_tokens and model.generation_config.eos_token_id != 0
    stops = [special, "\n\n"]

    prefill = []
    model.register_forward_pre_hook(lambda _, args, kw: prefill.append(kw["input_ids"].shape[1] > 1), with_kwargs=True)

    def the_first_token_is_the_special_one(module, args, output):  # at every prefill of the batch
        if prefill[-1]:
            output[:, -1, :] = -1e4
            output[:, -1, 0] = 1e4
        return output

    model.lm_head.register_forward_hook(the_first_token_is_the_special_one)
    expected, answers = (_generate_until(lm, CONTEXTS, stops) for lm in (theirs, ours))
    assert expected == [""] * 6 and all(free)  # lm_eval stopped the batch at its first token
    assert answers == expected


def test_finished_rows_ride_along_where_the_arithmetic_of_the_open_rows_would_change():
    """Open rows always go on; finished ones fill the batch up to MIN_ROWS (those without an end-of-sequence token
    first), and a batch with left padding keeps a padded row (attention keeps its mask)."""
    from cognitive.evaluation.lm import MIN_ROWS, BufferedHFLM

    def keep(final, padded=(0,) * 4, ended=(0,) * 4, rows=(0, 1, 2, 3)):  # flags per row of the whole batch
        flags = [torch.tensor(f, dtype=torch.bool) for f in (final, padded, ended)]
        return BufferedHFLM._keep(torch.tensor(rows), *flags).tolist()

    assert MIN_ROWS == 2
    assert keep([0, 1, 0, 1]) == [0, 2]
    assert keep([0, 0, 0, 0]) == [0, 1, 2, 3]
    assert keep([1, 1, 0, 1]) == [0, 2]  # one open row: a finished one rides along
    assert keep([1, 1, 0, 1], ended=[1, 0, 0, 0]) == [1, 2]  # ... one that has not ended (no pad tokens fed)
    assert keep([1, 1, 0, 1], padded=[0, 0, 0, 1]) == [2, 3]  # ... and padded, since the batch was padded
    assert keep([1, 0, 0, 1], padded=[1, 0, 0, 0]) == [0, 1, 2]  # the open rows are unpadded: a padded one rides
    final, padded = [0] * 5 + [1, 0, 1, 0, 1], [0] * 7 + [1, 0, 0]  # rows 5, 7, 9 finished, row 7 padded
    assert keep(final, padded, ended=[0] * 10, rows=(5, 7, 8, 9)) == [1, 2]  # positions in `rows`


def test_beam_reordering_and_values_of_another_width_match_dynamic_cache():
    """Beam search's reordering (written back into the buffers) and values narrower than keys (as in models that
    cache a latent as keys) give DynamicCache's keys and values."""
    torch.manual_seed(0)
    buffered, dynamic = BufferedCache(), DynamicCache()
    for n in (5, 1, 1):
        k, v = torch.randn(4, 2, n, 8), torch.randn(4, 2, n, 3)
        for cache in (buffered, dynamic):
            cache.update(k, v, 0)
    buffer_before = buffered.layers[0]._buffers[0].data_ptr()
    for cache in (buffered, dynamic):
        cache.reorder_cache(torch.tensor([3, 3, 0, 1]))
        cache.update(torch.ones(4, 2, 1, 8), torch.ones(4, 2, 1, 3), 0)
    assert buffered.layers[0]._buffers[0].data_ptr() == buffer_before  # reordered in place
    assert torch.equal(buffered.layers[0].keys, dynamic.layers[0].keys)
    assert torch.equal(buffered.layers[0].values, dynamic.layers[0].values)


def test_beam_search_generates_identically():
    model = tiny_family("llama", VOCAB)
    kwargs = dict(num_beams=3, num_return_sequences=1)
    assert torch.equal(generate(model, buffered_cache(model), **kwargs), generate(model, **kwargs))


def test_a_named_cache_implementation_or_an_encoder_decoder_keeps_generates_own_cache():
    model = tiny_family("llama", VOCAB)
    model.generation_config.cache_implementation = "static"
    assert buffered_cache(model) is None
    model = tiny_family("llama", VOCAB)
    model.config.is_encoder_decoder = True
    assert buffered_cache(model) is None
