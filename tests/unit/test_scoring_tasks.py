"""Scoring of every task on planted outputs: right (the reference and other formats), wrong, malformed,
truncated and empty. Planning: any valid plan scores, an invalid one never does; validity and optimality
are separate. Logic: per-cell and whole-grid accuracy."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from cognitive import tasks
from cognitive.data.generators import generate_example
from cognitive.data.generators.memory_recall import score as score_memory
from cognitive.data.generators.planning import parse_plan, plan_violations
from cognitive.data.generators.planning import score as score_plan
from cognitive.data.generators.problem_solving import score as score_logic
from cognitive.data.generators.state_transition import score as score_state
from cognitive.evaluation.scoring import score_document
from cognitive.evaluation.snapshots import to_doc
from cognitive.tasks import TASK_TYPES

TASKS = {t.eval_task: t.name for t in TASK_TYPES}  # eval task -> task type

DIFFICULTIES = ["basic", "intermediate", "advanced"]


def find(task_type: str, difficulty: str, accept, seeds=range(5000)):
    for seed in seeds:
        ex = generate_example(task_type, difficulty, seed)
        if accept(ex):
            return ex
    raise AssertionError(f"no {task_type}/{difficulty} example found")


@pytest.fixture(scope="module")
def examples():
    """{task: [examples of every difficulty]}: 8 per difficulty."""
    return {
        task: [generate_example(kind, d, 1000 + i) for d in DIFFICULTIES for i in range(8)]
        for task, kind in TASKS.items()
    }


# ----------------------------------------------------------------------------- every task, generic plants
@pytest.mark.parametrize("task", list(TASKS))
def test_reference_outputs_score_one(task, examples):
    for ex in examples[task]:
        doc = to_doc(ex)
        for output in (ex.response(), f"**Final Answer:** {ex.final_answer}", ex.final_answer):
            m = score_document(doc, output)
            assert m["score"] == 1.0 and m["answered"] == 1.0, (ex.id, output[-200:], m)
            assert m[f"score_{ex.difficulty.value}"] == 1.0
            assert not {f"score_{d}" for d in DIFFICULTIES if d != ex.difficulty.value} & m.keys()


@pytest.mark.parametrize("task", list(TASKS))
def test_another_problems_answer_scores_zero(task, examples):
    exs = examples[task]
    for ex, other in zip(exs, exs[1:] + exs[:1]):
        a, b = ex.problem_spec["answer"], other.problem_spec["answer"]
        if a == b or (
            isinstance(a, str) and (sorted(a.split(", ")) == sorted(b.split(", ")) or a in other.final_answer)
        ):
            continue  # the same answer (a list in another order), or the other answer happens to name it
        m = score_document(to_doc(ex), other.response())
        assert m["score"] == 0.0, (ex.id, other.final_answer)


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("output", ["", "   \n ", None, "I don't know.", "**Final Answer:**", "<|im_end|>", "🙂" * 50])
def test_empty_and_malformed_score_zero(task, output, examples):
    for ex in examples[task][::8]:
        m = score_document(to_doc(ex), output)
        assert m["score"] == 0.0 and m["answered"] == 0.0, (ex.id, m)


@pytest.mark.parametrize("task", list(TASKS))
def test_truncated_response_scores_zero(task, examples):
    """Cut off mid-way through the reasoning (right after a middle step's 'Reasoning:' label), before the
    answer is stated. (An output cut off after its last line already names the answer is read by the
    fallback like any unmarked answer.)"""
    for ex in examples[task]:
        response = ex.response()
        labels = [i for i in range(len(response)) if response.startswith("Reasoning: ", i)]
        cut = response[: labels[len(labels) // 2] + len("Reasoning: ")]
        assert score_document(to_doc(ex), cut)["score"] == 0.0, (ex.id, cut[-200:])


@pytest.mark.parametrize("task", list(TASKS))
def test_random_text_never_raises(task, examples):
    """The unguarded scorers on random text built from the problem's own words, digits and punctuation."""
    rng = random.Random(0)
    for ex in examples[task][::4]:
        spec = ex.problem_spec
        vocab = (
            (ex.context + " " + ex.final_answer).split()
            + list("0123456789-–;:,.\n()*#{}\\")
            + ["Final Answer:", "Plan:"]
        )
        for _ in range(30):
            output = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 80)))
            metrics = tasks.get(task).scorer_function()(output, spec)
            assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_a_scorer_bug_scores_zero_and_is_logged(caplog):
    ex = generate_example("planning", "basic", 1)
    doc = to_doc(ex)
    doc["problem_spec"] = json.dumps({"tasks": "not a list"})
    m = score_document(doc, ex.response())
    assert m["score"] == 0.0 and m["valid"] == 0.0
    assert "scoring cognitive_planning document" in caplog.text


# ------------------------------------------------------------------------------------------- planning
def render(plan: dict[str, tuple[int, int]], resource_tasks=(), style: str = "project") -> str:
    items = sorted(plan.items(), key=lambda kv: (kv[1][0], kv[0]))
    total = max(e for _, e in plan.values())
    if style == "project":
        body = "; ".join(f"{n} {s}-{e}" + (" (oven)" if n in resource_tasks else "") for n, (s, e) in items)
        return f"**Final Answer:** Plan: {body}. Total time: {total} minutes."
    if style == "bullets":  # time first, en dashes, capitalised names without articles
        lines = [f"- {s}–{e} min: {n[0].upper()}{n[1:].replace(' the ', ' ')}" for n, (s, e) in items]
        return "Here is my schedule.\n\n**Final Answer:**\n" + "\n".join(lines) + f"\nTotal: {total} minutes"
    if style == "sentences":  # no marker: after the last 'Plan:'
        return "Plan: " + " ".join(f"{n} starts at minute {s} and ends at minute {e}." for n, (s, e) in items)
    raise ValueError(style)


def planning_case(accept, difficulty="basic"):
    ex = find("planning", difficulty, lambda e: accept(e.problem_spec))
    spec = ex.problem_spec
    plan = {n: tuple(v) for n, v in spec["answer"]["plan"].items()}
    return ex, spec, plan, {t["name"] for t in spec["tasks"] if t["resource"]}


def _sink_with_slack(spec, plan):
    """A task nothing depends on, off the resource, that can start 5 minutes later and still end in time."""
    needed = {d for t in spec["tasks"] for d in t["deps"]}
    total = spec["answer"]["total"]
    return next(
        (
            t["name"]
            for t in spec["tasks"]
            if t["name"] not in needed and not t["resource"] and plan[t["name"]][1] + 5 <= total
        ),
        None,
    )


def test_reference_plan_in_other_formats_scores():
    _ex, spec, plan, res = planning_case(lambda s: True)
    for style in ("project", "bullets", "sentences"):
        assert score_plan(render(plan, res, style), spec) == {"valid": 1.0, "optimal": 1.0, "answered": 1.0}, style


def test_valid_non_reference_plans_score():
    # optimal but not the reference: a task with slack starts 5 minutes later
    _ex, spec, plan, res = planning_case(
        lambda s: _sink_with_slack(s, {n: tuple(v) for n, v in s["answer"]["plan"].items()})
    )
    name = _sink_with_slack(spec, plan)
    shifted = {**plan, name: (plan[name][0] + 5, plan[name][1] + 5)}
    assert shifted != plan
    assert score_plan(render(shifted, res), spec) == {"valid": 1.0, "optimal": 1.0, "answered": 1.0}

    # valid but not optimal: the whole plan later, still within the deadline
    _ex, spec, plan, res = planning_case(lambda s: s["deadline"] > s["answer"]["total"])
    delay = spec["deadline"] - spec["answer"]["total"]
    later = {n: (s + delay, e + delay) for n, (s, e) in plan.items()}
    assert score_plan(render(later, res), spec) == {"valid": 1.0, "optimal": 0.0, "answered": 1.0}


def _waited_for_resource(spec) -> str | None:
    """A resource task whose inputs were ready before the resource was free (so it could start earlier)."""
    plan = spec["answer"]["plan"]
    on_resource = sorted((t for t in spec["tasks"] if t["resource"]), key=lambda t: plan[t["name"]][0])
    for before, task in itertools.pairwise(on_resource):
        ready = max([plan[d][1] for d in task["deps"]], default=0)
        if ready < plan[before["name"]][1] and plan[task["name"]][0] == plan[before["name"]][1]:
            return task["name"]
    return None


def test_invalid_plans_never_score():
    """Each broken plan breaks exactly one kind of constraint, and the validator names that one."""
    _ex, spec, plan, res = planning_case(_waited_for_resource, "intermediate")
    by_name = {t["name"]: t for t in spec["tasks"]}
    waiting = _waited_for_resource(spec)
    early = max([plan[d][1] for d in by_name[waiting]["deps"]], default=0)
    with_deps = next(n for n, t in by_name.items() if t["deps"] and not t["resource"])
    last = max(plan, key=lambda n: plan[n][1])
    over = spec["deadline"] - spec["answer"]["total"] + 5
    bad = {
        "used by two tasks": {**plan, waiting: (early, early + by_name[waiting]["duration"])},
        "before": {**plan, with_deps: (0, by_name[with_deps]["duration"])},
        "runs": {**plan, last: (plan[last][0], plan[last][1] + 5)},
        "missing": {n: v for n, v in plan.items() if n != last},
        "deadline": {n: (s + over, e + over) for n, (s, e) in plan.items()},
    }
    for why, wrong in bad.items():
        problems = plan_violations(wrong, spec)
        assert problems and all(why in p for p in problems), (why, problems)
        assert score_plan(render(wrong, res), spec) == {"valid": 0.0, "optimal": 0.0, "answered": 1.0}, why
    # a task given twice with different times
    twice = render(plan, res).replace(". Total time", f"; {last} 0-{by_name[last]['duration']}. Total time")
    assert score_plan(twice, spec)["valid"] == 0.0
    # a truncated final answer misses tasks
    text = render(plan, res)
    assert score_plan(text[: len(text) // 2], spec) == {"valid": 0.0, "optimal": 0.0, "answered": 1.0}


def test_parse_plan_formats():
    names = ["knead the dough", "bake the bread", "bake the pie"]
    assert parse_plan("Knead dough: 0 to 15; Bake the pie from minute 15 to minute 50", names)[0] == {
        "knead the dough": (0, 15),
        "bake the pie": (15, 50),
    }
    # two tasks in one item; the range after each name
    plan, problems = parse_plan("knead the dough 0-15, then bake the bread 15-40 (oven)", names)
    assert plan == {"knead the dough": (0, 15), "bake the bread": (15, 40)} and not problems
    assert parse_plan("bake the bread 10-20\nbake the bread 20-30", names)[1]  # given twice: a problem
    assert parse_plan("nothing to see 3-4", names) == ({}, [])


# ---------------------------------------------------------------------------------------------- state
def state_case(kind, qtype, difficulty="intermediate"):
    return find(
        "state_transition",
        difficulty,
        lambda e: e.problem_spec["kind"] == kind and e.problem_spec["question"][0] == qtype,
    ).problem_spec


def test_state_single_entities():
    spec = state_case("holdings", "who_has")
    gold, others = spec["answer"], [p for p in spec["initial"] if p != spec["answer"]]
    assert score_state(f"The answer is **{gold.upper()}**.", spec)["exact_match"] == 1.0  # case, markdown
    assert score_state(f"**Final Answer:** {others[0]}", spec)["exact_match"] == 0.0
    assert score_state(f"**Final Answer:** {gold} or {others[0]}", spec)["exact_match"] == 0.0  # hedging

    spec = state_case("locations", "where")
    gold = spec["answer"]
    assert score_state(f"Final Answer: it is in the {gold.title()}.", spec)["exact_match"] == 1.0
    other = next(p for p in spec["initial"].values() if p != gold) if len(set(spec["initial"].values())) > 1 else None
    if other:
        assert score_state(f"Final Answer: the {other}", spec)["exact_match"] == 0.0

    spec = state_case("machine", "final_state")
    gold = spec["answer"]
    wrong = next(s for rule in spec["rules"] for s in (rule[0], rule[2]) if s != gold)
    assert score_state(f"After all the events it is {gold}.", spec)["exact_match"] == 1.0  # no marker: last paragraph
    assert score_state(f"**Final Answer:** {wrong}", spec)["exact_match"] == 0.0


def test_state_lists():
    spec = state_case("holdings", "all")
    gold = dict(part.split(": ") for part in spec["answer"].split(", "))
    sentences = " and ".join(f"the {o} is with {p}" for p, o in reversed(gold.items()))
    assert score_state(f"**Final Answer:** {sentences}.", spec)["exact_match"] == 1.0
    table = "\n".join(f"| {p} | {o} |" for p, o in gold.items())
    assert score_state(f"**Final Answer:**\n| person | item |\n{table}", spec)["exact_match"] == 1.0
    people = list(gold)
    swapped = {**gold, people[0]: gold[people[1]], people[1]: gold[people[0]]}
    assert (
        score_state("**Final Answer:** " + ", ".join(f"{p}: {o}" for p, o in swapped.items()), spec)["exact_match"]
        == 0.0
    )
    missing = ", ".join(f"{p}: {o}" for p, o in list(gold.items())[1:])
    assert score_state(f"**Final Answer:** {missing}", spec)["exact_match"] == 0.0

    spec = state_case("locations", "contents")
    items = [] if spec["answer"] == "nothing" else spec["answer"].split(", ")
    said = " and ".join(f"the {x}" for x in reversed(items)) or "nothing"
    assert score_state(f"**Final Answer:** {said}", spec)["exact_match"] == 1.0
    extra = next(x for x in spec["initial"] if x not in items)
    assert score_state(f"**Final Answer:** {', '.join(items + [extra])}", spec)["exact_match"] == 0.0

    spec = state_case("vending", "final", "advanced")
    credit = spec["answer"].split(";")[0].split(": ")[1]
    dispensed = spec["answer"].split("dispensed: ")[1]
    assert (
        score_state(f"**Final Answer:** The credit is {credit} cents; out came: {dispensed}.", spec)["exact_match"]
        == 1.0
    )
    assert (
        score_state(f"**Final Answer:** credit: {int(credit) + 10}; dispensed: {dispensed}", spec)["exact_match"] == 0.0
    )
    assert (
        score_state(f"**Final Answer:** credit: {credit}; dispensed: {dispensed}, {next(iter(spec['prices']))}", spec)[
            "exact_match"
        ]
        == 0.0
    )


# --------------------------------------------------------------------------------------------- memory
def test_memory_entity_match():
    ex = find("memory_recall", "intermediate", lambda e: e.problem_spec["question"][0] == "where_now")
    spec = ex.problem_spec
    gold, who = spec["answer"], spec["question"][1]
    places = {e["to"] for e in spec["events"][1:] if e["kind"] == "move"} | set(spec["events"][0]["people"].values())
    other = next(p for p in places if p != gold)
    assert score_memory(f"**Final Answer:** {who} is in the {gold.upper()}", spec)["exact_match"] == 1.0
    assert score_memory(f"The answer is the {gold.replace(' ', '-')}.", spec)["exact_match"] == 1.0
    assert score_memory(f"**Final Answer:** {who} is in the {other}", spec)["exact_match"] == 0.0
    assert score_memory(f"**Final Answer:** the {other}, then the {gold}", spec)["exact_match"] == 0.0

    ex = find(
        "memory_recall",
        "basic",
        lambda e: (
            e.problem_spec["question"][0] == "holder_now"
            and e.problem_spec["answer"] in e.problem_spec["events"][0]["people"]
        ),
    )
    spec = ex.problem_spec
    assert (
        score_memory(f"**Final Answer:** {spec['answer']} has the {spec['question'][1]}.", spec)["exact_match"] == 1.0
    )


# ---------------------------------------------------------------------------------------------- logic
def test_logic_cells_and_grid():
    ex = find("problem_solving", "advanced", lambda e: True)
    spec = ex.problem_spec
    gold, people, cats = spec["answer"], spec["people"], list(spec["categories"])
    cells = len(people) * len(cats)

    table = (
        "| person | "
        + " | ".join(cats)
        + " |\n|---|"
        + "---|" * len(cats)
        + "\n"
        + "\n".join(f"| {p} | " + " | ".join(gold[p][c] for c in cats) + " |" for p in people)
    )
    assert score_logic(f"**Final Answer:**\n{table}", spec) == {
        "grid_accuracy": 1.0,
        "cell_accuracy": 1.0,
        "answered": 1.0,
    }
    by_category = " ".join(f"{c.title()}s: " + ", ".join(f"{p} - {gold[p][c]}" for p in people) + "." for c in cats)
    assert score_logic(f"**Final Answer:** {by_category}", spec)["grid_accuracy"] == 1.0

    a, b = people[:2]  # swap one category between two people: two cells wrong
    swapped = {**gold, a: {**gold[a], cats[0]: gold[b][cats[0]]}, b: {**gold[b], cats[0]: gold[a][cats[0]]}}
    text = "; ".join(f"{p}: {', '.join(swapped[p].values())}" for p in people)
    assert score_logic(f"**Final Answer:** {text}", spec) == {
        "grid_accuracy": 0.0,
        "cell_accuracy": (cells - 2) / cells,
        "answered": 1.0,
    }
    only_first = f"**Final Answer:** {a}: {', '.join(gold[a].values())}"  # one person given
    assert score_logic(only_first, spec)["cell_accuracy"] == pytest.approx(len(cats) / cells)
    both = f"**Final Answer:** {a}: {gold[a][cats[0]]} or {gold[b][cats[0]]}"  # two values for one cell: wrong
    assert score_logic(both, spec)["cell_accuracy"] == 0.0
