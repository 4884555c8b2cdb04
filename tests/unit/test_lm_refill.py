"""The harness's lm-eval model refills its batch: rows freed by finished answers are taken by waiting requests, and
requests that differ only in their token budget share batches (cognitive/evaluation/lm.py, `_generate_refilling`)."""

from __future__ import annotations

import pytest
from lm_eval.api.instance import Instance

from tests.unit.test_kv_cache import _generate_until, _harness_models

CONTEXTS = [f"Question {i}: what is {17 * i} plus {5 + i}?" + " Think." * (i % 5) for i in range(20)]
BUDGETS = (12, 40, 25)  # max_gen_toks of request i: BUDGETS[i % 3]


def _requests(stops: list[str], contexts=CONTEXTS, budgets=BUDGETS, **extra) -> list[Instance]:
    return [
        Instance("generate_until", {}, (c, {"until": stops, "max_gen_toks": budgets[i % len(budgets)], **extra}), i)
        for i, c in enumerate(contexts)
    ]


def _calls(model) -> list[tuple[int, int]]:
    """(rows, tokens) of every forward call of `model` from now on."""
    shapes = []
    model.register_forward_pre_hook(lambda _, a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    return shapes


@pytest.fixture(scope="module")
def stops(embedded_tokenizer):
    """Stop sequences taken from the tiny model's own free answers, so that rows end at many different lengths."""
    _, _, theirs = _harness_models(embedded_tokenizer)
    free = _generate_until(theirs, CONTEXTS, ["<never>"])
    return [free[row][(8 * row) % 30 : (8 * row) % 30 + 4] for row in (1, 2, 3, 7, 11)]


@pytest.mark.parametrize("modules", [False, True])
def test_refilled_batches_answer_what_lm_evals_hf_model_does(embedded_tokenizer, stops, modules):
    """20 requests in three budgets, 6 rows at a time: waiting requests join the batch as rows finish, every answer
    is lm_eval `hf`'s (fp32: no rounding differences), and fewer rows are computed than in lm_eval's batches."""
    model, ours, theirs = _harness_models(embedded_tokenizer, modules)
    calls = _calls(model)
    expected = theirs.generate_until(_requests(stops), disable_tqdm=True)
    hf_calls = len(calls)
    answers = ours.generate_until(_requests(stops), disable_tqdm=True)
    assert answers == expected
    assert len(set(map(len, answers))) > 5  # answers of many lengths: rows finished at different times
    hf, mine = calls[:hf_calls], calls[hf_calls:]
    prefills = [rows for rows, tokens in mine if tokens > 1]
    assert prefills[0] == 6 and len(prefills) > 2 and sum(prefills) == len(CONTEXTS)  # rows joined later
    assert max(rows for rows, _ in mine) <= 6
    decoded = [sum(rows for rows, tokens in c if tokens == 1) for c in (hf, mine)]
    assert decoded[1] < decoded[0]  # fewer rows computed per generated token


def test_requests_that_differ_only_in_budget_share_a_batch_each_held_to_its_own(embedded_tokenizer, stops):
    """Three budgets of 4 requests each (lm_eval: three batches) fill one batch of 12; each answer keeps its own
    budget: the same answers as lm_eval's."""
    model, ours, theirs = _harness_models(embedded_tokenizer)
    ours.batch_size_per_gpu = theirs.batch_size_per_gpu = 12
    requests = _requests(["<never>"], CONTEXTS[:12])
    expected = theirs.generate_until(requests, disable_tqdm=True)
    calls = _calls(model)
    assert ours.generate_until(_requests(["<never>"], CONTEXTS[:12]), disable_tqdm=True) == expected
    assert [rows for rows, tokens in calls if tokens > 1] == [12]  # one prefill of all three budgets
    assert len({len(a) for a in expected}) > 3


def test_a_context_with_two_budgets_keeps_its_settings_and_sampling_is_not_refilled(embedded_tokenizer):
    _, ours, _ = _harness_models(embedded_tokenizer)
    twice = _requests(["\n"], [CONTEXTS[0], CONTEXTS[0], CONTEXTS[1]], budgets=(12, 40, 40))
    shared, budgets = ours._one_budget(twice)
    assert [r.args[1]["max_gen_toks"] for r in shared] == [12, 40, 40] and budgets == {}
    other = _requests(["\n"], CONTEXTS[:3], budgets=(12, 40))
    shared, budgets = ours._one_budget(other)
    assert [r.args[1]["max_gen_toks"] for r in shared] == [40, 40, 40]
    assert sorted(budgets.values()) == [12, 12, 40] and [r.args[1]["max_gen_toks"] for r in other] == [12, 40, 12]
    # a context with two budgets in different groups (other stop sequences): neither group is merged
    across = [
        Instance("generate_until", {}, (c, {"until": until, "max_gen_toks": budget}), i)
        for i, (c, until, budget) in enumerate(
            [
                (CONTEXTS[0], ["\n"], 32),
                (CONTEXTS[1], ["\n"], 64),
                (CONTEXTS[0], ["Q:"], 256),
                (CONTEXTS[2], ["Q:"], 256),
            ]
        )
    ]
    shared, budgets = ours._one_budget(across)
    assert [r.args[1]["max_gen_toks"] for r in shared] == [32, 64, 256, 256] and budgets == {}
    # a context that the largest budget would cut shorter (lm_eval keeps max_length - budget tokens of it)
    ours._max_length = len(embedded_tokenizer(CONTEXTS[0]).input_ids) + 20
    shared, _ = ours._one_budget(other)
    assert [r.args[1]["max_gen_toks"] for r in shared] == [12, 40, 12]
    ours._max_length = None
    assert ours._can_refill(other, 6)
    assert not ours._can_refill(_requests(["\n"], CONTEXTS[:3], do_sample=True, temperature=0.7), 6)
    assert not ours._can_refill(other[:1], 6)


def test_a_special_token_stop_ends_a_refilled_row_before_it(embedded_tokenizer):
    """A row that emits a stop sequence which is a special token (not the end-of-sequence one) ends there, answer
    cut before it. lm_eval `hf` would keep generating that row until its whole batch stopped and keep that text
    (its stopping criteria see special tokens, its answers skip them); the other rows answer as in lm_eval."""
    model, ours, theirs = _harness_models(embedded_tokenizer)
    special = embedded_tokenizer.convert_ids_to_tokens(0)  # <|endoftext|>: special, not the end of sequence here
    stops = [special, "<never>"]
    first = embedded_tokenizer(CONTEXTS[0]).input_ids  # the row forced to emit it: CONTEXTS[0]'s

    def the_special_token_for_row_zero(module, args, kwargs, output):
        ids = kwargs["input_ids"]
        for row in range(ids.shape[0]):
            if ids.shape[1] > 1 and ids[row, -len(first) :].tolist() == first:
                output.logits[row, -1, :] = -1e4
                output.logits[row, -1, 0] = 1e4
        return output

    model.register_forward_hook(the_special_token_for_row_zero, with_kwargs=True)
    expected, answers = (
        lm.generate_until(_requests(stops, CONTEXTS[:8], budgets=(20,)), True) for lm in (theirs, ours)
    )
    assert answers[0] == "" and expected[0] != ""  # lm_eval's row went on after the special token
    assert answers[1:] == expected[1:] and all(answers[1:])


def test_refill_false_keeps_lm_evals_batches(embedded_tokenizer, stops):
    from cognitive.evaluation.lm import BufferedHFLM

    model, _, theirs = _harness_models(embedded_tokenizer)
    ours = BufferedHFLM(pretrained=model, tokenizer=embedded_tokenizer, batch_size=6, refill=False)
    calls = _calls(model)
    answers = ours.generate_until(_requests(stops), disable_tqdm=True)
    ours_calls = len(calls)
    assert answers == theirs.generate_until(_requests(stops), disable_tqdm=True)
    prefills = [[rows for rows, tokens in part if tokens > 1] for part in (calls[:ours_calls], calls[ours_calls:])]
    assert prefills[0] == prefills[1] and len(prefills[0]) > 3  # lm_eval's batches, one by one
