"""Answer extraction and scoring for the evaluation tasks (eval/tasks/cognitive/utils.py calls `score_document`;
cognitive/tasks.py names each task type's scorer).

Models write final answers in many ways. `final_answer_text` looks, in order, for:
    "**Final Answer:** ..." / "Final Answer: ..."   (the project's response format)
    "\\boxed{...}"                                   (LaTeX style)
    "#### ..."                                     (GSM8K style)
    "The answer is ..." / "The final answer to the problem is ..."
    "Answer: ..." at the start of a line
and otherwise falls back to the whole output. `answer_region` is the text a scorer reads: after the last
marker, else after the last "Plan:" (planning), else the output's last paragraph (the last line for the
entity answers of state and memory).

Per task (every scorer returns floats in [0, 1] and `answered`: a final answer could be read at all):
    cognitive_reasoning  exact_match   the final number equals the answer exactly (Fraction arithmetic; "$1,234.50"
                                       is 1234.5); the number is the last one in the first line after the marker
                                       (after the last "=" there, parentheses dropped), else the output's last number
    cognitive_planning   valid         the plan read from the answer, simulated against the problem: every task once
                                       with its duration, after its dependencies, the shared resource never used
                                       twice at a time, everything done by the deadline -- any valid plan scores
                         optimal       valid and as short as the best possible plan
    cognitive_state      exact_match   normalised entity match: the answer names the right person / object / place /
                                       state and no other candidate; lists (who holds what, what is where, vending
                                       credit and items) must match completely
    cognitive_logic      cell_accuracy share of (person, category) cells right; grid_accuracy: all cells right
    cognitive_memory     exact_match   normalised entity match as for state (the right room or person, no other)
`score` is each task's headline metric (the first of its metrics in cognitive/tasks.py); the
group `cognitive` averages it. `score_<difficulty>` is `score` on that difficulty's documents only.

Every document also gets `step_accuracy` (when its output writes arithmetic): the share of its "a op b = c" steps
that hold. `answers_first` tells an output that states its final answer on its first line, before any working
(experiments/grpo_cpu/bench_grpo.py counts them: GRPO taught the 135M to answer first); `works_then_answers` one in
our solutions' order, working first and the answer once (the `work_then_answer` GRPO reward).

Empty, truncated, unparseable or other-format outputs score 0; nothing here raises on model output
(`score_document` also guards against a scorer bug: it logs it and scores the document 0).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from fractions import Fraction

from cognitive import tasks
from cognitive.data import arith
from cognitive.data.generators.planning import plan_violations

log = logging.getLogger(__name__)

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


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


# ----------------------------------------------------------------------------- numbers (reasoning)
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+")


def _numbers(text: str) -> list[Fraction | None]:
    """Every number of the text; None for a numeral too long to read (arith.read_number): it is no answer of ours."""
    values = (arith.read_number(m.group().replace(",", "")) for m in _NUMBER.finditer(text.replace("−", "-")))
    return [None if v is None else Fraction(v) for v in values]


def extract_final_fraction(output: str | None) -> Fraction | None:
    """The model's final number, exactly: the answer line's value after its last '=' (parentheses dropped),
    else that line's last number; without a marker, the output's last number. None when there is none."""
    text, marked = final_answer_text(output)
    if marked:
        line = re.sub(r"\([^)]*\)", " ", _first_line(text))
        after_eq = line.rsplit("=", 1)[-1]
        numbers = _numbers(after_eq) or _numbers(line)
    else:
        numbers = _numbers(text)
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


def _named(text: str, candidates) -> list[str]:
    """The distinct candidates named in `text`, in order of first mention."""
    return list(dict.fromkeys(c for _, c in mentions(text, candidates)))


def _single_entity(region: str, gold: str, candidates) -> dict[str, float]:
    """Right iff the answer names `gold` and no other candidate."""
    named = _named(region, set(candidates) | {gold})
    return {"exact_match": float(named == [gold]), "answered": float(bool(named))}


def _entity_region(output: str | None, multi_line: bool) -> str:
    """After a marker: its first line (one entity) or all of it (a list); without one: the last line."""
    region, marked = final_answer_text(output)
    if not marked:
        return next((line for line in reversed(region.splitlines()) if line.strip()), "")
    return region if multi_line else _first_line(region)


# --------------------------------------------------------------------------------- state tracking
def _split_pairs(text: str, sep: str = ", ") -> dict[str, str]:
    return dict(part.split(": ", 1) for part in text.split(sep) if ": " in part)


def score_state(output: str | None, spec: dict) -> dict[str, float]:
    """Entity and state tracking (the problem_spec of cognitive.data.generators.state_transition)."""
    kind, (qtype, _target) = spec["kind"], spec["question"]
    gold = spec["answer"]
    if kind == "vending":
        return _score_vending(_entity_region(output, multi_line=True), spec)
    if kind == "machine":
        states = {spec["initial"]} | {s for rule in spec["rules"] for s in (rule[0], rule[2])}
        return _single_entity(_entity_region(output, False), gold, states)
    initial = spec["initial"]
    if qtype == "who_has":
        return _single_entity(_entity_region(output, False), gold, initial.keys())
    if qtype == "what_holds":
        return _single_entity(_entity_region(output, False), gold, initial.values())
    if qtype == "where":
        places = set(initial.values()) | {op[-1] for op in spec["ops"] if op[0] in ("move", "empty")}
        return _single_entity(_entity_region(output, False), gold, places)
    if qtype == "contents":
        region = _entity_region(output, multi_line=True)
        named = _named(region, initial.keys())
        want = [] if gold == "nothing" else gold.split(", ")
        empty_said = bool(re.search(r"\b(nothing|none|empty|no items?)\b", region.lower()))
        right = sorted(named) == sorted(want) and (bool(want) or empty_said)
        return {"exact_match": float(right), "answered": float(bool(named) or empty_said)}
    # qtype == "all": who holds what, every person
    return _score_assignment(
        _entity_region(output, multi_line=True), _split_pairs(gold), initial.keys(), initial.values()
    )


def _score_assignment(region: str, gold: dict[str, str], people, things) -> dict[str, float]:
    """Pairs (person, thing) read clause by clause ('Ana: whisk, Bo: ladle', 'Ana has the whisk and Bo the
    ladle', 'the whisk is with Ana'); right iff every person gets exactly the gold thing."""
    said: dict[str, set[str]] = {}
    for clause in re.split(r"[;,\n]|\band\b|\.(?:\s|$)", region):
        who, what = _named(clause, people), _named(clause, things)
        if len(who) == 1 and len(what) == 1:
            said.setdefault(who[0], set()).add(what[0])
    right = all(said.get(p) == {t} for p, t in gold.items())
    return {"exact_match": float(right), "answered": float(bool(said))}


def _score_vending(region: str, spec: dict) -> dict[str, float]:
    gold_credit, _, gold_items = spec["answer"].partition("; dispensed: ")
    gold_credit = int(gold_credit.split(": ")[1])
    want = Counter() if gold_items == "nothing" else Counter(gold_items.split(", "))
    m = re.search(r"credit\D{0,20}?(\d+)", region, re.IGNORECASE)
    numbers = _numbers(region)
    credit = arith.read_number(m.group(1)) if m else (numbers[0] if len(numbers) == 1 else None)
    items = Counter(c for _, c in mentions(region, spec["prices"].keys()))
    right = credit is not None and credit == gold_credit and items == want
    return {"exact_match": float(right), "answered": float(credit is not None)}


# ------------------------------------------------------------------------------------ memory recall
def score_memory(output: str | None, spec: dict) -> dict[str, float]:
    """Long-context recall (cognitive.data.generators.memory_recall): the asked room or person, and no other."""
    events = spec["events"]
    start = events[0]
    people = set(start["people"])
    places = set(start["people"].values()) | set(start["objects"].values())
    places |= {e["to"] for e in events[1:] if e.get("kind") in ("move", "put")}
    target = spec["question"][1]
    return _single_entity(_entity_region(output, False), spec["answer"], (people | places) - {target})


# ------------------------------------------------------------------------------------ logic grids
def score_logic(output: str | None, spec: dict) -> dict[str, float]:
    """Logic grid (cognitive.data.generators.problem_solving): each person's value per category, read from the
    answer text after each mention of that person; a cell with two different values of a category is wrong."""
    region, _ = answer_region(output)
    people, categories, gold = spec["people"], spec["categories"], spec["answer"]
    marks = mentions(region, people)
    said: dict[tuple[str, str], set[str]] = {}
    for i, (pos, person) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(region)
        segment = region[pos:end]
        for category, values in categories.items():
            for value in _named(segment, values):
                said.setdefault((person, category), set()).add(value)
    cells = [(p, c) for p in people for c in categories]
    right = sum(said.get((p, c)) == {gold[p][c]} for p, c in cells)
    return {
        "grid_accuracy": float(right == len(cells)),
        "cell_accuracy": right / len(cells),
        "answered": float(bool(said)),
    }


# ------------------------------------------------------------------------------------------ planning
# (?<!\d) and [a-z_]* rather than \w*: a search over a long run of digits stays linear
_RANGE = re.compile(
    r"(?:minute\s*)?(?<!\d)(\d+)\s*(?:min(?:ute)?s?\s*)?(?:-|–|—|→|->|\bto\b|\buntil\b|\btill\b)\s*(?:minute\s*)?(\d+)",
    re.IGNORECASE,
)
_START_END = re.compile(
    r"start[a-z_]*\s*(?:at\s*)?(?:minute\s*)?(\d+)\D{0,40}?end[a-z_]*\s*(?:at\s*)?(?:minute\s*)?(\d+)", re.IGNORECASE
)


def _time_range(text: str) -> tuple[int, int] | None:
    m = _RANGE.search(text) or _START_END.search(text)
    if not m:
        return None
    start, end = arith.read_number(m.group(1)), arith.read_number(m.group(2))
    return None if start is None or end is None else (start, end)


def parse_plan(text: str, task_names) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """({task: (start, end)}, problems) read from a plan text. Items are split at ';' and line ends; an item
    naming one task takes the first time range in it ('knead the dough 0-15', '- 0–15 min: Knead dough',
    'knead the dough: starts at 0, ends at 15'); an item naming several takes, for each, the first range
    after its name. A task given two different ranges is a problem."""
    plan: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    for item in re.split(r"[;\n]", text):
        names = mentions(item, task_names, optional_articles=True)
        if not names:
            continue
        if len({n for _, n in names}) == 1:
            spans = [(names[0][1], _time_range(item))]
        else:
            spans = [
                (n, _time_range(item[pos : names[i + 1][0] if i + 1 < len(names) else len(item)]))
                for i, (pos, n) in enumerate(names)
            ]
        for name, span in spans:
            if span is None:
                continue
            if name in plan and plan[name] != span:
                problems.append(f"'{name}' is given two times ({plan[name]} and {span})")
            plan[name] = span
    return plan, problems


def score_plan(output: str | None, spec: dict) -> dict[str, float]:
    """valid: the answer's plan meets every constraint; optimal: valid and of the best total time."""
    region, _ = answer_region(output, plan=True)
    plan, problems = parse_plan(region, [t["name"] for t in spec["tasks"]])
    problems += plan_violations(plan, spec) if plan else ["no plan found"]
    valid = not problems
    optimal = valid and max(end for _, end in plan.values()) == spec["answer"]["total"]
    return {"valid": float(valid), "optimal": float(optimal), "answered": float(bool(plan))}


# ------------------------------------------------------------------------------------------ dispatch
def score_reasoning(output: str | None, spec: dict) -> dict[str, float]:
    """Multi-step arithmetic (cognitive.data.generators.chain_of_thought): the exact final number."""
    return score_numeric(output, spec["answer"])


def score_output(task: tasks.TaskType, output: str | None, spec: dict, doc_id=None) -> dict[str, float]:
    """The task type's metrics of one output (its scorer); a scorer bug must not lose a whole run (an evaluation, or
    an RL step that scores with it): it is logged and the output scores 0."""
    try:
        return task.scorer_function()(output, spec)
    except Exception:
        log.exception("scoring %s document %s failed; scored 0", task.eval_task, doc_id)
        return task.zero_metrics()


def score_document(doc: dict, output: str | None) -> dict[str, float]:
    """lm-eval process_results of a cognitive_* document (doc["task"] names its eval task): the task type's
    metrics (cognitive.tasks), `score` (its headline metric) and `score_<difficulty>` (present only for
    documents of that difficulty)."""
    task = tasks.get(doc["task"])
    metrics = score_output(task, output, json.loads(doc["problem_spec"]), doc.get("id"))
    score = metrics[task.headline]
    return {**metrics, "score": score, f"score_{doc['difficulty']}": score, **step_metrics(output)}


# ------------------------------------------------------------------------------------------ step accuracy
def step_metrics(output: str | None) -> dict[str, float]:
    """{"step_accuracy": the share of the arithmetic steps ("a op b = c") the output writes that hold}, read with the
    checkers' arithmetic reader (cognitive.data.arith); {} when it writes none. A model can reach a
    right answer through false steps, or write true steps to a wrong one: this separates reasoning from imitation
    of the answer format."""
    steps = arith.chains(output if isinstance(output, str) else "")
    return {"step_accuracy": sum(s.ok for s in steps) / len(steps)} if steps else {}
