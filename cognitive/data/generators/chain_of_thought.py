"""chain_of_thought: multi-step arithmetic word problems (shopping, cooking, physics units, finance).

A problem is a running quantity (money in a wallet, grams of flour, kilometres driven, a savings
balance) changed by a sequence of events ("buys 4 notebooks at $3 each", "a bag of 500 g is added").
Each event is one or two arithmetic operations; difficulty sets the number of operations (2-8) and
the size of the numbers. Each reasoning step is exactly one operation; a product of two numbers >= 10
is written out by place value ("23 × 14 = 23 × 10 + 23 × 4 = 230 + 92 = 322").

`problem_spec` holds the problem as data, independent of the wording:
    {"values": {"v0": 30, "v1": 4, ...}, "constants": ["c0"], "ops": [["mul", "v1", "v2", "r1"], ...],
     "answer": "23", "unit": "$", "template": "<hash>"}
`check` re-evaluates the ops with its own interpreter, re-parses every step's arithmetic from the text
(cognitive.data.arith), and ties steps, context and final answer to the spec.

A model's answer: `score` compares its final number with the answer exactly; `step_validity` (the step-level
reward) is the share of its arithmetic steps that hold, and an arithmetic answer without one checkable step earns 0.
"""

from __future__ import annotations

import random

from cognitive.data import answers, arith
from cognitive.data.generators._text import NAMES, Phrases, cap, person
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep

# difficulty -> (operations, start range, addend range, group count range, per-group range, divisor range)
SIZES = {
    "basic": dict(ops=(2, 3), start=(10, 40), small=(2, 9), n=(2, 5), m=(2, 9), k=(2, 4)),
    "intermediate": dict(ops=(3, 3), start=(20, 120), small=(2, 30), n=(2, 9), m=(2, 15), k=(2, 6)),
    "advanced": dict(ops=(4, 6), start=(100, 900), small=(5, 150), n=(11, 40), m=(11, 60), k=(2, 9)),
    "expert": dict(ops=(6, 8), start=(500, 5000), small=(10, 600), n=(12, 60), m=(101, 400), k=(2, 12)),
}

# ---------------------------------------------------------------------------------------------------
# Frames: one running quantity each. Event templates are (context sentence, step description(s)).
# Placeholders: {N} name, {S}/{s} subject pronoun, {o} object pronoun, {p} possessive, {A} other person,
# {x} an amount, {n} a count of groups, {m} an amount per group, {k} a divisor or factor.
# ---------------------------------------------------------------------------------------------------
FRAMES = {
    "shopping": [
        dict(
            unit="$",
            label=["Money left", "Cash on hand", "Wallet"],
            places=["market", "mall", "bookshop", "corner store", "hardware store", "farmers' market"],
            things=[
                "notebooks",
                "pens",
                "mugs",
                "socks",
                "candles",
                "batteries",
                "apples",
                "light bulbs",
                "stickers",
                "comics",
            ],
            item=["scarf", "lamp", "backpack", "pair of shoes", "board game", "phone case", "umbrella", "plant"],
            start=[
                "{N} has {a} to spend at the {place}.",
                "{N} goes to the {place} with {a} in {p} wallet.",
                "{N} takes {a} to the {place}.",
                "When {N} arrives at the {place}, {s} has {a}.",
            ],
            start_mul=[
                ("{N} has {n} gift cards worth {m} each.", "Add up the gift cards"),
                ("{N} brings {n} bills of {m} each to the {place}.", "Find how much money {N} brings"),
            ],
            add=[
                ("{S} finds {x} in {p} coat pocket.", "Add the money found"),
                ("{A} gives {o} {x}.", "Add the money from {A}"),
                ("{S} gets a refund of {x}.", "Add the refund"),
            ],
            sub=[
                ("{S} spends {x} on a {item}.", "Subtract the {item}"),
                ("{S} pays {x} for a {item}.", "Pay for the {item}"),
                ("A {item} costs {x}, and {s} buys it.", "Take away the price of the {item}"),
            ],
            mulsub=[
                ("{S} buys {n} {things} at {m} each.", "Cost of the {things}", "Subtract the cost of the {things}"),
                ("{S} picks up {n} {things}; each one costs {m}.", "Price of {n} {things}", "Pay for the {things}"),
                (
                    "Next, {s} gets {n} {things}, which are {m} apiece.",
                    "Total for the {things}",
                    "Money after the {things}",
                ),
            ],
            muladd=[
                ("{S} sells {n} old {things} for {m} each.", "Money from selling the {things}", "Add the sales"),
                ("{A} pays {o} back for {n} {things} at {m} each.", "Work out what {A} owes", "Add the repayment"),
            ],
            pct=[
                ("{S} spends {pc}% of what is left on a {item}.", "Find {pc}% of the money", "Subtract the {item}", "-")
            ],
            div=[
                (
                    "{S} shares the remaining money equally among {k} friends.",
                    "Split the money {k} ways",
                    ["How much does each friend get?", "What is one friend's share?"],
                    ["Each friend gets {ans}.", "One share is {ans}."],
                )
            ],
            question=[
                "How much money does {N} have left?",
                "How much money is left in {N}'s wallet?",
                "What amount of money does {N} end up with?",
                "How many dollars does {N} have at the end?",
            ],
            answer=["{N} has {ans} left.", "{N} ends up with {ans}.", "There is {ans} left.", "{ans}"],
        ),
        dict(
            unit="things",
            label=["In stock", "Stock", "Items on the shelf"],
            places=["toy shop", "bakery", "grocery", "stationery store"],
            things=[
                "toy cars",
                "bread rolls",
                "cans of soup",
                "erasers",
                "jars of jam",
                "yo-yos",
                "bars of soap",
                "candles",
            ],
            start=[
                "{N}'s {place} has {a} in stock.",
                "{N} runs a {place} and starts the day with {a}.",
                "There are {a} on the shelves of {N}'s {place}.",
            ],
            start_mul=[
                ("{N}'s {place} has {n} crates with {m} in each.", "Count the {things} in the crates"),
                ("{N} stacks {n} boxes of {m} in the {place}.", "Total {things} in the boxes"),
            ],
            add=[
                ("A delivery brings {x} more.", "Add the delivery"),
                ("{N} finds {x} more in the back room.", "Add the ones found"),
                ("Customers return {x}.", "Add the returns"),
            ],
            sub=[
                ("In the morning {x} are sold.", "Subtract the morning sales"),
                ("{N} sells {x} to a school.", "Subtract the school order"),
                ("{x} turn out to be damaged and are thrown away.", "Remove the damaged ones"),
            ],
            mulsub=[
                ("{n} customers each buy {m}.", "Number bought by the customers", "Subtract what was bought"),
                (
                    "{N} packs {n} gift bags with {m} in each and sends them out.",
                    "Number in the gift bags",
                    "Subtract the gift bags",
                ),
            ],
            muladd=[
                ("A truck delivers {n} boxes of {m}.", "Count the delivered {things}", "Add the delivery"),
                ("{N} unpacks {n} cartons holding {m} each.", "Number in the cartons", "Add the cartons"),
            ],
            div=[
                (
                    "The rest are packed equally into {k} baskets.",
                    "Share the {things} among {k} baskets",
                    ["How many {things} go in each basket?", "How many are in one basket?"],
                    ["Each basket holds {ans}.", "{ans} in each basket."],
                )
            ],
            question=[
                "How many {things} are left?",
                "How many {things} does the {place} have now?",
                "How many {things} remain in stock?",
            ],
            answer=["The {place} has {ans} left.", "{ans} remain.", "There are {ans} now.", "{ans}"],
        ),
    ],
    "cooking": [
        dict(
            unit="g",
            label=["Flour left", "Flour", "Flour in the jar"],
            things=["loaves", "pizza bases", "batches of pancakes", "cakes", "pie crusts"],
            start=[
                "{N} has {a} of flour in the jar.",
                "There is {a} of flour in {N}'s kitchen.",
                "{N}'s flour bin holds {a}.",
            ],
            start_mul=[("{N} has {n} bags of flour, each weighing {m}.", "Total flour in the bags")],
            add=[
                ("{S} buys another bag of {x}.", "Add the new bag"),
                ("{A} lends {o} {x} of flour.", "Add the borrowed flour"),
            ],
            sub=[
                ("{S} uses {x} to dust the table.", "Subtract the dusting flour"),
                ("{S} spills {x}.", "Remove the spilled flour"),
                ("{S} gives {x} to {A}.", "Subtract the flour given away"),
            ],
            mulsub=[
                (
                    "{S} bakes {n} {things}, each needing {m} of flour.",
                    "Flour for the {things}",
                    "Subtract the flour used",
                ),
                (
                    "For {n} {things} the recipe asks for {m} each, and {s} makes them all.",
                    "Flour the recipe needs",
                    "Take it out of the jar",
                ),
            ],
            muladd=[("{S} opens {n} small packets of {m} each.", "Flour in the packets", "Add the packets")],
            div=[
                (
                    "The rest is divided equally into {k} containers.",
                    "Split the flour into {k} containers",
                    ["How much flour goes in each container?", "How many grams are in one container?"],
                    ["Each container gets {ans}.", "{ans} per container."],
                )
            ],
            question=[
                "How much flour is left?",
                "How many grams of flour remain?",
                "How much flour does {N} have now?",
            ],
            answer=["{ans} of flour is left.", "{N} has {ans} left.", "There are {ans} of flour remaining.", "{ans}"],
        ),
        dict(
            unit="cookies",
            label=["Cookies", "Cookies on the plate", "Cookie count"],
            things=["trays", "batches"],
            start=["{N} has {a} in a tin.", "{N}'s plate holds {a}.", "{N} counts {a} in the jar."],
            start_mul=[
                ("{N} bakes {n} trays with {m} on each.", "Cookies from the trays"),
                ("{N} has {n} rows of {m} cooling on the rack.", "Count the cookies on the rack"),
            ],
            add=[("{A} brings another {x}.", "Add {A}'s cookies"), ("{S} bakes {x} extra.", "Add the extra cookies")],
            sub=[
                ("{S} eats {x}.", "Subtract the cookies eaten"),
                ("{A} takes {x} to school.", "Subtract what {A} takes"),
                ("{x} break and are thrown out.", "Remove the broken cookies"),
            ],
            mulsub=[
                (
                    "{S} gives {m} to each of {n} neighbours.",
                    "Cookies given to the neighbours",
                    "Subtract the neighbours' cookies",
                ),
                ("{n} guests each eat {m}.", "Cookies the guests eat", "Subtract what the guests ate"),
            ],
            muladd=[("{S} bakes {n} more trays of {m}.", "Cookies from the new trays", "Add the new trays")],
            scale=[("For a party, {s} bakes until there are {k} times as many as before.", "Multiply for the party")],
            div=[
                (
                    "The rest are shared equally among {k} children.",
                    "Share the cookies among {k} children",
                    ["How many cookies does each child get?", "How many does one child receive?"],
                    ["Each child gets {ans}.", "{ans} each."],
                )
            ],
            question=["How many cookies are left?", "How many cookies does {N} have now?", "How many cookies remain?"],
            answer=["{ans} are left.", "{N} has {ans}.", "There are {ans} left.", "{ans}"],
        ),
    ],
    "physics": [
        dict(
            unit="km",
            label=["Distance so far", "Distance", "Odometer"],
            convert=("m", 1000, "metres"),
            start=[
                "{N} has already cycled {a}.",
                "{N}'s car has covered {a} on a trip.",
                "{N}'s train has travelled {a} from the station.",
            ],
            start_mul=[
                ("{N} drives at {m} per hour for {n} hours.", "Distance in the first part (speed × time)"),
                ("{N} cycles {n} hours at {m} per hour.", "Distance = speed × time"),
            ],
            add=[
                ("{S} goes another {x}.", "Add the extra distance"),
                ("After a stop, {s} covers {x} more.", "Add the next stretch"),
            ],
            muladd=[
                (
                    "{S} travels {n} hours at {m} per hour.",
                    "Distance in that part (speed × time)",
                    "Add it to the total",
                ),
                (
                    "{S} continues for {n} hours at a speed of {m} per hour.",
                    "Distance for that stretch",
                    "Add the stretch",
                ),
            ],
            convert_q=["How far does {N} travel in total, in metres?", "What is the total distance in metres?"],
            question=[
                "How far has {N} travelled in total?",
                "What is the total distance?",
                "How many kilometres does {N} cover in all?",
            ],
            answer=["The total distance is {ans}.", "{N} covers {ans}.", "{ans}"],
        ),
        dict(
            unit="L",
            label=["Water in tank", "Tank", "Volume"],
            convert=("mL", 1000, "millilitres"),
            start=[
                "{N}'s tank holds {a} of water.",
                "{N} fills a tank with {a} of water.",
                "There are {a} of water in {N}'s tank.",
            ],
            start_mul=[("{N} pours {n} buckets of {m} each into an empty tank.", "Water poured in")],
            add=[("Rain adds {x}.", "Add the rain"), ("{N} tops it up with {x}.", "Add the top-up")],
            sub=[
                ("{x} leak out overnight.", "Subtract the leak"),
                ("{N} uses {x} to water the garden.", "Subtract the garden water"),
            ],
            mulsub=[("{S} fills {n} jugs of {m} each from it.", "Water taken by the jugs", "Subtract the jugs")],
            muladd=[
                (
                    "A pump adds {m} per minute for {n} minutes.",
                    "Water the pump adds (rate × time)",
                    "Add the pumped water",
                )
            ],
            div=[
                (
                    "The water is then split equally into {k} containers.",
                    "Divide among {k} containers",
                    ["How much water is in each container?"],
                    ["Each container holds {ans}."],
                )
            ],
            convert_q=[
                "How much water is in the tank, in millilitres?",
                "How many millilitres of water are in the tank?",
            ],
            question=["How much water is in the tank now?", "How many litres are in the tank at the end?"],
            answer=["The tank holds {ans}.", "There are {ans} of water.", "{ans}"],
        ),
        dict(
            unit="minutes",
            label=["Time so far", "Elapsed time", "Total time"],
            convert=("seconds", 60, "seconds"),
            start=["{N}'s experiment has been running for {a}.", "{N} has spent {a} in the lab."],
            start_mul=[("{N} runs {n} trials that take {m} each.", "Time for the trials")],
            add=[
                ("Calibration takes another {x}.", "Add calibration"),
                ("{S} waits {x} for the sample to cool.", "Add the cooling time"),
            ],
            muladd=[
                ("{S} runs {n} more trials of {m} each.", "Time for the extra trials", "Add the extra trials"),
                ("{S} repeats a {m} measurement {n} times.", "Time for the repeats", "Add the repeats"),
            ],
            convert_q=["How long is that in seconds?", "How many seconds is the total time?"],
            question=["How long does the work take in total?", "How many minutes pass in total?"],
            answer=["It takes {ans}.", "The total is {ans}.", "{ans}"],
        ),
    ],
    "finance": [
        dict(
            unit="$",
            label=["Balance", "Savings", "Account"],
            start=[
                "{N} has {a} in a savings account.",
                "{N}'s account balance is {a}.",
                "{N} opens an account with {a}.",
            ],
            start_mul=[("{N} saves {m} a week for {n} weeks.", "Savings over the weeks")],
            add=[("{S} deposits {x}.", "Add the deposit"), ("{S} receives a bonus of {x}.", "Add the bonus")],
            sub=[
                ("{S} withdraws {x}.", "Subtract the withdrawal"),
                ("A bill of {x} is paid from the account.", "Pay the bill"),
            ],
            muladd=[
                ("{S} deposits {m} every month for {n} months.", "Total of the monthly deposits", "Add the deposits"),
                (
                    "{S} earns {m} per shift for {n} shifts and saves it all.",
                    "Earnings from the shifts",
                    "Add the earnings",
                ),
            ],
            mulsub=[
                ("{S} pays {n} loan instalments of {m}.", "Total of the instalments", "Subtract the instalments"),
                (
                    "A subscription costs {m} a month, and {s} pays for {n} months.",
                    "Cost of the subscription",
                    "Subtract the subscription",
                ),
            ],
            pct=[
                ("The bank adds {pc}% interest.", "Interest earned", "Add the interest", "+"),
                (
                    "After a year the account earns {pc}% interest.",
                    "Work out the interest",
                    "Add the interest to the balance",
                    "+",
                ),
            ],
            div=[
                (
                    "{S} splits the balance equally among {k} accounts.",
                    "Divide the balance by {k}",
                    ["How much goes into each account?"],
                    ["Each account gets {ans}."],
                )
            ],
            question=[
                "What is {N}'s balance at the end?",
                "How much money is in the account now?",
                "How much does {N} have saved?",
            ],
            answer=["The balance is {ans}.", "{N} has {ans}.", "{ans} is in the account.", "{ans}"],
        ),
        dict(
            unit="$",
            label=["Budget left", "Remaining budget", "Budget"],
            start=[
                "{N}'s monthly budget is {a}.",
                "{N} sets aside {a} for the month.",
                "{N}'s club has {a} in its fund.",
            ],
            start_mul=[("{N} earns {m} per day for {n} days.", "Earnings for the days")],
            add=[("{S} gets {x} from a side job.", "Add the side job"), ("A donor gives {x}.", "Add the donation")],
            sub=[
                ("Rent of {x} is paid.", "Subtract rent"),
                ("Groceries cost {x}.", "Subtract groceries"),
                ("{S} pays a {x} phone bill.", "Subtract the phone bill"),
            ],
            mulsub=[
                ("{S} buys {n} bus passes at {m} each.", "Cost of the bus passes", "Subtract the passes"),
                ("{n} tickets at {m} each are bought for a trip.", "Price of the tickets", "Subtract the tickets"),
            ],
            pct=[
                ("{pc}% of the remaining budget is put into savings.", "Amount saved", "Subtract the savings", "-"),
                ("A tax of {pc}% of the remaining budget is paid.", "Tax owed", "Subtract the tax", "-"),
            ],
            div=[
                (
                    "What is left is split equally over {k} weeks.",
                    "Divide by {k} weeks",
                    ["How much can be spent each week?"],
                    ["{ans} per week."],
                )
            ],
            question=["How much of the budget is left?", "How much money remains?", "What is left of the budget?"],
            answer=["{ans} is left.", "The budget has {ans} left.", "{ans} remains.", "{ans}"],
        ),
    ],
}

LINKS = ["", "", "Then ", "After that, ", "Later, ", "Next, "]
INSTRUCTION_PREFIX = ["", "", "Solve step by step. ", "Show your work. "]


def _linked(link: str, sentence: str) -> str:
    """'Then ' + 'He buys ...' -> 'Then he buys ...' (names keep their capital)."""
    if not link:
        return sentence
    first = sentence.split(" ", 1)[0].rstrip("'s")
    if first not in NAMES:
        sentence = sentence[0].lower() + sentence[1:]
    return link + sentence


def _fmt(unit: str, v: int, things: str = "") -> str:
    if unit == "$":
        return f"${v}"
    if unit == "things":
        return f"{v} {things}"
    return f"{v} {unit}"


def _product_text(a: str, b: int, a_val: int, unit_fmt) -> str:
    """'23 × $14 = 23 × $10 + 23 × $4 = $230 + $56 = $322': place value when both factors are >= 10."""
    total = a_val * b
    if a_val < 10 or b < 10:
        return f"{a} × {unit_fmt(b)} = {unit_fmt(total)}"
    parts = [int(d) * 10**i for i, d in enumerate(reversed(str(b))) if d != "0"][::-1]
    if len(parts) == 1:
        return f"{a} × {unit_fmt(b)} = {unit_fmt(total)}"
    split = " + ".join(f"{a} × {unit_fmt(p)}" for p in parts)
    partial = " + ".join(unit_fmt(a_val * p) for p in parts)
    return f"{a} × {unit_fmt(b)} = {split} = {partial} = {unit_fmt(total)}"


def generate(rng: random.Random, difficulty: str, domain: str) -> dict:
    """Build one problem; returns the fields of a CognitiveTrainingExample (not yet verified)."""
    problem = _Problem.draw(rng, SIZES[difficulty], domain)
    n_ops = rng.randint(*problem.size["ops"])
    problem.start(n_ops)
    while len(problem.ops) < n_ops:
        kind = problem.next_kind(n_ops - len(problem.ops))
        link = problem.ph.pick("link", LINKS)
        problem.fill["item"] = rng.choice(problem.frame.get("item", ["gift"]))  # a new item for every purchase
        if not getattr(problem, f"event_{kind}")(link):
            continue  # no numbers fit this event here: draw another
        if kind in ("div", "convert"):
            break  # these change what the quantity means: they end the problem
    return problem.fields()


class _Problem:
    """A problem under construction: the running quantity (`total`, held in spec value `key`), its operations,
    the context sentences and one reasoning step per operation. Each `event_<kind>` draws its numbers, writes
    its sentence and steps and returns True, or returns False when no numbers fit (the caller draws again)."""

    def __init__(self, rng, size, domain, frame, ph, fill, things):
        self.rng, self.size, self.domain, self.frame, self.ph, self.fill = rng, size, domain, frame, ph, fill
        self.unit, self.things = frame["unit"], things
        self.values: dict[str, int] = {}
        self.constants: list[str] = []
        self.ops: list[list[str]] = []
        self.sentences: list[str] = []
        self.steps: list[ReasoningStep] = []
        self.label = ph.pick("label", frame["label"])
        self.total, self.key = 0, ""
        self.final_q = self.final_a = None

    @classmethod
    def draw(cls, rng, size, domain) -> _Problem:
        """The frame (what quantity), the people and the things of a new problem."""
        frame_index = rng.randrange(len(FRAMES[domain]))
        frame = FRAMES[domain][frame_index]
        ph = Phrases(rng, prefix=f"{domain}.{frame_index}.")
        name, subj, obj, poss = person(rng)
        other = person(rng, exclude={name})[0]
        things = rng.choice(frame.get("things", [""]))
        place = rng.choice(frame.get("places", ["shop"]))
        item = rng.choice(frame.get("item", ["gift"]))
        fill = dict(N=name, S=cap(subj), s=subj, o=obj, p=poss, A=other, things=things, place=place, item=item)
        return cls(rng, size, domain, frame, ph, fill, things)

    # --- writing
    def fq(self, v: int) -> str:
        return _fmt(self.unit, v, self.things)

    def value(self, v: int, const: bool = False) -> str:
        key = f"c{len(self.values)}" if const else f"v{len(self.values)}"
        self.values[key] = v
        if const:
            self.constants.append(key)
        return key

    def step(self, desc: str, reasoning: str, memory: str) -> None:
        description = desc.format(**self.fill)
        self.steps.append(
            ReasoningStep(step=len(self.steps) + 1, description=description, reasoning=reasoning, memory_update=memory)
        )

    def say(self, link: str, sentence: str, **values) -> None:
        self.sentences.append(_linked(link, sentence.format(**values, **self.fill)))

    def advance(self, new: int) -> bool:
        """The last operation's result is the running quantity now."""
        self.total, self.key = new, self.ops[-1][3]
        return True

    def next_result(self) -> str:
        return f"r{len(self.ops) + 1}"

    # --- the start and the choice of events
    def start(self, n_ops: int) -> None:
        """A plain amount, or n groups of m (one multiplication)."""
        frame, size, fq = self.frame, self.size, self.fq
        if frame.get("start_mul") and (n_ops >= 3 or self.rng.random() < 0.3) and self.rng.random() < 0.45:
            n, m = self.rng.randint(*size["n"]), self.rng.randint(*size["m"])
            sent, desc = self.ph.pick("start_mul", frame["start_mul"])
            self.sentences.append(sent.format(n=n, m=fq(m), **self.fill))
            self.total, self.key = n * m, self.next_result()
            self.ops.append(["mul", self.value(n), self.value(m), self.key])
            self.step(desc, _product_text(str(n), m, n, fq), f"{self.label}: {fq(self.total)}")
        else:
            self.total = self.rng.randint(*size["start"])
            self.key = self.value(self.total)
            self.sentences.append(self.ph.pick("start", frame["start"]).format(a=fq(self.total), **self.fill))

    def next_kind(self, left: int) -> str:
        frame, size = self.frame, self.size
        kinds = []
        if frame.get("add"):
            kinds.append("add")
        if frame.get("sub") and self.total > size["small"][0] + 1:
            kinds.append("sub")
        if left >= 2:
            kinds += [k for k in ("muladd", "mulsub", "pct") if frame.get(k)] * 2
        if left == 1 and frame.get("div") and self.rng.random() < 0.5:
            kinds = ["div"] * 3 + kinds
        if left == 1 and frame.get("convert") and self.rng.random() < 0.5:
            kinds = ["convert"] * 3 + kinds
        if frame.get("scale") and self.total * 4 < size["start"][1] * 10:
            kinds.append("scale")
        return self.rng.choice(kinds)

    # --- events: one or two operations each
    def event_add(self, link: str) -> bool:
        x = self.rng.randint(*self.size["small"])
        return self._plus_minus(link, "add", x, self.total + x, "+")

    def event_sub(self, link: str) -> bool:
        small = self.size["small"]
        x = self.rng.randint(small[0], min(small[1], self.total - 1))
        return self._plus_minus(link, "sub", x, self.total - x, "-")

    def _plus_minus(self, link: str, kind: str, x: int, new: int, sign: str) -> bool:
        fq = self.fq
        sent, desc = self.ph.pick(kind, self.frame[kind])
        self.say(link, sent, x=fq(x))
        self.ops.append([kind, self.key, self.value(x), self.next_result()])
        self.step(desc, f"{fq(self.total)} {sign} {fq(x)} = {fq(new)}", f"{self.label}: {fq(new)}")
        return self.advance(new)

    def event_muladd(self, link: str) -> bool:
        return self._groups(link, "muladd")

    def event_mulsub(self, link: str) -> bool:
        return self._groups(link, "mulsub")

    def _groups(self, link: str, kind: str) -> bool:
        """n groups of m added (muladd) or taken away (mulsub): a product, then a sum or difference."""
        fq, total = self.fq, self.total
        n, m = self.rng.randint(*self.size["n"]), self.rng.randint(*self.size["m"])
        if kind == "mulsub":
            while n * m >= total and (n > 2 or m > 2):
                n, m = max(2, n // 2), max(2, m // 2)
            if n * m >= total:
                return False
        sent, d1, d2 = self.ph.pick(kind, self.frame[kind])
        self.say(link, sent, n=n, m=fq(m))
        part, r1 = n * m, self.next_result()
        self.ops.append(["mul", self.value(n), self.value(m), r1])
        d1 = d1.format(n=n, **self.fill)
        self.step(d1, _product_text(str(n), m, n, fq), f"{d1}: {fq(part)}")
        new, sign, op = (total + part, "+", "add") if kind == "muladd" else (total - part, "-", "sub")
        self.ops.append([op, self.key, r1, self.next_result()])
        self.step(d2.format(n=n, **self.fill), f"{fq(total)} {sign} {fq(part)} = {fq(new)}", f"{self.label}: {fq(new)}")
        return self.advance(new)

    def event_pct(self, link: str) -> bool:
        fq, total = self.fq, self.total
        options = [p for p in (5, 10, 20, 25, 50) if total * p % 100 == 0]
        if not options:
            return False
        pc = self.rng.choice(options)
        sent, d1, d2, sign = self.ph.pick("pct", self.frame["pct"])
        self.say(link, sent, pc=pc)
        part, r1 = total * pc // 100, self.next_result()
        self.ops.append(["pct", self.key, self.value(pc), r1])
        d1 = d1.format(pc=pc, **self.fill)
        self.step(d1, f"{pc}% of {fq(total)} = {fq(total)} × {pc} ÷ 100 = {fq(part)}", f"{d1}: {fq(part)}")
        new = total + part if sign == "+" else total - part
        self.ops.append(["add" if sign == "+" else "sub", self.key, r1, self.next_result()])
        self.step(d2, f"{fq(total)} {sign} {fq(part)} = {fq(new)}", f"{self.label}: {fq(new)}")
        return self.advance(new)

    def event_scale(self, link: str) -> bool:
        fq, k = self.fq, self.rng.randint(2, 3)
        sent, desc = self.ph.pick("scale", self.frame["scale"])
        self.say(link, sent, k=k)
        new = self.total * k
        self.ops.append(["mul", self.key, self.value(k), self.next_result()])
        self.step(desc, f"{fq(self.total)} × {k} = {fq(new)}", f"{self.label}: {fq(new)}")
        return self.advance(new)

    def event_div(self, link: str) -> bool:
        """Share the quantity equally; ends the problem with the share as the answer."""
        fq, total, (lo, hi) = self.fq, self.total, self.size["k"]
        divisors = [k for k in range(lo, hi + 1) if total % k == 0 and total // k >= 2]
        if not divisors:
            return False
        k = self.rng.choice(divisors)
        sent, desc, qs, ans = self.ph.pick("div", self.frame["div"])
        self.sentences.append(sent.format(k=k, **self.fill))
        new = total // k
        self.ops.append(["div", self.key, self.value(k), self.next_result()])
        self.step(desc.format(k=k, **self.fill), f"{fq(total)} ÷ {k} = {fq(new)}", f"Each share: {fq(new)}")
        self.final_q, self.final_a = self.ph.pick("divq", qs), self.ph.pick("diva", ans)
        return self.advance(new)

    def event_convert(self, link: str) -> bool:
        """Convert to a smaller unit; ends the problem with the converted quantity as the answer."""
        new_unit, factor, unit_name = self.frame["convert"]
        new = self.total * factor
        self.ops.append(["mul", self.key, self.value(factor, const=True), self.next_result()])
        self.step(
            f"Convert {self.unit} to {unit_name}",
            f"{self.fq(self.total)} × {factor} = {new} {new_unit}",
            f"Total: {new} {new_unit}",
        )
        self.final_q, self.final_a = self.ph.pick("convq", self.frame["convert_q"]), "{ans}"
        self.unit = new_unit
        return self.advance(new)

    # --- the question
    def fields(self) -> dict:
        question = self.final_q or self.ph.pick("question", self.frame["question"])
        answer_text = (self.final_a or self.ph.pick("answer", self.frame["answer"])).format(
            ans=self.fq(self.total), **self.fill
        )
        instruction = self.ph.pick("prefix", INSTRUCTION_PREFIX) + question.format(**self.fill)
        spec = dict(
            values=self.values,
            constants=self.constants,
            ops=self.ops,
            answer=str(self.total),
            unit=self.unit,
            template=self.ph.template_id(),
        )
        return dict(
            domain=self.domain,
            context=" ".join(self.sentences),
            instruction=instruction,
            reasoning_steps=self.steps,
            final_answer=cap(answer_text),
            problem_spec=spec,
        )


# ---------------------------------------------------------------------------------------------------
# Checker: separate code path. Re-evaluates the spec, re-parses the text.
# ---------------------------------------------------------------------------------------------------
_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: arith.divide(a, b),
    "pct": lambda a, b: arith.divide(a * b, 100),
}


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:
    """Problems found in a chain_of_thought example (empty list: verified).

    strict: the steps must follow the spec's operations one to one (our generator's output); a teacher's
    solution may take another route, so then only its arithmetic and final answer are checked."""
    problems: list[str] = []
    step_chains = []
    for i, s in enumerate(example.reasoning_steps, 1):
        cs = arith.chains(f"{s.reasoning}\n{s.description}")
        for c in cs:
            if not c.ok:
                problems.append(f"step {i}: arithmetic is wrong in '{c.text}'")
        step_chains.append(cs)
    answer_numbers = arith.numbers(example.final_answer)
    spec = example.problem_spec
    if spec is None:
        return problems + _check_from_text(example, step_chains, answer_numbers)

    env = {k: arith.number(str(v)) for k, v in spec["values"].items()}
    for op, a, b, out in spec["ops"]:
        env[out] = _OPS[op](env[a], env[b])
    answer = env[spec["ops"][-1][3]] if spec["ops"] else None
    if answer is None or arith.number(str(spec["answer"])) != answer:
        problems.append(f"problem_spec answer {spec.get('answer')} does not follow from its operations ({answer})")
    if answer not in answer_numbers:
        problems.append(f"final answer does not state {arith.fmt(answer)}")
    elif len(set(answer_numbers)) > 1:
        problems.append("final answer states more than one number")
    context_numbers = set(arith.numbers(example.context))
    for key, v in spec["values"].items():
        if key not in spec.get("constants", []) and arith.number(str(v)) not in context_numbers:
            problems.append(f"given value {v} does not appear in the context")
    if strict:
        if len(example.reasoning_steps) != len(spec["ops"]):
            problems.append(f"{len(example.reasoning_steps)} reasoning steps for {len(spec['ops'])} operations")
        for i, ((_op, a, b, out), cs, s) in enumerate(zip(spec["ops"], step_chains, example.reasoning_steps), 1):
            if not cs:
                problems.append(f"step {i}: no checkable arithmetic")
                continue
            if cs[-1].result != env[out]:
                problems.append(
                    f"step {i}: result {arith.fmt(cs[-1].result)} but the operation gives {arith.fmt(env[out])}"
                )
            if not {env[a], env[b]} <= set(cs[0].operands):
                problems.append(f"step {i}: does not operate on {arith.fmt(env[a])} and {arith.fmt(env[b])}")
            mem = arith.numbers(s.memory_update)
            if mem and mem[-1] != env[out]:
                problems.append(f"step {i}: memory update says {arith.fmt(mem[-1])}, expected {arith.fmt(env[out])}")
    else:
        results = [c.result for cs in step_chains for c in cs]
        if not results or results[-1] != answer:
            problems.append("the last computed value is not the answer")
    return problems


def _check_from_text(example, step_chains, answer_numbers) -> list[str]:
    """No problem_spec: check what the text allows, then flag the rest as unverifiable."""
    problems = []
    results = [c.result for cs in step_chains for c in cs]
    if not results:
        return ["unverifiable: no problem_spec and no checkable arithmetic in the steps"]
    if results[-1] not in answer_numbers:
        problems.append(f"final answer does not state the last computed value {arith.fmt(results[-1])}")
    known = set(arith.numbers(example.context))
    for i, cs in enumerate(step_chains, 1):
        for c in cs:
            missing = [x for x in c.operands if x not in known]
            if missing:
                problems.append(f"step {i}: uses {arith.fmt(missing[0])}, which is neither given nor computed earlier")
            known.update(c.values)
    problems.append(
        "unverifiable: no problem_spec; step arithmetic, operands and the final answer were checked "
        "from the text, the reading of the problem was not"
    )
    return problems


# ------------------------------------------------------------------------------------ a model's answer
def score(output: str | None, spec: dict) -> dict[str, float]:
    """exact_match: the final number equals the answer exactly (Fraction arithmetic; "$1,234.50" is 1234.5); the
    number is the last one in the first line after the final-answer marker (after the last "=" there, parentheses
    dropped), else the output's last number (cognitive.data.answers.extract_final_fraction)."""
    return answers.score_numeric(output, spec["answer"])


def step_validity(text: str, spec: dict) -> float:
    """The step-level reward: the share of the "a op b = c" steps written that hold; 0 for an arithmetic problem
    answered without one checkable step of work."""
    share = arith.step_share(text)
    return 0.0 if share is None else share
