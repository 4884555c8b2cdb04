"""planning: schedule jobs under durations, dependencies, one shared resource and a deadline.

A problem is a few jobs, each a chain of tasks (e.g. knead the dough -> let it rise -> bake the bread);
some tasks need the single shared resource (one of three per domain, e.g. the oven, the cryostat, the
licensed terminal, the cargo bike), which holds one task at a time; everything else runs in parallel with
anything. An optional final task waits for every job. Difficulty sets the number of jobs. A named planner,
varied sentences for every part and shuffled task order give the surface diversity.

The solver searches every order of the resource tasks (each task starts as early as its inputs and the
resource allow) and keeps the shortest plan; the deadline is set at or just above that optimum. Each
reasoning step schedules one task ("inputs ready at 15, oven free at 40: start 40, end 40 + 25 = 65").
final_answer is a parseable plan: "Plan: knead the dough 0-15; ...; bake the bread 60-95 (oven).
Total time: 95 minutes."

problem_spec: {"resource", "tasks": [{"name", "duration", "deps", "resource"}], "deadline",
               "answer": {"plan": {name: [start, end]}, "total": minutes}}
`check` parses the plan from the final answer and simulates it: every task once with its duration,
dependencies, no overlap on the resource, the deadline, the claimed total, and optimality (its own
exhaustive search).

A model's answer: `score` reads its plan (`parse_plan`) and simulates it (`plan_violations`): valid (any plan that
meets every constraint) and optimal (valid and as short as the best plan); `step_validity` (the step-level reward)
is the share of the tasks the plan places right on their own (`task_violations`); `plan_actions` gives the
planning module's auxiliary action labels their order (cognitive/train/aux_labels.py).
"""

from __future__ import annotations

import itertools
import random
import re

from cognitive.data import answers, arith
from cognitive.data.generators._text import Phrases, person
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep, StateTransition

SIZES = {
    "basic": (2, 2, False),
    "intermediate": (3, 3, False),
    "advanced": (3, 3, True),
    "expert": (4, 4, True),
}  # jobs, final task

FREE, RES, WAIT = "free", "resource", "wait"
# domain -> (resources, roles, jobs: [(job, [(task, kind), ...])], final task). A task name may hold "{r}": the
# resource this problem draws (several per domain, for surface diversity); the planner is a named person with
# one of the roles.
WORLDS = {
    "cooking": (
        ("oven", "pizza oven", "old gas oven"),
        ("cook", "chef", "baker", "host"),
        [
            ("bread", [("knead the dough", FREE), ("let the dough rise", WAIT), ("bake the bread", RES)]),
            ("pie", [("make the pie filling", FREE), ("bake the pie", RES), ("cool the pie", WAIT)]),
            ("chicken", [("marinate the chicken", WAIT), ("roast the chicken", RES)]),
            ("vegetables", [("chop the vegetables", FREE), ("roast the vegetables", RES)]),
            ("cookies", [("mix the cookie dough", FREE), ("bake the cookies", RES), ("cool the cookies", WAIT)]),
            ("salad", [("wash the lettuce", FREE), ("toss the salad", FREE)]),
            ("lasagna", [("make the tomato sauce", FREE), ("assemble the lasagna", FREE), ("bake the lasagna", RES)]),
            ("soup", [("chop the onions", FREE), ("simmer the soup", WAIT)]),
            ("potatoes", [("peel the potatoes", FREE), ("bake the potatoes", RES)]),
            ("fish", [("clean the fish", FREE), ("grill the fish in the {r}", RES)]),
            ("rice", [("rinse the rice", FREE), ("steam the rice", WAIT)]),
            ("cake", [("whisk the cake batter", FREE), ("bake the cake", RES), ("ice the cake", FREE)]),
            ("pizza", [("stretch the pizza base", FREE), ("add the toppings", FREE), ("bake the pizza", RES)]),
            (
                "granola",
                [("toast the oats in the {r}", RES), ("let the granola cool", WAIT), ("bag the granola", FREE)],
            ),
            ("muffins", [("fill the muffin tray", FREE), ("bake the muffins", RES)]),
            ("beans", [("soak the beans", WAIT), ("slow-cook the beans in the {r}", RES)]),
            ("tart", [("blind-bake the tart case", RES), ("whip the cream", FREE), ("fill the tart", FREE)]),
        ],
        "plate everything and serve",
    ),
    "physics": (
        ("vacuum chamber", "clean room", "cryostat"),
        ("lab technician", "physics student", "researcher"),
        [
            (
                "copper",
                [
                    ("polish the copper sample", FREE),
                    ("test the copper sample in the {r}", RES),
                    ("analyse the copper data", FREE),
                ],
            ),
            ("glass", [("cut the glass sample", FREE), ("test the glass sample in the {r}", RES)]),
            (
                "wafer",
                [("clean the silicon wafer", FREE), ("let the wafer dry", WAIT), ("coat the wafer in the {r}", RES)],
            ),
            ("spring", [("hang the weights on the spring", FREE), ("measure the spring constant", FREE)]),
            ("crystal", [("grow the salt crystal", WAIT), ("image the crystal in the {r}", RES)]),
            ("laser", [("align the laser", FREE), ("calibrate the detector", FREE)]),
            (
                "magnet",
                [("cool the magnet", WAIT), ("test the magnet in the {r}", RES), ("log the magnet readings", FREE)],
            ),
            ("film", [("deposit the thin film in the {r}", RES), ("measure the film thickness", FREE)]),
            ("pendulum", [("set up the pendulum", FREE), ("time ten swings", FREE)]),
            ("detector", [("assemble the detector", FREE), ("leak-test the detector in the {r}", RES)]),
            (
                "sensor",
                [
                    ("solder the sensor board", FREE),
                    ("let the solder joints cool", WAIT),
                    ("check the sensor in the {r}", RES),
                ],
            ),
            ("lens", [("grind the lens", FREE), ("measure the focal length", FREE)]),
            (
                "battery",
                [
                    ("charge the test battery", WAIT),
                    ("cycle the battery in the {r}", RES),
                    ("plot the discharge curve", FREE),
                ],
            ),
            (
                "resistor",
                [("wire the resistor bridge", FREE), ("measure the resistance at low temperature in the {r}", RES)],
            ),
        ],
        "write the lab report",
    ),
    "finance": (
        ("shared server", "licensed terminal", "accounts mainframe"),
        ("accountant", "finance assistant", "controller"),
        [
            ("payroll", [("collect the timesheets", FREE), ("run payroll on the {r}", RES)]),
            (
                "risk",
                [
                    ("clean the market data", FREE),
                    ("run the risk model on the {r}", RES),
                    ("review the risk results", FREE),
                ],
            ),
            ("invoices", [("scan the invoices", FREE), ("match invoices to orders", FREE)]),
            ("forecast", [("gather the sales figures", FREE), ("run the forecast on the {r}", RES)]),
            (
                "audit",
                [("pull the ledgers", FREE), ("run the audit checks on the {r}", RES), ("sign off the audit", FREE)],
            ),
            ("tax", [("prepare the tax forms", FREE), ("wait for the manager's approval", WAIT)]),
            ("budget", [("collect department budgets", WAIT), ("consolidate the budget on the {r}", RES)]),
            ("backup", [("back up the accounts on the {r}", RES), ("check the backup log", FREE)]),
            ("expenses", [("approve the expense claims", FREE), ("pay the expenses on the {r}", RES)]),
            ("cash", [("count the petty cash", FREE), ("reconcile the bank statement", FREE)]),
            ("pensions", [("update the pension rates", FREE), ("recalculate the pensions on the {r}", RES)]),
            (
                "suppliers",
                [
                    ("wait for the supplier statements", WAIT),
                    ("post the supplier payments on the {r}", RES),
                    ("file the remittances", FREE),
                ],
            ),
            ("vat", [("sort the receipts", FREE), ("file the VAT return on the {r}", RES)]),
        ],
        "send the month-end pack",
    ),
    "shopping": (
        ("delivery van", "cargo bike", "shop truck"),
        ("shop manager", "shop assistant", "store owner"),
        [
            ("flowers", [("wrap the flowers", FREE), ("deliver the flowers by {r}", RES)]),
            (
                "chair",
                [
                    ("assemble the chair", FREE),
                    ("deliver the chair by {r}", RES),
                    ("collect payment for the chair", FREE),
                ],
            ),
            ("groceries", [("pick the grocery order", FREE), ("deliver the groceries by {r}", RES)]),
            ("window", [("design the window display", FREE), ("set up the window display", FREE)]),
            ("returns", [("sort the returns", FREE), ("take the returns to the depot by {r}", RES)]),
            (
                "stock",
                [("fetch new stock with the {r}", RES), ("price the new stock", FREE), ("shelve the new stock", FREE)],
            ),
            ("cake", [("wait for the cake to be iced", WAIT), ("deliver the cake by {r}", RES)]),
            ("sofa", [("wrap the sofa", FREE), ("deliver the sofa by {r}", RES)]),
            ("signs", [("print the sale signs", FREE), ("hang the sale signs", FREE)]),
            ("parcels", [("label the parcels", FREE), ("take the parcels to the post office by {r}", RES)]),
            ("lamp", [("test the lamp", FREE), ("deliver the lamp by {r}", RES)]),
            (
                "paint",
                [("mix the paint order", FREE), ("let the paint settle", WAIT), ("drop off the paint by {r}", RES)],
            ),
            ("bikes", [("collect the repaired bikes with the {r}", RES), ("check the bike brakes", FREE)]),
        ],
        "close the shop for the day",
    ),
}
DURATION = {FREE: (5, 30), WAIT: (20, 60), RES: (15, 50)}


def state_name(name: str) -> str:
    """A task's name as the to_state of its state transition: 'bake the bread' -> 'bake_the_bread'."""
    return re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


def solve(tasks: list[dict]) -> tuple[dict[str, tuple[int, int]], tuple[str, ...], list[tuple[tuple[str, ...], int]]]:
    """Best plan over every order of the resource tasks: (plan, best order, [(order, makespan)...])."""
    res = [t["name"] for t in tasks if t["resource"]]
    tried = []
    best = None
    for order in itertools.permutations(res):
        plan = simulate(tasks, order)
        span = max(e for _, e in plan.values())
        tried.append((order, span))
        if best is None or span < best[1]:
            best = (plan, span, order)
    return best[0], best[2], tried


def simulate(tasks: list[dict], order: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Earliest start for every task, the resource tasks taking the resource in `order`."""
    by_name = {t["name"]: t for t in tasks}
    plan: dict[str, tuple[int, int]] = {}
    free_at, queue = 0, list(order)
    while len(plan) < len(tasks):
        progressed = False
        for t in tasks:
            if t["name"] in plan or not all(d in plan for d in t["deps"]):
                continue
            if t["resource"] and queue[0] != t["name"]:
                continue
            ready = max([plan[d][1] for d in t["deps"]], default=0)
            start = max(ready, free_at) if t["resource"] else ready
            plan[t["name"]] = (start, start + by_name[t["name"]]["duration"])
            if t["resource"]:
                free_at = plan[t["name"]][1]
                queue.pop(0)
            progressed = True
        if not progressed:
            raise ValueError("resource order conflicts with the dependencies")
    return plan


# Sentence variants of the problem text (Phrases records which one each problem used).
NEED = [" (needs the {r})", " using the {r}", " (uses the {r})", " on the {r}", " and occupies the {r}"]
AFTER = [
    ", once {x} {is_} done",
    ", after {x}",
    "; it can start only when {x} {is_} finished",
    ", but not before {x} {is_} complete",
    "; first {x} must be finished",
]
TASK_LINE = [
    "{N} takes {d} minutes{need}{after}.",
    "{N}: {d} minutes{need}{after}.",
    "It takes {d} minutes to {n}{need}{after}.",
    "{N} needs {d} minutes{need}{after}.",
    "Allow {d} minutes to {n}{need}{after}.",
    "Someone has to {n}, which lasts {d} minutes{need}{after}.",
    "{d} minutes are needed to {n}{need}{after}.",
    "{N} (duration {d} minutes){need}{after}.",
]
INTRO = [
    "{P}, the {role}, has these tasks to finish.",
    "Here is what {P} must get done today.",
    "{P} plans the next few hours.",
    "{P} is the {role} on duty, with this list of jobs.",
    "As the {role}, {P} has to fit the following work into one session.",
    "{P}'s to-do list for this shift:",
]
RULES = [
    "There is only one {r}, and it can hold one task at a time. All other work can run in parallel.",
    "Only one task at a time can use the {r}; anything else can happen at the same time as other tasks.",
    "The single {r} is shared: tasks that need it must take turns. Every other task may overlap with anything.",
    "{Pos} team has just one {r}, so no two tasks may use it at once; there are enough hands for everything else.",
    "Tasks on the {r} cannot overlap with each other. Tasks that do not need it can overlap freely.",
]
DEADLINE = [
    "Everything must be finished within {D} minutes.",
    "The deadline is {D} minutes from now.",
    "All of it has to be done in at most {D} minutes.",
    "{P} has {D} minutes in total.",
]
INSTRUCTION = [
    "Plan the work so that everything is done as early as possible. "
    "Give each task's start and end minute and the total time.",
    "Find the fastest schedule that meets the deadline, with the start and end minute of every task.",
    "Make a schedule with the shortest total time; list when each task starts and ends.",
    "When should each task start so that all of it is finished as soon as possible?",
    "Schedule every task to finish in the least total time, respecting the order and the shared {r}.",
    "Work out a plan: the start and end minute of each task, and how long everything takes in total.",
    "What is the quickest way for {P} to get through the list? "
    "Give the start and end of each task in minutes from now.",
    "Order the work on the {r} so the last task ends as early as possible, and give the full timetable.",
]


def generate(rng: random.Random, difficulty: str, domain: str) -> dict:
    resources, roles, jobs, final = WORLDS[domain]
    ph = Phrases(rng, prefix=f"{domain}.")
    resource = rng.choice(resources)
    tasks = _draw_tasks(rng, jobs, final, resource, *SIZES[difficulty])
    plan, order, tried = solve(tasks)
    total = max(e for _, e in plan.values())
    deadline = _deadline(rng, total, worst=max(span for _, span in tried))
    context, instruction = _problem_text(rng, ph, tasks, resource, roles, deadline)
    steps, transitions, by_start = _reasoning(tasks, plan, order, tried, resource, total, deadline)
    plan_text = "; ".join(
        f"{t['name']} {plan[t['name']][0]}-{plan[t['name']][1]}" + (f" ({resource})" if t["resource"] else "")
        for t in by_start
    )
    spec = {
        "resource": resource,
        "tasks": [{k: t[k] for k in ("name", "duration", "deps", "resource")} for t in tasks],
        "deadline": deadline,
        "answer": {"plan": {n: list(v) for n, v in plan.items()}, "total": total},
        "template": ph.template_id(),
    }
    constraints = [
        f"The {resource} can be used by one task at a time",
        "A task starts only after the tasks it depends on have finished",
        f"Deadline: {deadline} minutes",
        "Other tasks can run in parallel",
    ]
    return dict(
        domain=domain,
        context=context,
        instruction=instruction,
        constraints=constraints,
        reasoning_steps=steps,
        state_transitions=transitions,
        final_answer=f"Plan: {plan_text}. Total time: {total} minutes.",
        problem_spec=spec,
    )


def _draw_tasks(rng, jobs, final: str, resource: str, lo: int, hi: int, with_final: bool) -> list[dict]:
    """lo..hi jobs (at least two resource tasks among them), each a chain of tasks with drawn durations, and the
    optional final task that waits for every job."""
    while True:
        chosen = rng.sample(jobs, rng.randint(lo, hi))
        if sum(k == RES for _, stages in chosen for _, k in stages) >= 2:
            break
    tasks = []
    for job, stages in chosen:
        prev = None
        for name, kind in stages:
            name = name.format(r=resource)
            d = rng.randrange(DURATION[kind][0], DURATION[kind][1] + 1, 5)
            tasks.append(
                dict(name=name, duration=d, deps=[prev] if prev else [], resource=kind == RES, kind=kind, job=job)
            )
            prev = name
    if with_final:
        lasts = [stages[-1][0].format(r=resource) for _, stages in chosen]
        tasks.append(
            dict(name=final, duration=rng.randrange(5, 16, 5), deps=lasts, resource=False, kind=FREE, job="final")
        )
    return tasks


def _deadline(rng, total: int, worst: int) -> int:
    """At or just above the optimum, and below the worst resource order when there is one worse."""
    deadline = total + rng.choice([0, 5, 10]) if worst > total else total + rng.choice([0, 10, 20])
    return min(deadline, worst - 5) if worst - 5 >= total else deadline


def _problem_text(rng, ph: Phrases, tasks: list[dict], resource: str, roles, deadline: int) -> tuple[str, str]:
    """(context, instruction): a named planner, one sentence per task in shuffled order, the rules, the deadline."""
    lines = []
    need_form = ph.pick("need", NEED)
    for t in tasks:
        need = need_form.format(r=resource) if t["resource"] else ""
        if t["resource"] and resource in t["name"]:  # "bake it in the oven using the oven" reads badly
            need = f" (needs the {resource})"
        is_ = "is" if len(t["deps"]) == 1 else "are"
        after = ph.pick("after", AFTER).format(x=" and ".join(t["deps"]), is_=is_) if t["deps"] else ""
        capital = t["name"][0].upper() + t["name"][1:]
        lines.append(ph.pick("task", TASK_LINE).format(n=t["name"], N=capital, d=t["duration"], need=need, after=after))
    rng.shuffle(lines)
    planner, _, _, pos = person(rng)
    role = rng.choice(roles)
    intro = ph.pick("intro", INTRO).format(P=planner, role=role)
    rules = ph.pick("rules", RULES).format(r=resource, Pos=pos.capitalize())
    deadline_text = ph.pick("deadline", DEADLINE).format(D=deadline, P=planner)
    instruction = ph.pick("instruction", INSTRUCTION).format(r=resource, P=planner)
    return " ".join([intro, *lines, rules, deadline_text]), instruction


def _reasoning(tasks, plan, order, tried, resource: str, total: int, deadline: int):
    """(steps, transitions, tasks by start): one step per scheduling decision in start order, one state transition
    per task started."""
    steps: list[ReasoningStep] = []

    def add(desc, reasoning, memory):
        steps.append(ReasoningStep(step=len(steps) + 1, description=desc, reasoning=reasoning, memory_update=memory))

    short = {t["name"]: t["job"] for t in tasks}
    res_names = [t["name"] for t in tasks if t["resource"]]
    add(
        f"Find the tasks that share the {resource}",
        f"{len(res_names)} tasks need the {resource}: {'; '.join(res_names)}. They must not overlap.",
        f"{resource} tasks: {len(res_names)}",
    )
    if len(tried) <= 6:
        summary = "; ".join(f"{' → '.join(short[n] for n in o)}: {s}" for o, s in tried)
    else:
        ranked = sorted(tried, key=lambda x: x[1])
        summary = f"best of {len(tried)} orders {ranked[0][1]}, worst {ranked[-1][1]}"
    add(
        f"Compare the orders for the {resource}",
        f"Total time per order, every task as early as possible: {summary}.",
        f"best {resource} order: {' → '.join(short[n] for n in order)}",
    )
    by_start = sorted(tasks, key=lambda t: (plan[t["name"]][0], t["name"]))
    first = [t for t in by_start if not t["deps"] and not t["resource"]]
    if first:
        ends = "; ".join(f"{t['name']} ends at 0 + {t['duration']} = {t['duration']}" for t in first)
        add(
            "Start everything that waits for nothing",
            f"These tasks need no other task and no {resource}, so they start at minute 0: {ends}.",
            "; ".join(f"{t['name']}: 0-{t['duration']}" for t in first),
        )
    transitions, prev_state, free_at = [], "planning", 0
    for t in by_start:
        s, e = plan[t["name"]]
        ready = max([plan[d][1] for d in t["deps"]], default=0)
        if t["resource"]:
            why = f"inputs ready at minute {ready}, {resource} free at minute {free_at}"
            free_at = e
        else:
            why = f"inputs ready at minute {ready}" if t["deps"] else "nothing to wait for"
        if t not in first:
            add(
                f"Schedule: {t['name']}",
                f"{why}, so start at {s}; end {s} + {t['duration']} = {e}.",
                f"{t['name']}: {s}-{e}",
            )
        transitions.append(
            StateTransition(
                step=len(transitions) + 1,
                from_state=prev_state,
                to_state=state_name(t["name"]),
                action=f"Start {t['name']} at minute {s}",
                rationale=why,
                estimated_time=f"{t['duration']} minutes (minute {s} to {e})",
            )
        )
        prev_state = state_name(t["name"])
    add(
        "Check the total time against the deadline",
        f"The last task ends at minute {total}; {total} ≤ {deadline}, so the deadline is met.",
        f"total: {total} minutes",
    )
    return steps, transitions, by_start


# --------------------------------------------------------------------------------------- checker
_PLAN_ITEM = re.compile(
    r"^\s*(?:\d+\)\s*)?(?P<name>[^;]*?[A-Za-z][^;]*?)\s+(?P<start>\d+)\s*-\s*(?P<end>\d+)(?:\s*\([^)]*\))?\s*$"
)
_TOTAL = re.compile(r"total time:?\s*(\d+)", re.I)


def read_plan_answer(text: str) -> tuple[dict[str, tuple[int, int]], int | None]:
    """Our final answers' exact layout, 'Plan: a 0-15; b 15-40 (oven). Total time: 40 minutes.' ->
    ({a: (0, 15), b: (15, 40)}, 40). (A model's free-form plan is read by parse_plan.)"""
    body = text.split("Plan:", 1)[-1]
    body = re.split(r"\.\s*Total time", body, flags=re.I)[0]
    plan = {}
    for part in body.split(";"):
        m = _PLAN_ITEM.match(part.strip().rstrip("."))
        if m:
            plan[m.group("name").strip()] = (int(m.group("start")), int(m.group("end")))
    total = _TOTAL.search(text)
    return plan, int(total.group(1)) if total else None


def _optimum(tasks: list[dict]) -> int:
    """Independent exhaustive search: list scheduling over every permutation of the resource tasks,
    written separately from `solve` (event loop over finish times)."""
    res = [t["name"] for t in tasks if t["resource"]]
    dur = {t["name"]: t["duration"] for t in tasks}
    deps = {t["name"]: set(t["deps"]) for t in tasks}
    best = None
    for order in itertools.permutations(res):
        rank = {n: i for i, n in enumerate(order)}
        finish: dict[str, int] = {}
        res_free, next_res = 0, 0
        pending = set(dur)
        guard = 0
        while pending and guard < 10 * len(dur):
            guard += 1
            for n in sorted(pending, key=lambda n: rank.get(n, -1)):
                if not deps[n] <= finish.keys():
                    continue
                if n in rank:
                    if rank[n] != next_res:
                        continue
                    start = max([res_free] + [finish[d] for d in deps[n]])
                    res_free, next_res = start + dur[n], next_res + 1
                else:
                    start = max([0] + [finish[d] for d in deps[n]])
                finish[n] = start + dur[n]
                pending.discard(n)
        if pending:
            continue
        span = max(finish.values())
        best = span if best is None else min(best, span)
    return best


def task_violations(name: str, plan: dict[str, tuple[int, int]], spec: dict) -> list[str]:
    """What is wrong with one task's placement in a plan {task: (start, end)}: absent, before minute 0, not its
    duration, before a dependency ends (a dependency the plan leaves out counts as not ended). The shared resource
    and the deadline are properties of the whole plan (plan_violations)."""
    task = next(t for t in spec["tasks"] if t["name"] == name)
    if name not in plan:
        return [f"'{name}' is not in the plan"]
    start, end = plan[name]
    problems = []
    if start < 0:
        problems.append(f"'{name}' starts before minute 0")
    if end - start != task["duration"]:
        problems.append(f"'{name}' runs {end - start} minutes, needs {task['duration']}")
    for dep in task["deps"]:
        if dep not in plan:
            problems.append(f"'{name}' depends on '{dep}', which the plan leaves out")
        elif start < plan[dep][1]:
            problems.append(f"'{name}' starts at {start}, before '{dep}' ends at {plan[dep][1]}")
    return problems


def plan_violations(plan: dict[str, tuple[int, int]], spec: dict) -> list[str]:
    """Simulate a plan {task: (start, end)} against the problem_spec: what is wrong with it (empty list: valid).
    Every task once with its duration, after its dependencies, the resource never held twice at a time, all of
    it by the deadline. The checker below and the scorer (`score`) both use it."""
    tasks = {t["name"]: t for t in spec["tasks"]}
    missing = sorted(set(tasks) - set(plan))
    if missing:
        return [f"missing tasks: {missing}"]
    problems = [problem for name in tasks for problem in task_violations(name, plan, spec)]
    on_resource = sorted(plan[n] for n, t in tasks.items() if t["resource"])
    for (_s1, e1), (s2, e2) in itertools.pairwise(on_resource):
        if s2 < e1:
            problems.append(f"the {spec['resource']} is used by two tasks between minute {s2} and {min(e1, e2)}")
    makespan = max(end for _, end in plan.values())
    if makespan > spec["deadline"]:
        problems.append(f"the plan ends at {makespan}, after the deadline {spec['deadline']}")
    return problems


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:

    spec = example.problem_spec
    if spec is None:
        return ["unverifiable: no problem_spec; durations and dependencies cannot be read reliably from free text"]
    problems = []
    tasks = spec["tasks"]
    plan, total = read_plan_answer(example.final_answer)
    names = {t["name"] for t in tasks}
    if set(plan) != names:
        missing, extra = sorted(names - set(plan)), sorted(set(plan) - names)
        problems.append(f"plan does not list every task once (missing {missing[:2]}, unknown {extra[:2]})")
        return problems
    problems += plan_violations(plan, spec)
    span = max(e for _, e in plan.values())
    if total != span:
        problems.append(f"claimed total time {total} but the plan ends at {span}")
    best = _optimum(tasks)
    if span != best:
        problems.append(f"plan takes {span} minutes; the best possible is {best}")
    if spec["answer"]["total"] != best:
        problems.append(f"problem_spec total {spec['answer']['total']} is not the optimum {best}")
    context = example.context.lower()
    for t in tasks:
        if t["name"].lower() not in context or f"{t['duration']} minutes" not in context:
            problems.append(f"task '{t['name']}' or its duration is not in the context")
    for i, s in enumerate(example.reasoning_steps, 1):
        for c in arith.chains(s.reasoning):
            if not c.ok:
                problems.append(f"step {i}: arithmetic is wrong in '{c.text}'")
    if strict:
        transitions = example.state_transitions or []
        if len(transitions) != len(tasks):
            problems.append(f"{len(transitions)} state transitions for {len(tasks)} tasks")
        by_snake = {state_name(n): n for n in names}
        last_start = -1
        for i, tr in enumerate(transitions, 1):
            name = by_snake.get(tr.to_state)
            if name is None:
                problems.append(f"transition {i}: unknown task '{tr.to_state}'")
                continue
            s, e = plan[name]
            if tr.estimated_time != f"{e - s} minutes (minute {s} to {e})":
                problems.append(
                    f"transition {i}: estimated_time '{tr.estimated_time}' does not match the plan ({s}-{e})"
                )
            if s < last_start:
                problems.append(f"transition {i}: out of start order")
            last_start = s
        for i, st in enumerate(example.reasoning_steps, 1):
            for fact in st.memory_update.split("; "):
                m = re.fullmatch(r"(.+): (\d+)-(\d+)", fact)
                if m and m.group(1) in plan and plan[m.group(1)] != (int(m.group(2)), int(m.group(3))):
                    problems.append(f"step {i}: '{fact}' does not match the plan")
    return problems


# ------------------------------------------------------------------------------------ a model's answer
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
        names = answers.mentions(item, task_names, optional_articles=True)
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


def score(output: str | None, spec: dict) -> dict[str, float]:
    """valid: the answer's plan (after the final-answer marker, else after the last 'Plan:') meets every constraint
    (plan_violations); optimal: valid and of the best total time; answered: a plan could be read."""
    region, _ = answers.answer_region(output, plan=True)
    plan, problems = parse_plan(region, [t["name"] for t in spec["tasks"]])
    problems += plan_violations(plan, spec) if plan else ["no plan found"]
    valid = not problems
    optimal = valid and max(end for _, end in plan.values()) == spec["answer"]["total"]
    return {"valid": float(valid), "optimal": float(optimal), "answered": float(bool(plan))}


def step_validity(text: str, spec: dict) -> float:
    """The step-level reward: the share of the problem's tasks that the answer's plan places validly on their own
    (task_violations)."""
    region, _ = answers.answer_region(text, plan=True)
    names = [t["name"] for t in spec["tasks"]]
    plan, _ = parse_plan(region, names)
    return sum(not task_violations(name, plan, spec) for name in names) / len(names)


def plan_actions(example: CognitiveTrainingExample) -> list[str] | None:
    """The task names of a solved planning example's plan, in the order its state transitions start them (the
    planning module's actions, cognitive/train/aux_labels.py); None when there is no solved plan or the transitions
    do not name the plan's tasks."""
    if not example.problem_spec or not example.state_transitions:
        return None
    answer = example.problem_spec.get("answer")
    plan = answer.get("plan") if isinstance(answer, dict) else None
    if not isinstance(plan, dict) or not plan:
        return None
    by_state = {state_name(name): name for name in plan}
    names = [by_state.get(t.to_state) for t in example.state_transitions]
    if None in names or len(names) != len(plan):
        return None
    return names
