"""problem_solving: logic-grid puzzles with a unique solution.

n people, each with one value in each of m categories (every value used once). Clues:
    is       "Ana drinks tea."                           person p has value v
    is_not   "Bo does not drink coffee."                 person p does not have v
    either   "Cy drinks either tea or juice."            p has v or w
    same     "The person who drinks tea owns the cat."   one person has both values
    differ   "The person who drinks tea does not own the cat."
Difficulty sets the grid: basic 3x2, intermediate 4x2, advanced 4x3, expert 5x3 (people x categories).

The generator draws a random solution, then adds true clues until a propagation solver (the human
rules: apply a clue, "taken by someone else", "only one option left", "only one person can", clue
links) fixes every cell; redundant clues are then removed. A puzzle that propagation alone solves has
exactly one solution (every deduction is forced); the reasoning steps are those deductions in order,
each stating the facts it establishes in memory_update ("Bo: drink ≠ coffee", "Cy: drink = tea").

problem_spec: {"people", "categories": {name: [values]}, "clues": [[kind, ...]], "answer": {person: {cat: value}}}
`check` re-solves the clues by exhaustive search (its own code: permutations with pruning), requires
exactly one solution equal to the answer, and checks every fact stated in every step against it.

A model's answer: `score` reads each person's value per category from the answer text (cell_accuracy: the share
of cells right; grid_accuracy: all of them).
"""

from __future__ import annotations

import random
import re

from cognitive.data import answers
from cognitive.data.generators._text import Phrases, join_names, people
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep

SIZES = {"basic": (3, 2), "intermediate": (4, 2), "advanced": (4, 3), "expert": (5, 3)}

# category: values, [("has" phrase, "has not" phrase), ...], [noun phrases "the person who ..."]
CATEGORIES = {
    "cooking": [
        (
            "dish",
            ["soup", "pasta", "curry", "salad", "risotto", "tacos"],
            [("cooks the {v}", "does not cook the {v}"), ("makes the {v}", "does not make the {v}")],
            ["the person who cooks the {v}", "the {v} cook", "whoever makes the {v}"],
        ),
        (
            "spice",
            ["cumin", "basil", "ginger", "paprika", "thyme", "saffron"],
            [("uses {v}", "does not use {v}"), ("cooks with {v}", "never cooks with {v}")],
            ["the one who uses {v}", "the person who cooks with {v}"],
        ),
        (
            "drink",
            ["tea", "coffee", "lemonade", "juice", "cocoa", "cider"],
            [("drinks {v}", "does not drink {v}"), ("orders {v}", "does not order {v}")],
            ["the {v} drinker", "the person who drinks {v}", "whoever orders {v}"],
        ),
    ],
    "shopping": [
        (
            "shop",
            ["bakery", "bookshop", "florist", "pharmacy", "toy shop", "hardware store"],
            [("visits the {v}", "does not visit the {v}"), ("goes to the {v}", "skips the {v}")],
            ["the person who visits the {v}", "the shopper at the {v}", "whoever goes to the {v}"],
        ),
        (
            "purchase",
            ["lamp", "scarf", "kettle", "puzzle", "candle", "mirror"],
            [("buys the {v}", "does not buy the {v}"), ("pays for the {v}", "does not pay for the {v}")],
            ["the buyer of the {v}", "the person who buys the {v}"],
        ),
        (
            "bag",
            ["red", "blue", "green", "yellow", "white", "black"],
            [("carries the {v} bag", "does not carry the {v} bag"), ("has the {v} bag", "does not have the {v} bag")],
            ["the person with the {v} bag", "whoever carries the {v} bag"],
        ),
    ],
    "physics": [
        (
            "experiment",
            ["pendulum", "optics", "circuits", "magnetism", "acoustics", "heat flow"],
            [("runs the {v} experiment", "does not run the {v} experiment"), ("works on {v}", "does not work on {v}")],
            ["the person running the {v} experiment", "whoever works on {v}"],
        ),
        (
            "instrument",
            ["oscilloscope", "laser", "voltmeter", "thermometer", "microphone", "prism"],
            [("uses the {v}", "does not use the {v}"), ("borrows the {v}", "does not borrow the {v}")],
            ["whoever uses the {v}", "the person with the {v}"],
        ),
        (
            "room",
            ["lab A", "lab B", "lab C", "lab D", "lab E", "lab F"],
            [("works in {v}", "does not work in {v}"), ("is based in {v}", "is not based in {v}")],
            ["the person in {v}", "whoever works in {v}"],
        ),
    ],
    "finance": [
        (
            "bank",
            ["North Bank", "City Bank", "Harbor Bank", "Union Bank", "Summit Bank", "Valley Bank"],
            [("banks with {v}", "does not bank with {v}"), ("has an account at {v}", "has no account at {v}")],
            ["the {v} customer", "whoever banks with {v}"],
        ),
        (
            "investment",
            ["bonds", "shares", "gold", "property", "savings", "funds"],
            [("invests in {v}", "does not invest in {v}"), ("puts money into {v}", "puts no money into {v}")],
            ["the investor in {v}", "the person who invests in {v}"],
        ),
        (
            "city",
            ["Paris", "Lima", "Oslo", "Cairo", "Seoul", "Quito"],
            [("lives in {v}", "does not live in {v}"), ("comes from {v}", "does not come from {v}")],
            ["the person from {v}", "whoever lives in {v}"],
        ),
    ],
}
# clue sentence forms; {P} person, {h}/{n} has / has-not phrase, {W} noun phrase (second category: {h2}, {n2}, {W2})
CLUE_FORMS = {
    "is": ["{P} {h}.", "It is {P} who {h}.", "{P} is the one who {h}."],
    "is_not": ["{P} {n}.", "{W} is not {P}.", "{P} is not {w}."],
    "either": ["{P} either {h} or {h_}.", "{P} {h} or {h_}, one of the two."],
    "same": ["{W} {h2}.", "{W2} {h}.", "{W} and {w2} are the same person."],
    "differ": ["{W} {n2}.", "{W2} {n}.", "{W} and {w2} are different people."],
}
KIND_WEIGHTS = {"is": 1, "is_not": 3, "either": 2, "same": 3, "differ": 2}


# ------------------------------------------------------------------------------ propagation solver
class Grid:
    """Candidate sets as bitmasks: cand[c][p] = values still possible for person p in category c."""

    def __init__(self, n: int, m: int):
        self.n, self.m = n, m
        self.full = (1 << n) - 1
        self.cand = [[self.full] * n for _ in range(m)]

    def solved(self) -> bool:
        return all(x & (x - 1) == 0 for row in self.cand for x in row)

    def remove(self, c: int, p: int, mask: int) -> bool:
        new = self.cand[c][p] & ~mask
        if new == self.cand[c][p]:
            return False
        if new == 0:
            raise ValueError("contradiction")
        self.cand[c][p] = new
        return True


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def propagate(grid: Grid, clues: list[list], record=None) -> bool:
    """Apply the human rules until nothing changes; `record(kind, text parts, facts)` receives every
    deduction that changed the grid. Returns True when every cell is fixed."""
    n, m = grid.n, grid.m
    cand = grid.cand

    def log(*args):
        if record is not None:
            record(*args)

    stated: set[tuple[int, int]] = set()  # cells whose value a step has already stated
    for i, cl in enumerate(clues):
        kind = cl[0]
        if kind == "is":
            _, p, c, v = cl
            if grid.remove(c, p, grid.full & ~(1 << v)):
                log("clue", i, [(p, c, v, True)])
                stated.add((c, p))
        elif kind == "is_not":
            _, p, c, v = cl
            if grid.remove(c, p, 1 << v):
                log("clue", i, [(p, c, v, False)])
        elif kind == "either":
            _, p, c, v, w = cl
            gone = cand[c][p] & ~((1 << v) | (1 << w))
            if grid.remove(c, p, gone):
                log("clue", i, [(p, c, x, False) for x in _bits(gone)])
    taken: set[tuple[int, int]] = set()
    changed = True
    while changed and not grid.solved():
        changed = False
        for c in range(m):
            for p in range(n):
                x = cand[c][p]
                if x & (x - 1) == 0 and (c, p) not in taken:
                    # a fixed value (only option left, or stated before) is taken: nobody else has it
                    v = x.bit_length() - 1
                    taken.add((c, p))
                    others = [q for q in range(n) if q != p and cand[c][q] & x]
                    for q in others:
                        grid.remove(c, q, x)
                    facts = [(q, c, v, False) for q in others]
                    if (c, p) not in stated:
                        stated.add((c, p))
                        log("single", (p, c, v), [(p, c, v, True)] + facts)
                    elif facts:
                        log("taken", (p, c, v), facts)
                    changed = changed or bool(others)
        for c in range(m):  # only one person left for a value: in p's set and in nobody else's
            col = cand[c]
            for p in range(n):
                others = 0
                for q in range(n):
                    if q != p:
                        others |= col[q]
                mine = col[p] & ~others
                if mine and mine != col[p]:
                    if mine & (mine - 1):
                        raise ValueError("contradiction")
                    v = mine.bit_length() - 1
                    grid.remove(c, p, grid.full & ~mine)
                    stated.add((c, p))
                    log("only", (p, c, v), [(p, c, v, True)])
                    changed = True
        for i, cl in enumerate(clues):  # clue links between two categories
            if cl[0] == "same":
                _, c1, v1, c2, v2 = cl
                facts = []
                for p in range(n):
                    if not cand[c1][p] >> v1 & 1 and grid.remove(c2, p, 1 << v2):
                        facts.append((p, c2, v2, False))
                    if not cand[c2][p] >> v2 & 1 and grid.remove(c1, p, 1 << v1):
                        facts.append((p, c1, v1, False))
                if facts:
                    log("link", i, facts)
                    changed = True
            elif cl[0] == "differ":
                _, c1, v1, c2, v2 = cl
                facts = []
                for p in range(n):
                    if cand[c1][p] == 1 << v1 and grid.remove(c2, p, 1 << v2):
                        facts.append((p, c2, v2, False))
                    if cand[c2][p] == 1 << v2 and grid.remove(c1, p, 1 << v1):
                        facts.append((p, c1, v1, False))
                if facts:
                    log("link", i, facts)
                    changed = True
    if record is not None:  # state the last cells fixed by the final elimination
        for c in range(m):
            for p in range(n):
                x = cand[c][p]
                if x & (x - 1) == 0 and (c, p) not in stated:
                    stated.add((c, p))
                    log("single", (p, c, x.bit_length() - 1), [(p, c, x.bit_length() - 1, True)])
    return grid.solved()


def _solvable(n: int, m: int, clues: list[list]) -> bool:
    try:
        return propagate(Grid(n, m), clues)
    except ValueError:
        return False


def _implied(grid: Grid, cl: list) -> bool:
    """True when the grid already knows what the clue would say (adding it would teach nothing)."""
    kind, cand = cl[0], grid.cand
    if kind == "is":
        return cand[cl[2]][cl[1]] == 1 << cl[3]
    if kind == "is_not":
        return not cand[cl[2]][cl[1]] >> cl[3] & 1
    if kind == "either":
        return not cand[cl[2]][cl[1]] & ~((1 << cl[3]) | (1 << cl[4]))
    _, c1, v1, c2, v2 = cl
    return all(
        not (cand[c1][p] >> v1 & 1 and cand[c2][p] >> v2 & 1) or (cand[c1][p] == 1 << v1 and cand[c2][p] == 1 << v2)
        for p in range(grid.n)
    )


def _true_clues(rng: random.Random, sol: list[list[int]], n: int, m: int, k: int):
    """Up to k random clues (lazily) that hold in the solution sol[c][p] (category c, person p -> value)."""
    kinds = list(KIND_WEIGHTS)
    weights = [KIND_WEIGHTS[x] if (m > 1 or x not in ("same", "differ")) else 0 for x in kinds]
    out = []
    while len(out) < k:
        if out:
            yield out[-1]
        kind = rng.choices(kinds, weights)[0]
        p, c = rng.randrange(n), rng.randrange(m)
        if kind == "is":
            out.append(["is", p, c, sol[c][p]])
        elif kind == "is_not":
            out.append(["is_not", p, c, rng.choice([v for v in range(n) if v != sol[c][p]])])
        elif kind == "either":
            other = rng.choice([v for v in range(n) if v != sol[c][p]])
            pair = [sol[c][p], other]
            rng.shuffle(pair)
            out.append(["either", p, c, *pair])
        else:
            c1, c2 = rng.sample(range(m), 2)
            v1 = rng.randrange(n)
            owner = sol[c1].index(v1)
            if kind == "same":
                out.append(["same", c1, v1, c2, sol[c2][owner]])
            else:
                out.append(["differ", c1, v1, c2, rng.choice([v for v in range(n) if v != sol[c2][owner]])])
    yield out[-1]


INTRO = [
    "{P} each have a different {cats}.",
    "Each of {P} has exactly one {one}, and no two share one.",
    "{P} are matched with one {one} each, all different.",
]
INSTRUCTION = [
    "Use the clues to find each person's {cats}.",
    "Who has which {cats}? Reason from the clues.",
    "Solve the puzzle: give every person's {cats}.",
]


def generate(rng: random.Random, difficulty: str, domain: str) -> dict:
    n, m = SIZES[difficulty]
    ph = Phrases(rng, prefix=f"{domain}.")
    names = people(rng, n)
    cats = rng.sample(CATEGORIES[domain], m)
    values = [rng.sample(cat[1], n) for cat in cats]
    sol = [rng.sample(range(n), n) for _ in range(m)]  # sol[c][p] = value index
    clues = _choose_clues(rng, sol, n, m)
    words = _Wording(ph, names, cats, values, clues)
    context, instruction = words.problem_text()
    steps: list[ReasoningStep] = []
    propagate(Grid(n, m), clues, lambda kind, ref, facts: words.record(steps, kind, ref, facts))
    answer = {names[p]: {cats[c][0]: values[c][sol[c][p]] for c in range(m)} for p in range(n)}
    final = "; ".join(f"{p}: {', '.join(a.values())}" for p, a in answer.items())
    spec = {
        "people": names,
        "categories": {cats[c][0]: values[c] for c in range(m)},
        "clues": [_spec_clue(cl, names, cats, values) for cl in clues],
        "answer": answer,
        "template": ph.template_id(),
    }
    memory = [f"{p}: " + ", ".join(f"{k} = {v}" for k, v in a.items()) for p, a in answer.items()]
    return dict(
        domain=domain,
        context=context,
        instruction=instruction,
        constraints=[f"Each {c[0]} belongs to exactly one person" for c in cats],
        reasoning_steps=steps,
        memory_usage=memory,
        final_answer=final,
        problem_spec=spec,
    )


def _choose_clues(rng, sol: list[list[int]], n: int, m: int) -> list[list]:
    """True clues added until propagation fixes every cell, then those the rest make redundant dropped."""
    pool = _true_clues(rng, sol, n, m, 8 * n * m)
    clues: list[list] = []
    grid = Grid(n, m)
    for cl in pool:  # add informative clues until propagation fixes every cell (the grid only shrinks)
        if cl not in clues and not _implied(grid, cl):
            clues.append(cl)
            if propagate(grid, clues):
                break
    else:  # the pool ran out (rare): the direct facts always solve it
        clues += [["is", p, c, sol[c][p]] for c in range(m) for p in range(n)]
    for i in range(len(clues) - 2, -1, -1):  # drop clues the rest make redundant
        trial = clues[:i] + clues[i + 1 :]
        if _solvable(n, m, trial):
            clues = trial
    return clues


class _Wording:
    """A puzzle's words: one wording per category inside a puzzle, a sentence form per clue, and the texts of the
    deductions (the reasoning steps)."""

    def __init__(self, ph: Phrases, names, cats, values, clues):
        self.ph, self.names, self.cats, self.values, self.clues = ph, names, cats, values, clues
        self.verbs = [ph.pick(f"{cat[0]}.verb", cat[2]) for cat in cats]
        self.nouns = [ph.pick(f"{cat[0]}.noun", cat[3]) for cat in cats]
        self.forms = [ph.pick(f"clue.{cl[0]}.", CLUE_FORMS[cl[0]]) for cl in clues]

    def has(self, c, v):
        return self.verbs[c][0].format(v=self.values[c][v])

    def hasnt(self, c, v):
        return self.verbs[c][1].format(v=self.values[c][v])

    def who(self, c, v):
        return self.nouns[c].format(v=self.values[c][v])

    def clue_text(self, i: int) -> str:
        cl, form = self.clues[i], self.forms[i]
        if cl[0] in ("is", "is_not", "either"):
            p, c, v = cl[1:4]
            h_ = self.has(c, cl[4]) if cl[0] == "either" else ""
            f = dict(P=self.names[p], h=self.has(c, v), n=self.hasnt(c, v), w=self.who(c, v), h_=h_)
        else:
            c1, v1, c2, v2 = cl[1:]
            f = dict(
                h=self.has(c1, v1),
                n=self.hasnt(c1, v1),
                w=self.who(c1, v1),
                h2=self.has(c2, v2),
                n2=self.hasnt(c2, v2),
                w2=self.who(c2, v2),
            )
        f["W"], f["W2"] = _cap(f["w"]), _cap(f.get("w2", ""))
        return _cap(form.format(**f))

    def problem_text(self) -> tuple[str, str]:
        """(context, instruction): who and what, the options per category, the numbered clues."""
        names, cats, values = self.names, self.cats, self.values
        clue_lines = [f"{i + 1}. {self.clue_text(i)}" for i in range(len(self.clues))]
        cat_lines = [join_names(sorted(values[c])) for c in range(len(cats))]
        intro = self.ph.pick("intro", INTRO).format(
            P=join_names(names), cats=join_names([cat[0] for cat in cats]), one=" and one ".join(cat[0] for cat in cats)
        )
        options = " ".join(f"The {_plural(cat[0])} are {line}." for cat, line in zip(cats, cat_lines))
        instruction = self.ph.pick("instruction", INSTRUCTION).format(cats=" and ".join(c[0] for c in cats))
        return f"{intro} {options} Clues: " + " ".join(clue_lines), instruction

    def facts_text(self, facts) -> str:
        """[(p, c, v, positive)...] -> 'Bo, Cy: drink ≠ tea; Ana: dish = soup' (people grouped per fact)."""
        groups: dict[tuple, list[str]] = {}
        for p, c, v, positive in facts:
            groups.setdefault((c, v, positive), []).append(self.names[p])
        merged: dict[tuple, list[str]] = {}  # one person ruled out for several values: "Bo: drink ≠ tea, juice"
        for (c, v, pos), ps in groups.items():
            key = (tuple(ps), c, pos) if len(ps) == 1 and not pos else (tuple(ps), c, pos, v)
            merged.setdefault(key, []).append(self.values[c][v])
        return "; ".join(
            f"{', '.join(k[0])}: {self.cats[k[1]][0]} {'=' if k[2] else '≠'} {', '.join(vs)}"
            for k, vs in merged.items()
        )

    def record(self, steps: list[ReasoningStep], kind: str, ref, facts) -> None:
        """One reasoning step per deduction of the propagation solver that established facts."""
        if not facts:
            return
        names, cats, values = self.names, self.cats, self.values
        if kind == "clue":
            desc, why = f"Apply clue {ref + 1}", f'"{self.clue_text(ref)}"'
        elif kind == "taken":
            p, c, v = ref
            desc, why = f"{_cap(values[c][v])} is taken by {names[p]}", f"One person per {cats[c][0]}."
        elif kind == "single":
            p, c, v = ref
            desc = f"Only one {cats[c][0]} is left for {names[p]}"
            why = f"The other {_plural(cats[c][0])} are ruled out" + (
                ", and nobody else can have it." if len(facts) > 1 else "."
            )
        elif kind == "only":
            p, c, v = ref
            desc, why = f"Only {names[p]} can have {values[c][v]}", "Everyone else is ruled out."
        else:
            cl = self.clues[ref]
            desc = f"Use clue {ref + 1}"
            x, y = values[cl[1]][cl[2]], values[cl[3]][cl[4]]
            why = (
                f"{x} and {y} go together: ruled out for one, ruled out for the other."
                if cl[0] == "same"
                else f"{x} and {y} never go together."
            )
        steps.append(
            ReasoningStep(step=len(steps) + 1, description=desc, reasoning=why, memory_update=self.facts_text(facts))
        )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _plural(word: str) -> str:
    if word.endswith("y"):
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("sh", "ch", "s")) else "s")


def _spec_clue(cl, names, cats, values) -> list:
    """Clue with names and values spelled out, so the spec reads without the generator's indices."""
    kind = cl[0]
    if kind in ("is", "is_not"):
        return [kind, names[cl[1]], cats[cl[2]][0], values[cl[2]][cl[3]]]
    if kind == "either":
        return [kind, names[cl[1]], cats[cl[2]][0], values[cl[2]][cl[3]], values[cl[2]][cl[4]]]
    return [kind, cats[cl[1]][0], values[cl[1]][cl[2]], cats[cl[3]][0], values[cl[3]][cl[4]]]


# --------------------------------------------------------------------------------------- checker
def solutions(spec: dict, limit: int = 2) -> list[dict]:
    """All assignments satisfying the spec's clues (up to `limit`), by plain backtracking over the cells
    (person by person, category by category) with all-different and clue consistency on the partial
    assignment -- none of the generator's propagation rules are involved."""
    ppl, cats = spec["people"], list(spec["categories"])
    person = {p: i for i, p in enumerate(ppl)}
    n = len(ppl)
    by_cat: dict[str, list] = {c: [] for c in cats}
    for cl in spec["clues"]:
        if cl[0] in ("is", "is_not", "either"):
            by_cat[cl[2]].append(cl)
        else:
            by_cat[cl[1]].append(cl)
            by_cat[cl[3]].append(cl)
    grid = [dict() for _ in range(n)]  # grid[person][category] = value
    used = {c: set() for c in cats}
    found = []

    def consistent(i: int, c: str) -> bool:
        for cl in by_cat[c]:
            kind = cl[0]
            if kind in ("is", "is_not", "either"):
                if person[cl[1]] != i:
                    continue
                v = grid[i][c]
                if (
                    (kind == "is" and v != cl[3])
                    or (kind == "is_not" and v == cl[3])
                    or (kind == "either" and v not in cl[3:5])
                ):
                    return False
            else:
                a, b = grid[i].get(cl[1]), grid[i].get(cl[3])
                if a is None or b is None:
                    continue
                if kind == "same" and (a == cl[2]) != (b == cl[4]):
                    return False
                if kind == "differ" and a == cl[2] and b == cl[4]:
                    return False
        return True

    def rec(k: int) -> None:
        if len(found) >= limit:
            return
        if k == n * len(cats):
            found.append({ppl[i]: dict(grid[i]) for i in range(n)})
            return
        i, c = divmod(k, len(cats))
        c = cats[c]
        for v in spec["categories"][c]:
            if v in used[c]:
                continue
            grid[i][c] = v
            used[c].add(v)
            if consistent(i, c):
                rec(k + 1)
            used[c].discard(v)
            del grid[i][c]

    rec(0)
    return found


_FACT = re.compile(r"^\s*(?P<p>[^:;]+):\s*(?P<c>[\w ]+?)\s*(?P<op>=|≠)\s*(?P<v>[^;]+?)\s*$")


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:
    spec = example.problem_spec
    if spec is None:
        return ["unverifiable: no problem_spec; the clues cannot be re-solved from free text"]
    problems = []
    sols = solutions(spec)
    if not sols:
        return ["the clues have no solution"]
    if len(sols) > 1:
        problems.append("the clues allow more than one solution")
    truth = sols[0]
    if truth != spec["answer"]:
        problems.append("problem_spec answer is not the solution of its clues")
    stated = {}
    for part in example.final_answer.split(";"):
        name, sep, rest = part.partition(":")
        if sep:
            stated[name.strip()] = {v.strip().rstrip(".") for v in rest.split(",")}
    for p in spec["people"]:
        if stated.get(p) != set(truth[p].values()):
            problems.append(
                f"final answer for {p} is {sorted(stated.get(p, []))}, the solution is {sorted(truth[p].values())}"
            )
    context = example.context
    for p in spec["people"]:
        if p not in context:
            problems.append(f"{p} is not in the context")
    for i, _cl in enumerate(spec["clues"], 1):
        if f"{i}. " not in context:
            problems.append(f"clue {i} is not in the context")
    for i, step in enumerate(example.reasoning_steps, 1):
        for fact in filter(None, (f.strip() for f in step.memory_update.split(";"))):
            m = _FACT.match(fact)
            if not m:
                if strict:
                    problems.append(f"step {i}: cannot read the fact '{fact}'")
                continue
            c = m.group("c").strip()
            for p in (x.strip() for x in m.group("p").split(",")):
                for v in (x.strip() for x in m.group("v").split(",")):
                    if p not in truth or c not in truth[p]:
                        problems.append(f"step {i}: unknown person or category in '{fact}'")
                    elif (truth[p][c] == v) != (m.group("op") == "="):
                        problems.append(f"step {i}: '{p}: {c} {m.group('op')} {v}' is false")
    if strict and not example.reasoning_steps:
        problems.append("no reasoning steps")
    return problems


# ------------------------------------------------------------------------------------ a model's answer
def score(output: str | None, spec: dict) -> dict[str, float]:
    """Logic grid: each person's value per category, read from the answer text after each mention of that person; a
    cell with two different values of a category is wrong."""
    region, _ = answers.answer_region(output)
    persons, categories, gold = spec["people"], spec["categories"], spec["answer"]
    marks = answers.mentions(region, persons)
    said: dict[tuple[str, str], set[str]] = {}
    for i, (pos, person) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(region)
        segment = region[pos:end]
        for category, values in categories.items():
            for value in answers.named(segment, values):
                said.setdefault((person, category), set()).add(value)
    cells = [(p, c) for p in persons for c in categories]
    right = sum(said.get((p, c)) == {gold[p][c]} for p, c in cells)
    return {
        "grid_accuracy": float(right == len(cells)),
        "cell_accuracy": right / len(cells),
        "answered": float(bool(said)),
    }
