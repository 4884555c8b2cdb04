"""Reading a model's final answer: the one home of the answer readers that every task type's scorer (its generator
module, cognitive/data/generators/), the evaluation (cognitive/evaluation/scoring.py, transfer.py) and the rewards
(cognitive/rl/rewards.py) share.

Models write final answers in many ways. `final_answer_text` looks, in order, for:
    "**Final Answer:** ..." / "Final Answer: ..."   (the project's response format)
    "\\boxed{...}"                                   (LaTeX style)
    "#### ..."                                     (GSM8K style)
    "The answer is ..." / "The final answer to the problem is ..."
    "Answer: ..." at the start of a line
and otherwise falls back to the whole output. `answer_region` is the text a scorer reads: after the last
marker, else after the last "Plan:" (planning), else the output's last paragraph (the last line for the
entity answers of state and memory: `entity_region`).

`answers_first` tells an output that states its final answer on its first line, before any working
(experiments/grpo_cpu/bench_grpo.py counts them: GRPO taught the 135M to answer first); `works_then_answers` one in
our solutions' order, working first and the answer once (the `work_then_answer` GRPO reward).

Nothing here raises on model output (tests/unit/test_fuzz_readers.py).
"""

from __future__ import annotations

import re
from fractions import Fraction

from cognitive.data import arith

# ------------------------------------------------------------------------------------ final answer
_MARKERS = [
    # (no leading "\*{0,2}\s*": only a marker's end is used, and a leading \s* backtracks quadratically over whitespace)
    re.compile(r"final\s+answer\s*\*{0,2}\s*:\s*\*{0,2}", re.IGNORECASE),
    re.compile(r"\\boxed\{"),
    re.compile(r"####"),
    re.compile(r"\banswer\b[^\n:.]{0,60}?\bis\s*:?", re.IGNORECASE),  # "the (final) answer (to ...) is"
    re.compile(r"^[ \t*#>-]*answer\s*\**\s*:\**", re.IGNORECASE | re.MULTILINE),
]
_PLAN_MARKER = re.compile(r"\bplan\s*:", re.IGNORECASE)


def final_answer_text(output: str | None) -> tuple[str, bool]:
    """(the text after the last final-answer marker, True), or (the whole output, False) without one."""
    output = output if isinstance(output, str) else ""
    for marker in _MARKERS:
        hits = list(marker.finditer(output))
        if hits:
            text = output[hits[-1].end() :]
            if marker.pattern.startswith(r"\\boxed"):
                text = text.split("}", 1)[0]
            return text.strip(), True
    return output.strip(), False


def _answer_lines(output: str | None) -> list[bool]:
    """For each non-empty line of the output: does it carry a final-answer marker?"""
    lines = [line for line in (output if isinstance(output, str) else "").splitlines() if line.strip()]
    return [any(marker.search(line) for marker in _MARKERS) for line in lines]


def answers_first(output: str | None) -> bool:
    """True when the output's first non-empty line already states the final answer (carries a final-answer marker):
    the answer came before any working, so the steps after it, if any, cannot have led to it."""
    marked = _answer_lines(output)
    return bool(marked) and marked[0]


def works_then_answers(output: str | None) -> bool:
    """True in the order of our solutions: at least one line of working, then the final answer stated once."""
    marked = _answer_lines(output)
    return sum(marked) == 1 and not marked[0]


def answer_region(output: str | None, plan: bool = False) -> tuple[str, bool]:
    """The text holding the final answer and whether a marker was found: after the last final-answer marker,
    else (plan=True) after the last 'Plan:', else the last paragraph of the output."""
    text, marked = final_answer_text(output)
    if marked:
        return text, True
    if plan:
        hits = list(_PLAN_MARKER.finditer(text))
        if hits:
            return text[hits[-1].end() :].strip(), True
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return (paragraphs[-1].strip() if paragraphs else ""), False


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


# ----------------------------------------------------------------------------- numbers (reasoning)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")


def read_numbers(text: str) -> list[Fraction | None]:
    """Every number of the text; None for a numeral too long to read (arith.read_number): it is no answer of ours."""
    values = (arith.read_number(m.group().replace(",", "")) for m in _NUMBER.finditer(text.replace("−", "-")))
    return [None if v is None else Fraction(v) for v in values]


def extract_final_fraction(output: str | None) -> Fraction | None:
    """The model's final number, exactly: the answer line's value after its last '=' (parentheses dropped),
    else that line's last number; without a marker, the output's last number. None when there is none."""
    text, marked = final_answer_text(output)
    if marked:
        line = re.sub(r"\([^)]*\)", " ", first_line(text))
        after_eq = line.rsplit("=", 1)[-1]
        numbers = read_numbers(after_eq) or read_numbers(line)
    else:
        numbers = read_numbers(text)
    return numbers[-1] if numbers else None


def extract_final_number(output: str | None) -> float | None:
    """The model's final numeric answer as a float, or None when there is none."""
    value = extract_final_fraction(output)
    return None if value is None else float(value)


def numbers_match(predicted: float | Fraction | None, gold: float | str | Fraction) -> bool:
    """Exact equality of decimal values (no tolerance: 25.0 == 25, 25.01 != 25)."""
    if predicted is None:
        return False
    return Fraction(str(predicted)) == Fraction(str(gold))


def score_numeric(output: str | None, gold: float | str) -> dict[str, float]:
    """exact_match: the extracted final number equals `gold` exactly; answered: a final number was found."""
    predicted = extract_final_fraction(output)
    return {"exact_match": float(numbers_match(predicted, gold)), "answered": float(predicted is not None)}


# ------------------------------------------------------------------------------------ entities
def normalize(text: str) -> str:
    """Lower case; every run of non-alphanumerics becomes one space ('Lecture-Hall.' -> 'lecture hall')."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", (text or "").lower()).split())


def _fold(text: str) -> str:
    """Lower case with every non-alphanumeric character replaced by a space, keeping the length (positions
    in the folded text are positions in the original)."""
    return "".join(c.lower() if c.isascii() and c.isalnum() else " " for c in text or "")


def _entity_pattern(name: str, optional_articles: bool = False) -> re.Pattern:
    """Words of `name` separated by any non-alphanumerics; optional_articles: 'knead the dough' also
    matches 'knead dough'."""
    words = normalize(name).split()
    body = ""
    for i, word in enumerate(words):
        if optional_articles and word == "the" and i < len(words) - 1:
            body += r"(?:the\s+)?"
        else:
            body += re.escape(word) + (r"\s+" if i < len(words) - 1 else "")
    return re.compile(rf"(?<![0-9a-z]){body}(?![0-9a-z])")


def mentions(text: str, candidates, optional_articles: bool = False) -> list[tuple[int, str]]:
    """Every occurrence of a candidate in `text`, as (position in text, candidate), in text order; case and
    punctuation are ignored. Longer candidates win over those they contain ('receipt book' is no 'receipt')."""
    folded = _fold(text)
    found: list[tuple[int, int, str]] = []
    for cand in sorted({c for c in candidates if normalize(c)}, key=lambda c: -len(normalize(c))):
        for m in _entity_pattern(cand, optional_articles).finditer(folded):
            if not any(s < m.end() and m.start() < e for s, e, _ in found):
                found.append((m.start(), m.end(), cand))
    return [(s, c) for s, _, c in sorted(found)]


def named(text: str, candidates) -> list[str]:
    """The distinct candidates named in `text`, in order of first mention."""
    return list(dict.fromkeys(c for _, c in mentions(text, candidates)))


def single_entity(region: str, gold: str, candidates) -> dict[str, float]:
    """Right iff the answer names `gold` and no other candidate."""
    found = named(region, set(candidates) | {gold})
    return {"exact_match": float(found == [gold]), "answered": float(bool(found))}


def entity_region(output: str | None, multi_line: bool) -> str:
    """After a marker: its first line (one entity) or all of it (a list); without one: the last line."""
    region, marked = final_answer_text(output)
    if not marked:
        return next((line for line in reversed(region.splitlines()) if line.strip()), "")
    return region if multi_line else first_line(region)
