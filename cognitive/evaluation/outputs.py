"""What went wrong in a model's outputs, read from its samples (`harness.write_samples` rows): the answer stated
before any working, the output cut off by the token limit, the output caught in a loop.

    output_shares(rows)          # {"documents": 60, "answers_first": 0.05, "token_limit": 0.32, "loop": 0.27}
    repeated_loop("Bob: apple | Bob: apple | Bob: apple | ...")    # True
    hit_token_limit({"output": "...", "generated_tokens": 320, "max_gen_toks": 320})   # True

A repeated-line loop (`repeated_loop`) is either
    - the same block of 1 to 8 consecutive non-empty lines (compared with their ends stripped, holding a letter)
      three times in a row, or
    - with every run of whitespace made one space, the same stretch of 8 to 200 characters holding a letter three
      times in a row (a loop inside one line: "Bob: apple | Bob: apple | Bob: apple |", "the the the the the the").
Anywhere in the output, not only at its end: a model that loops and then stops still looped. Numbers, rules and
tables of symbols ("0000000000", "|---|---|---|") hold no letter and do not count; a table row of six identical
word cells ("| no | no | no | no | no | no |") does. Only the first LOOP_WINDOW characters are read, which bounds the
time on any string (measured on the 2 shared cores: ~20-50 ms for 2,000 characters without a loop, 0.1 s for
16,000 random characters).

The token limit (`hit_token_limit`): lm-eval strips the stop sequence and the end-of-turn token from the text, so
the text alone cannot tell an answer that stopped from one that was cut off. The samples carry the output's length
in the model's own tokens (`generated_tokens`: the output encoded again by its tokenizer, `harness.write_samples`)
and the limit it was generated under (`max_gen_toks`); an output hit the limit when it is within
TOKEN_LIMIT_SLACK of it (encoding the decoded text again can give a few tokens fewer than were generated: a model
may emit a word in pieces the tokenizer would merge, and special tokens are dropped from the text). The count is
near exact on text (tests/unit/test_outputs.py) and a lower bound in general: a run the tokenizer merges much further
(a random model's eight "\n" tokens encode again as two) reads as not cut off. Samples written before these fields
existed read None (unknown) and are left out of the share.

Every function here takes any value and never raises.
"""

from __future__ import annotations

import re

import numpy as np

from cognitive.data.answers import answers_first

LOOP_LINES = 8  # the longest block of lines that counts as a repeated unit
LOOP_REPEATS = 3
LOOP_MIN_CHARS, LOOP_MAX_CHARS = 8, 200  # the stretch inside a line
LOOP_WINDOW = 16_000  # characters read (a 4k-token output)
_LETTER = re.compile(r"[^\W\d_]")


def loop_unit(output) -> str | None:
    """The repeated unit of a loop in `output` (see the module docstring), or None: the block of lines joined by
    newlines, else the stretch of characters."""
    if not isinstance(output, str):
        return None
    text = output[:LOOP_WINDOW]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for size in range(1, LOOP_LINES + 1):
        for start in range(len(lines) - LOOP_REPEATS * size + 1):
            block = lines[start : start + size]
            if all(lines[start + k * size : start + (k + 1) * size] == block for k in range(1, LOOP_REPEATS)):
                if any(_LETTER.search(line) for line in block):
                    return "\n".join(block)
    return _repeated_stretch(" ".join(text.split()) + " ")  # the space closes the last repeat of a line-end loop


def _repeated_stretch(flat: str) -> str | None:
    """The shortest stretch of LOOP_MIN_CHARS..LOOP_MAX_CHARS characters, holding a letter, that `flat` has
    LOOP_REPEATS times in a row: for a period p, a run of (LOOP_REPEATS - 1) * p positions j where flat[j] ==
    flat[j + p] (numpy, one comparison per period)."""
    codes = np.frombuffer(flat.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    for period in range(LOOP_MIN_CHARS, min(LOOP_MAX_CHARS, len(codes) // LOOP_REPEATS) + 1):
        same = np.concatenate(([False], codes[:-period] == codes[period:], [False]))
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))  # where runs of equal pairs start and end
        starts, ends = edges[::2], edges[1::2]
        for start in starts[ends - starts >= (LOOP_REPEATS - 1) * period]:
            if _LETTER.search(unit := flat[start : start + period]):
                return unit
    return None


def repeated_loop(output) -> bool:
    """True when `output` holds a repeated-line loop (see the module docstring)."""
    return loop_unit(output) is not None


TOKEN_LIMIT_SLACK = (2, 0.02)  # within max(2 tokens, 2% of the limit) of it


def hit_token_limit(row) -> bool | None:
    """Whether a sample's output ran to its token limit: its `generated_tokens` is within TOKEN_LIMIT_SLACK of its
    `max_gen_toks`. None (unknown) unless the row carries both as numbers, the limit above 0."""
    if not isinstance(row, dict):
        return None
    tokens, limit = row.get("generated_tokens"), row.get("max_gen_toks")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in (tokens, limit)):
        return None
    if limit <= 0 or tokens < 0:
        return None
    slack = max(TOKEN_LIMIT_SLACK[0], TOKEN_LIMIT_SLACK[1] * limit)
    return tokens >= limit - slack


def output_shares(rows) -> dict:
    """Over a list of sample rows (dicts with an "output"): how many, and the shares with the answer stated first
    (`answers.answers_first`), that hit the token limit (over the rows where it is known; None when it is known for
    none) and with a repeated-line loop."""
    rows = [row for row in rows if isinstance(row, dict)] if isinstance(rows, (list, tuple)) else []
    outputs = [row.get("output") for row in rows]
    limits = [hit for hit in map(hit_token_limit, rows) if hit is not None]
    n = len(rows)
    return {
        "documents": n,
        "answers_first": sum(map(answers_first, outputs)) / n if n else None,
        "token_limit": sum(limits) / len(limits) if limits else None,
        "loop": sum(map(repeated_loop, outputs)) / n if n else None,
    }
