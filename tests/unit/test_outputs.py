"""What went wrong in a model's outputs (cognitive/evaluation/outputs.py): loops caught on constructed outputs and
never on our reference solutions, the token limit read from the samples' token counts, the shares, and no input
that makes any of it raise."""

from __future__ import annotations

import random

import pytest

from cognitive.evaluation.outputs import hit_token_limit, loop_unit, output_shares, repeated_loop

LOOPS = {
    "the failure the issue saw": ("Bob: apple | Bob: apple | Bob: apple | Bob: apple | ...", "Bob: apple | "),
    "one line three times": ("Where is the ball?\nBob: apple\nBob: apple\nBob: apple", "Bob: apple"),
    "with blank lines between": ("Step 1: go.\n\nBob: apple\n\nBob: apple\n\n  Bob: apple  \n", "Bob: apple"),
    "a block of two lines": ("Start.\n" + "Alice moves.\nBob waits.\n" * 3, None),
    "a long line": ("x" + ("Then the robot returns to the hall and looks around the room again. " * 3), None),
    "looping then answering": ("the the the the the the\nFinal Answer: 4", "the the "),
    "a long block": ("\n".join([f"Line {i} of a long paragraph that goes on and on." for i in range(8)] * 3), None),
}
NOT_LOOPS = {
    "working then an answer": "1. 12 + 30 = 42\n2. 42 - 2 = 40\n\nFinal Answer: 40",
    "a line twice": "Bob: apple\nBob: apple\nFinal Answer: apple",
    "a short stutter": "the the the the the",
    "a big number": "The total is 1,000,000,000,000,000 dollars.",
    "a table rule": "| name | colour |\n|---|---|---|---|---|---|\n| Alice | red |",
    "digits": "0" * 500,
    "empty": "",
    "blank lines": "\n\n\n\n",
}


@pytest.mark.parametrize("name", LOOPS)
def test_loops_are_caught(name):
    output, unit = LOOPS[name]
    assert repeated_loop(output), name
    if unit is not None:
        assert loop_unit(output) == unit


def test_a_block_of_lines_is_the_unit():
    assert loop_unit(LOOPS["a block of two lines"][0]) == "Alice moves.\nBob waits."


@pytest.mark.parametrize("name", NOT_LOOPS)
def test_outputs_without_a_loop(name):
    assert not repeated_loop(NOT_LOOPS[name]), name


def test_no_reference_solution_is_a_loop():
    """Our generators' solutions (every task type and difficulty) never count as a loop."""
    from cognitive.data.generators import generate_example
    from cognitive.data.schema import DifficultyLevel
    from cognitive.tasks import TASK_TYPES

    for task in TASK_TYPES:
        for difficulty in DifficultyLevel:
            for seed in range(8):
                response = generate_example(task.name, difficulty.value, seed).response
                assert loop_unit(response) is None, (task.name, difficulty.value, seed)


def test_any_input_never_raises():
    rng = random.Random(0)
    alphabet = "ab \n|:.0é😀\t\r\x00\u2028" + "\ud800"
    odd = [None, 3, 2.5, b"Bob: apple" * 3, ["x"], {"output": "x"}, "\ud800" * 40, " " * 50_000, "ab" * 40_000]
    for value in odd + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 600))) for _ in range(300)]:
        assert isinstance(repeated_loop(value), bool)
        assert hit_token_limit(value) is None or isinstance(hit_token_limit(value), bool)
    assert not repeated_loop(None) and not repeated_loop(b"Bob: apple | " * 5)
    for value in (None, 3, "rows", {"output": "x"}, [None, 3, "x"]):
        assert output_shares(value)["documents"] == 0


@pytest.mark.parametrize(
    "row, hit",
    [
        ({"generated_tokens": 320, "max_gen_toks": 320}, True),
        ({"generated_tokens": 318, "max_gen_toks": 320}, True),  # within 2% (6 tokens): re-encoding can merge
        ({"generated_tokens": 313, "max_gen_toks": 320}, False),
        ({"generated_tokens": 7, "max_gen_toks": 8}, True),  # 2 tokens at least
        ({"generated_tokens": 5, "max_gen_toks": 8}, False),
        ({"generated_tokens": 40, "max_gen_toks": 768}, False),
        ({"max_gen_toks": 320}, None),  # samples written before the count: unknown
        ({"generated_tokens": 320, "max_gen_toks": None}, None),
        ({"generated_tokens": "320", "max_gen_toks": 320}, None),
        ({"generated_tokens": True, "max_gen_toks": 1}, None),
        ({"generated_tokens": float("nan"), "max_gen_toks": 320}, None),
        ({"generated_tokens": 3, "max_gen_toks": 0}, None),
        ("not a row", None),
    ],
)
def test_token_limit_read_from_the_samples(row, hit):
    assert hit_token_limit(row) is hit


def test_token_count_of_a_cut_output_reencodes_to_the_limit(embedded_tokenizer):
    """What write_samples counts: the output encoded again. Decoding the first N tokens of plain text and encoding
    it again gives N back (within the slack), so an output cut at N reads as hitting the limit."""
    text = "Alice moves the red ball to the kitchen. Then Bob takes it to the garden, and 12 + 30 = 42. " * 20
    ids = embedded_tokenizer(text, add_special_tokens=False)["input_ids"]
    for limit in (8, 48, 320):
        cut = embedded_tokenizer.decode(ids[:limit], skip_special_tokens=True)
        count = len(embedded_tokenizer(cut, add_special_tokens=False)["input_ids"])
        assert hit_token_limit({"generated_tokens": count, "max_gen_toks": limit})
        assert not hit_token_limit({"generated_tokens": count, "max_gen_toks": limit * 2})


def test_shares():
    rows = [
        {"output": "Final Answer: 4", "generated_tokens": 5, "max_gen_toks": 64},
        {"output": "2 + 2 = 4\nFinal Answer: 4", "generated_tokens": 64, "max_gen_toks": 64},
        {"output": "Bob: apple | Bob: apple | Bob: apple |", "generated_tokens": 64, "max_gen_toks": 64},
        {"output": None},  # no count: left out of the token-limit share
    ]
    assert output_shares(rows) == {"documents": 4, "answers_first": 0.25, "token_limit": 2 / 3, "loop": 0.25}
    assert output_shares([]) == {"documents": 0, "answers_first": None, "token_limit": None, "loop": None}
    assert output_shares([{"output": "x"}])["token_limit"] is None


def test_samples_carry_the_token_count_and_the_limit(embedded_tokenizer, tmp_path):
    """harness.write_samples: the output's length in the model's tokens and the limit of its request (a task's
    max_gen_toks, an alias lm-eval reads, or lm-eval's default 256)."""
    import json

    from cognitive.evaluation.harness import write_samples

    def sample(i, output, gen_kwargs):
        doc = {"id": f"d{i}", "difficulty": "basic"}
        return {
            "doc": doc,
            "resps": [[output]],
            "arguments": [("prompt", gen_kwargs)],
            "metrics": ["score"],
            "score": 0,
        }

    outputs = ["Bob: apple | " * 30, "Final Answer: 4", "", "x"]
    kwargs = [{"max_gen_toks": 64, "until": ["<|im_end|>"]}, {"max_new_tokens": 32}, {"until": []}, None]
    results = {"samples": {"t": [sample(i, o, k) for i, (o, k) in enumerate(zip(outputs, kwargs))]}}
    write_samples(results, tmp_path, embedded_tokenizer)
    rows = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [r["max_gen_toks"] for r in rows] == [64, 32, 256, None]
    assert [r["generated_tokens"] for r in rows] == [len(embedded_tokenizer(o)["input_ids"]) for o in outputs]
    assert [hit_token_limit(r) for r in rows] == [True, False, False, None]
    write_samples(results, tmp_path / "without", None)  # no tokenizer: the rows as before
    assert "generated_tokens" not in json.loads((tmp_path / "without" / "t.jsonl").read_text().splitlines()[0])
