"""Every function that reads model output, fed adversarial strings (Hypothesis): it returns a value of its documented
range for any string, never raises, and answers within a time bound.

Model output is the least trusted input this project reads, thousands of times per GRPO run: one completion that
raises (a RecursionError from deep parentheses or a long run of minus signs, a ValueError from a 5000-digit numeral)
or that takes minutes (a regex that backtracks over a long line) ends or stalls the run. The strings are built from
what sampling at temperature produces and what an adversary would write: deep nesting, long operator runs, huge
numbers, very long lines, control characters, unbalanced markup, unicode digits, many "Final Answer" lines, and the
problem's own entity names among them so the scorers take their deeper paths.

The readers (READERS below): the GRPO rewards (cognitive/rl/rewards.py), every task type's scorer in the registry
(cognitive/tasks.py: its generator module's `score`) and the evaluation's document scorers
(cognitive/evaluation/scoring.py, transfer.py, the process_results of eval/tasks/*/utils.py), the answer extractors
(cognitive/data/answers.py), the step-accuracy readers (scoring.step_metrics, the checkers' arithmetic reader
cognitive/data/arith.py), the arithmetic-ceiling study's probe readers (experiments/arithmetic_ceiling/
arithmetic_probe.py: step_breakdown, worksheet_scores) and the teacher's reply parser. Each call must finish within
CALL_SECONDS on strings up to MAX_CHARS characters.

Reproducible in CI: a fixed Hypothesis profile (derandomized, no example database), EXAMPLES strings per test;
the explicit @example strings always run first. `pytest -s` prints how many strings and calls each test tried.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cognitive import tasks
from cognitive.data import answers, arith
from cognitive.data.schema import iter_jsonl
from cognitive.data.teacher import response_steps
from cognitive.evaluation import scoring, transfer
from cognitive.evaluation.snapshots import to_doc
from cognitive.rl import rewards
from tests.conftest import ROOT

EXAMPLES = 100  # strings per test (each goes to every reader of the test)
MAX_CHARS = 120_000  # longest string tried (a 768-token completion of 16-dash tokens is ~12k characters)
CALL_SECONDS = 2.0  # per call, on a loaded 2-core CI machine; the slowest reader takes ~0.1 s on MAX_CHARS

settings.register_profile(
    "fuzz-ci",
    max_examples=EXAMPLES,
    derandomize=True,  # the same strings on every run and machine
    database=None,
    deadline=None,  # the time bound is checked per call below, naming the reader
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
FUZZ = settings.get_profile("fuzz-ci")
TRIED = {"strings": 0, "calls": 0}


# ------------------------------------------------------------------------------------------ what a reader reads
def _records(task: tasks.TaskType) -> list:
    """A few eval records of the task type covering its answer kinds (state tracking: each kind and question)."""
    seen, records = set(), []
    for record in iter_jsonl(ROOT / "eval" / "data" / f"{task.eval_task}.jsonl"):
        spec = record.problem_spec
        key = (spec.get("kind"), str(spec.get("question", [""])[0]))
        if key not in seen:
            seen.add(key)
            records.append(record)
    return records


RECORDS = [record for task in tasks.TASK_TYPES for record in _records(task)]
FIRST_OF_EACH_TYPE = [[r.task_type for r in RECORDS].index(t.name) for t in tasks.TASK_TYPES]
DOCS = [to_doc(record) for record in RECORDS]
TRANSFER_DOCS = []
for _task in tasks.transfer_tasks():
    _line = (ROOT / "eval" / "data" / "transfer" / f"{_task.name}.jsonl").read_text().splitlines()[0]
    TRANSFER_DOCS.append({"id": json.loads(_line)["id"], "task": _task.eval_task, "entry": _line})
    transfer.dataset(_task.name)  # built once (seconds for some), outside the timed calls
ENTITIES = sorted(
    {
        word
        for record in RECORDS
        for word in json.dumps(record.problem_spec).replace('"', " ").replace(",", " ").split()
        if word.isalpha() and len(word) > 2
    }
)[:400]


# ------------------------------------------------------------------------------------------ adversarial strings
UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۴۵०१२३৪৫๑๒０１２３４５６７８９²³¹⁴₅①⑨߀𝟎𝟗𝟡"
CONTROL = "\x00\x01\x07\x08\t\x0b\x0c\r\x1b\x1c\x1d\x1e\x1f\x7f\x85\xa0\u2028\u2029\u200b\u200e\ufeff\ufffd\udcff"
MARKUP = [
    "**Final Answer:**",
    "Final Answer:",
    "final answer :",
    "\\boxed{",
    "}",
    "####",
    "The answer is",
    "The final answer to the problem is:",
    "Answer:",
    "Plan:",
    "**",
    "*",
    "```",
    "<think>",
    "</think>",
    "## Reasoning Process",
    "## Planning Steps",
    "Step 1:",
    "1. ",
    "12) ",
    "   Reasoning: ",
    "   Memory: ",
    "State: ",
    "Action: ",
    "Rationale: ",
    "credit: ",
    "dispensed: ",
    " = ",
    "=",
    "→",
    "->",
    ":",
    ";",
    ",",
    ".",
    " ",
    "\n",
    "\n\n",
    "\t",
    "$",
    "%",
    " minutes ",
    " to ",
    " - ",
    "starts at ",
    " ends at ",
    "(",
    ")",
]
OPERATORS = list("-+*/×÷−–·x=()") + ["--", "+-", "*-", "= -"]

numeral = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.integers(1, 20_000).map(lambda n: "9" * n),  # huge
    st.integers(1, 2_000).map(lambda n: "1" + ",000" * n),
    st.integers(1, 5_000).map(lambda n: "0." + "3" * n),
    st.integers(1, 200).map(lambda n: "1" + "0" * n + ".5"),
    st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=40),
)
piece = st.one_of(
    numeral,
    st.integers(1, 5_000).map(lambda n: "(" * n + "1" + ")" * n + " = 1"),  # deep nesting
    st.tuples(st.integers(0, 3_000), st.integers(0, 3_000)).map(lambda t: "(" * t[0] + "2" + ")" * t[1]),
    st.tuples(st.sampled_from(OPERATORS), st.integers(1, 30_000)).map(lambda t: t[0] * t[1] + "1 = 1"),  # runs
    st.integers(1, 3_000).map(lambda n: "Final Answer: 7\n" * n),  # many final-answer lines
    st.tuples(st.sampled_from(MARKUP), st.integers(1, 30_000)).map(lambda t: t[0] * t[1]),  # long runs of markup
    st.lists(st.sampled_from(MARKUP), max_size=30).map("".join),  # unbalanced markup
    st.text(alphabet=CONTROL, max_size=60),
    st.text(alphabet=UNICODE_DIGITS + "+-*/=() .", max_size=200),
    st.text(max_size=200),
    st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=12).map(" ".join),
    st.tuples(st.integers(0, 999), st.sampled_from("+-×/"), st.integers(0, 999), st.integers(-5, 2000)).map(
        lambda t: f"{t[0]} {t[1]} {t[2]} = {t[3]}"
    ),
    st.tuples(st.lists(st.sampled_from(ENTITIES + MARKUP), max_size=6).map(" ".join), st.integers(1, 4_000)).map(
        lambda t: (t[0] + "\n") * t[1]  # a loop of repeated lines, as greedy sampling writes
    ),
)


class Output(str):
    """A model output whose repr stays short: a failing example of 100k characters is reported by its start."""

    def __repr__(self):
        head = str.__repr__(self[:80])
        return head if len(self) <= 80 else f"{head} + ... ({len(self)} characters in all)"


adversarial = st.lists(piece, min_size=1, max_size=8).map(lambda parts: Output("".join(parts)[:MAX_CHARS]))

KNOWN_BAD = [  # always tried first (@example): each broke a reader of the old code
    "(" * 1_000 + "1" + ")" * 1_000 + " = 1",
    "-" * 5_000 + "1 = 1",
    "2 = " + "-" * 20_000 + "2",
    "9" * 10_000 + " + 1 = 2",
    "Final Answer: " + "9" * 10_000,
    "1. " + "9" * 5_000,
    " " * MAX_CHARS,
    "\n" * MAX_CHARS,
    "Final Answer: 7\n" * 3_000,
    "7" * MAX_CHARS,
]


def known_bad(among: list[int] | None = None):
    """@example of every KNOWN_BAD string (and the empty one); `among`: values of the test's `which` too (records or
    documents), each string tried with each."""

    def decorate(test):
        for text in reversed(["", *KNOWN_BAD]):
            for which in among or [None]:
                test = example(text=Output(text), **({} if among is None else {"which": which}))(test)
        return test

    return decorate


# ------------------------------------------------------------------------------------------ the readers
def in_unit(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def metrics_ok(metrics, task: tasks.TaskType) -> bool:
    return set(metrics) >= {*task.metrics, "answered"} and all(in_unit(v) for v in metrics.values())


def reward_ok(name: str, value) -> bool:
    if value is None:
        return name in ("step_validity", "state_steps")
    if name in ("format", "work_then_answer", "no_loop"):
        return value in (0.0, 1.0)
    return in_unit(value)


def number_ok(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isnan(value))


class Hung(Exception):
    pass


class Logged(logging.Handler):
    """Errors the library logs: score_output and score_transfer catch a scorer's exception, log it and score 0, which
    would hide a reader that raises; every such record fails the call that logged it."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


LOGGED = Logged()
logging.getLogger("cognitive").addHandler(LOGGED)


def _hung(signum, frame):
    raise Hung


def call(name: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), timed; a raise or a call over CALL_SECONDS fails the test naming the reader (a call still
    running at 2 x CALL_SECONDS is interrupted: a backtracking regex would otherwise hang the suite)."""
    LOGGED.records.clear()
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.setitimer(signal.ITIMER_REAL, 2 * CALL_SECONDS)
    start = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
    except Hung:
        pytest.fail(f"{name} still running after {2 * CALL_SECONDS:.0f} s (bound {CALL_SECONDS} s)")
    except Exception as e:  # the failure under test: name the reader and the exception
        pytest.fail(f"{name} raised {type(e).__name__}: {str(e)[:200]}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    TRIED["calls"] += 1
    if LOGGED.records:
        record = LOGGED.records[0]
        cause = f": {record.exc_info[0].__name__}: {str(record.exc_info[1])[:200]}" if record.exc_info else ""
        pytest.fail(f"{name} logged '{record.getMessage()}'{cause}")
    assert seconds < CALL_SECONDS, f"{name} took {seconds:.1f} s (bound {CALL_SECONDS} s)"
    return value


def check_rewards(text: str, record) -> None:
    task_type, spec = record.task_type.value, json.dumps(record.problem_spec)
    for completion in (text, [{"role": "assistant", "content": text}]):
        for name, fn in rewards.REWARDS.items():
            values = call(f"rewards.{name} ({task_type})", fn, [completion], task_type=[task_type], problem_spec=[spec])
            assert len(values) == 1 and reward_ok(name, values[0]), f"{name} ({task_type}) gave {values}"


def check_scorers(text: str, record, doc: dict) -> None:
    task = tasks.get(record.task_type)
    metrics = call(f"{task.generator}.score ({task.name})", task.scorer_function(), text, record.problem_spec)
    assert metrics_ok(metrics, task), f"{task.generator}.score gave {metrics}"
    metrics = call("scoring.score_output", scoring.score_output, task, text, record.problem_spec)
    assert metrics_ok(metrics, task), metrics
    result = call("scoring.score_document", scoring.score_document, doc, text)
    assert in_unit(result["score"]) and all(in_unit(v) for v in result.values()), result


def check_extractors(text: str) -> None:
    found, marked = call("answers.final_answer_text", answers.final_answer_text, text)
    assert isinstance(found, str) and isinstance(marked, bool)
    region, marked = call("answers.answer_region", answers.answer_region, text, True)
    assert isinstance(region, str) and isinstance(marked, bool)
    assert isinstance(call("answers.answers_first", answers.answers_first, text), bool)
    assert isinstance(call("answers.works_then_answers", answers.works_then_answers, text), bool)
    value = call("answers.extract_final_fraction", answers.extract_final_fraction, text)
    assert value is None or isinstance(value, Fraction)
    assert number_ok(call("answers.extract_final_number", answers.extract_final_number, text))
    assert isinstance(call("transfer.extract_answer", transfer.extract_answer, text), str)
    steps, final = call("teacher.response_steps", response_steps, text)
    assert isinstance(steps, list) and isinstance(final, str)
    from cognitive.evaluation import outputs

    unit = call("outputs.loop_unit", outputs.loop_unit, text)
    assert (unit is None or isinstance(unit, str)) and isinstance(outputs.repeated_loop(text), bool)
    row = {"output": text, "generated_tokens": len(text), "max_gen_toks": 64}
    shares = call("outputs.output_shares", outputs.output_shares, [row])
    assert shares["documents"] == 1 and all(in_unit(shares[k]) for k in ("answers_first", "token_limit", "loop"))


def check_step_readers(text: str) -> None:
    chains = call("arith.chains", arith.chains, text)
    assert all(isinstance(c.ok, bool) for c in chains)
    value = call("arith.evaluate", arith.evaluate, text)
    assert value is None or isinstance(value, int | Fraction)
    assert all(isinstance(v, int | Fraction) for v in call("arith.numbers", arith.numbers, text))
    metrics = call("scoring.step_metrics", scoring.step_metrics, text)
    assert metrics == {} or (set(metrics) == {"step_accuracy"} and in_unit(metrics["step_accuracy"])), metrics
    breakdown = call("arithmetic.step_breakdown", arithmetic.step_breakdown, [text])
    assert all(0 <= right <= total for right, total in breakdown.values())
    items = arithmetic.probe_items(1)[:3]
    assert isinstance(call("arithmetic.ProbeItem.right", items[0].right, text), bool)
    scores = call("arithmetic.worksheet_scores", arithmetic.worksheet_scores, items, text)
    assert all(0 <= right <= asked for right, asked in scores.values())


def check_transfer(text: str, doc: dict) -> None:
    result = call(f"transfer.score_transfer ({doc['task']})", transfer.score_transfer, doc, text)
    assert in_unit(result["score"]) and in_unit(result["rg_score"]) and in_unit(result["answered"]), result
    again = call("eval/tasks/transfer/utils.process_results", EVAL_UTILS["transfer"].process_results, doc, [text])
    assert again == result


def _arithmetic_probe():
    """The arithmetic-ceiling study's probe (a study's driver module, not a library module), loaded from its file."""
    import importlib.util

    path = ROOT / "experiments" / "arithmetic_ceiling" / "arithmetic_probe.py"
    spec = importlib.util.spec_from_file_location("study_arithmetic_probe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


arithmetic = _arithmetic_probe()


def eval_utils(suite: str):
    """eval/tasks/<suite>/utils.py, loaded as lm-eval loads it (a file, not a package module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{suite}_utils", ROOT / "eval" / "tasks" / suite / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EVAL_UTILS = {suite: eval_utils(suite) for suite in ("cognitive", "transfer")}


# ------------------------------------------------------------------------------------------ the tests
@pytest.fixture(scope="module", autouse=True)
def report_count():
    yield
    print(f"\nfuzz: {TRIED['strings']} strings, {TRIED['calls']} reader calls")


@FUZZ
@given(text=adversarial, which=st.integers(0, len(RECORDS) - 1))
@known_bad(among=FIRST_OF_EACH_TYPE)
def test_rewards_return_their_range_for_any_completion(text, which):
    TRIED["strings"] += 1
    check_rewards(text, RECORDS[which])


@FUZZ
@given(text=adversarial, which=st.integers(0, len(RECORDS) - 1))
@known_bad(among=FIRST_OF_EACH_TYPE)
def test_scorers_return_metrics_in_0_1_for_any_output(text, which):
    TRIED["strings"] += 1
    check_scorers(text, RECORDS[which], DOCS[which])
    utils = EVAL_UTILS["cognitive"]
    result = call("eval/tasks/cognitive/utils.process_results", utils.process_results, DOCS[which], [text])
    assert in_unit(result["score"]), result


@FUZZ
@given(text=adversarial)
@known_bad()
def test_extractors_and_step_readers_return_a_value_for_any_output(text):
    TRIED["strings"] += 1
    check_extractors(text)
    check_step_readers(text)


@FUZZ
@given(text=adversarial, which=st.integers(0, len(TRANSFER_DOCS) - 1))
@known_bad(among=list(range(len(TRANSFER_DOCS))))
def test_transfer_scoring_returns_its_range_for_any_output(text, which):
    TRIED["strings"] += 1
    check_transfer(text, TRANSFER_DOCS[which])


def test_the_records_cover_every_task_type_and_state_kind():
    assert {r.task_type.value for r in RECORDS} == {t.name for t in tasks.TASK_TYPES}
    kinds = {r.problem_spec["kind"] for r in RECORDS if r.task_type.value == "state_transition"}
    assert kinds == {"holdings", "locations", "machine", "vending"}
    assert len(TRANSFER_DOCS) == len(tasks.transfer_tasks())


# ------------------------------------------------------------------------------------------ the arithmetic reader
def reference_evaluate(expr: str):
    """The grammar of arith.evaluate read recursively (the reader before it was made iterative): the oracle on
    expressions short enough for recursion."""
    tokens = [t for t in arith._TOKEN.findall(expr) if t]
    if not tokens or "".join(tokens) != "".join(expr.split()):
        return None

    apply = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": arith.divide}

    def chain(i, operators, operand):  # operand (operator operand)*, left to right
        value, i = operand(i)
        while i < len(tokens) and tokens[i] in operators:
            op = tokens[i]
            rhs, i = operand(i + 1)
            value = apply[op](value, rhs)
        return value, i

    def sum_(i):
        return chain(i, "+-", product)

    def product(i):
        return chain(i, "*/", atom)

    def atom(i):
        if tokens[i] == "(":
            value, i = sum_(i + 1)
            if tokens[i] != ")":
                raise ValueError("unbalanced")
            return value, i + 1
        if tokens[i] == "-":
            value, i = atom(i + 1)
            return -value, i
        if tokens[i][0].isdigit():
            return arith.number(tokens[i]), i + 1
        raise ValueError(tokens[i])

    try:
        value, end = sum_(0)
    except (IndexError, ValueError, ZeroDivisionError):
        return None
    return value if end == len(tokens) else None


@FUZZ
@given(st.lists(st.sampled_from(["1", "2", "0", "12", "3.5", "+", "-", "*", "/", "(", ")", " "]), max_size=30))
def test_the_arithmetic_reader_evaluates_as_the_grammar_says(tokens):
    expr = "".join(tokens)
    expected = reference_evaluate(expr)
    got = arith.evaluate(expr)
    assert got == expected and type(got) is type(expected), (expr, got, expected)


@pytest.mark.parametrize(
    "expr, value",
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("-(-(3))", 3),
        ("2 - -3", 5),
        ("-2 * 3 + 1", -5),
        ("7 / 2", Fraction(7, 2)),
        ("1 - 2 - 3", -4),
        ("12 / 3 / 2", 2),
        ("(" * arith.MAX_DEPTH + "1" + ")" * arith.MAX_DEPTH, 1),
        ("(" * (arith.MAX_DEPTH + 1) + "1" + ")" * (arith.MAX_DEPTH + 1), None),  # too deep: not checkable
        ("-" * 5_000 + "1", None),  # more than MAX_TOKENS tokens
        ("9" * (arith.MAX_DIGITS + 1) + " + 1", None),  # a numeral too long to read
        ("1 / 0", None),
        ("(1 + 2", None),
        ("1 + 2)", None),
        ("2 3", None),
        ("", None),
    ],
)
def test_the_arithmetic_reader_on_edge_cases(expr, value):
    got = arith.evaluate(expr)
    assert got == value and (value is None) == (got is None)
