"""Answer extraction and scoring for the evaluation tasks (used by eval/tasks/*/utils.py).

Models write final answers in many ways. `final_answer_text` looks, in order, for:
    "**Final Answer:** ..." / "Final Answer: ..."   (the project's response format)
    "#### ..."                                     (GSM8K style)
    "The answer is ..."
and otherwise falls back to the whole output. `extract_final_number` takes the last number in the first line
after a marker ("Sarah has 23 apples left." gives 23, "$1,234.50" gives 1234.5), or, without a marker, the
last number of the output.
Empty, truncated or unparseable outputs score 0; nothing here raises on model output.
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MARKERS = [
    re.compile(r"\*{0,2}\s*final\s+answer\s*:?\s*\*{0,2}\s*:?", re.IGNORECASE),
    re.compile(r"####"),
    re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?", re.IGNORECASE),
]


def final_answer_text(output: str) -> tuple[str, bool]:
    """(the text after the last final-answer marker, True), or (the whole output, False) without one."""
    output = output or ""
    for marker in _MARKERS:
        hits = list(marker.finditer(output))
        if hits:
            return output[hits[-1].end() :].strip(), True
    return output.strip(), False


def _last_number(text: str) -> float | None:
    numbers = _NUMBER.findall(text)
    return float(numbers[-1].replace(",", "")) if numbers else None


def extract_final_number(output: str) -> float | None:
    """The model's final numeric answer, or None when there is none."""
    text, marked = final_answer_text(output)
    if marked:
        first_line = next((line for line in text.splitlines() if line.strip()), "")
        return _last_number(first_line)
    return _last_number(text)


def numbers_match(predicted: float | None, gold: float, rel_tol: float = 1e-6) -> bool:
    return predicted is not None and math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-9)


def score_numeric(output: str, gold: float) -> dict[str, float]:
    """exact_match: the extracted final number equals `gold`; answered: a final number was found."""
    predicted = extract_final_number(output)
    return {
        "exact_match": float(numbers_match(predicted, gold)),
        "answered": float(predicted is not None),
    }
