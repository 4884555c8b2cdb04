"""state_transition: track entities and machines through a sequence of changes.

Three kinds of problem, each in every domain:
  holdings   people each hold one object; swaps, three-way passes and hand-offs change who holds what
  locations  objects sit in places; moves, swaps of places and "move everything from X to Y"
  machine    a state machine given as rules (traffic light, oven, water phases, ATM, order status, or a
             vending machine with credit); a sequence of events is applied
Difficulty sets the number of entities and of operations. Every reasoning step applies one operation
and writes the resulting state of every entity (memory_update); state_transitions holds the same
before/after states.

problem_spec: {"kind", "initial", "ops" (or "rules"/"events"), "question": [type, target], "answer"}.
`check` replays the operations on its own and compares every step, every transition and the answer.

A model's answer: `score` is a normalised entity match (lists must match completely); `state_steps` (the opt-in
state_steps reward) is the share of the state lines of its work that match the replay after each operation.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from cognitive.data import answers, arith
from cognitive.data.generators._text import Phrases, cap, join_names, people
from cognitive.data.response import PLANNING_HEADER
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep, StateTransition

SIZES = {  # entities, operations
    "basic": dict(k=(3, 3), ops=(2, 3), events=(3, 4)),
    "intermediate": dict(k=(3, 4), ops=(4, 5), events=(5, 6)),
    "advanced": dict(k=(4, 5), ops=(6, 8), events=(7, 9)),
    "expert": dict(k=(5, 6), ops=(8, 10), events=(10, 14)),
}

OBJECTS = {
    "shopping": ["receipt", "coupon", "gift card", "umbrella", "scarf", "basket", "price tag", "tote bag", "map"],
    "cooking": ["whisk", "ladle", "spatula", "grater", "peeler", "rolling pin", "timer", "sieve", "tongs"],
    "physics": ["magnet", "prism", "lens", "spring", "stopwatch", "battery", "compass", "tuning fork", "ruler"],
    "finance": ["cheque", "ledger", "stamp", "envelope", "key card", "calculator", "invoice", "receipt book", "folder"],
}
PLACES = {
    "shopping": ["cart", "counter", "shelf", "basket", "bag", "display case"],
    "cooking": ["fridge", "pantry", "counter", "bowl", "shelf", "oven tray"],
    "physics": ["tray", "drawer", "box", "bench", "scale pan", "cabinet"],
    "finance": ["safe", "drawer", "desk", "vault", "cabinet", "mail tray"],
}
ITEMS_TO_MOVE = {
    "shopping": ["apples", "milk", "bread", "soap", "candles", "batteries", "tea", "rice"],
    "cooking": ["eggs", "butter", "milk", "flour", "sugar", "lemons", "cheese", "yeast"],
    "physics": ["red ball", "blue ball", "steel cube", "glass bead", "copper wire", "weight", "magnet", "prism"],
    "finance": ["contract", "passport", "gold coin", "bond", "cash box", "deed", "report", "seal"],
}

# machines: (name, initial states, rules {(state, event): next}, event phrases, state phrases)
MACHINES = {
    "physics": [
        (
            "traffic light",
            ["red", "green", "yellow"],
            {
                ("red", "timer"): "green",
                ("green", "timer"): "yellow",
                ("yellow", "timer"): "red",
                ("green", "button"): "yellow",
                ("red", "emergency"): "flashing",
                ("green", "emergency"): "flashing",
                ("yellow", "emergency"): "flashing",
                ("flashing", "reset"): "red",
            },
            {
                "timer": ["the timer fires", "the timer runs out"],
                "button": ["a pedestrian presses the button", "someone pushes the crossing button"],
                "emergency": ["an emergency signal arrives", "an ambulance triggers the emergency signal"],
                "reset": ["an engineer resets it", "the reset switch is pressed"],
            },
        ),
        (
            "sample of water",
            ["solid", "liquid", "gas"],
            {
                ("solid", "heat"): "liquid",
                ("liquid", "heat"): "gas",
                ("gas", "cool"): "liquid",
                ("liquid", "cool"): "solid",
                ("gas", "compress"): "liquid",
            },
            {
                "heat": ["it is heated", "the burner heats it"],
                "cool": ["it is cooled", "it is put in the freezer"],
                "compress": ["it is compressed", "a piston compresses it"],
            },
        ),
    ],
    "cooking": [
        (
            "oven",
            ["off"],
            {
                ("off", "switch on"): "preheating",
                ("preheating", "hot"): "ready",
                ("ready", "load"): "baking",
                ("baking", "timer"): "done",
                ("done", "unload"): "ready",
                ("preheating", "switch off"): "off",
                ("ready", "switch off"): "off",
                ("done", "switch off"): "off",
            },
            {
                "switch on": ["the cook switches it on", "someone turns it on"],
                "hot": ["it reaches the set temperature", "the thermostat clicks"],
                "load": ["a tray goes in", "the cook puts a dish in"],
                "timer": ["the timer rings", "the baking time is up"],
                "unload": ["the dish is taken out", "the tray comes out"],
                "switch off": ["it is switched off", "someone turns it off"],
            },
        ),
    ],
    "finance": [
        (
            "ATM",
            ["idle"],
            {
                ("idle", "card"): "card inserted",
                ("card inserted", "right PIN"): "authenticated",
                ("card inserted", "cancel"): "idle",
                ("authenticated", "withdraw"): "dispensing",
                ("dispensing", "take cash"): "authenticated",
                ("authenticated", "eject"): "idle",
                ("authenticated", "cancel"): "idle",
            },
            {
                "card": ["a customer inserts a card", "a card is inserted"],
                "right PIN": ["the correct PIN is entered", "the customer types the right PIN"],
                "cancel": ["cancel is pressed", "the customer presses cancel"],
                "withdraw": ["a withdrawal is requested", "the customer asks for cash"],
                "take cash": ["the cash is taken", "the customer takes the notes"],
                "eject": ["the card is ejected", "eject is pressed"],
            },
        ),
        (
            "payment",
            ["pending"],
            {
                ("pending", "approve"): "approved",
                ("pending", "decline"): "declined",
                ("approved", "settle"): "settled",
                ("approved", "void"): "voided",
                ("settled", "refund"): "refunded",
                ("declined", "retry"): "pending",
            },
            {
                "approve": ["the bank approves it", "approval comes through"],
                "decline": ["the bank declines it", "it is declined"],
                "settle": ["it settles overnight", "the funds are settled"],
                "void": ["the merchant voids it", "it is voided"],
                "refund": ["the customer gets a refund", "a refund is issued"],
                "retry": ["the customer retries", "it is submitted again"],
            },
        ),
    ],
    "shopping": [
        (
            "online order",
            ["cart"],
            {
                ("cart", "checkout"): "awaiting payment",
                ("awaiting payment", "pay"): "paid",
                ("paid", "ship"): "shipped",
                ("shipped", "deliver"): "delivered",
                ("awaiting payment", "cancel"): "cancelled",
                ("paid", "cancel"): "refunded",
                ("delivered", "return"): "returned",
            },
            {
                "checkout": ["the buyer checks out", "checkout is clicked"],
                "pay": ["the buyer pays", "payment goes through"],
                "ship": ["the warehouse ships it", "it is handed to the courier"],
                "deliver": ["the courier delivers it", "it arrives at the door"],
                "cancel": ["the buyer cancels", "a cancellation is requested"],
                "return": ["the buyer sends it back", "it is returned"],
            },
        ),
    ],
}
VENDING_ITEMS = [("water", 50), ("juice", 75), ("crisps", 60), ("chocolate", 80), ("gum", 30), ("coffee", 90)]
COINS = [10, 20, 50]


def _state_text(state: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in state.items())


def _changed(before: dict[str, str], after: dict[str, str]) -> tuple[str, str]:
    """The entities an operation changed, before and after (transitions show only those)."""
    keys = [k for k in after if after[k] != before[k]] or list(after)[:1]
    return _state_text({k: before[k] for k in keys}), _state_text({k: after[k] for k in keys})


def generate(rng: random.Random, difficulty: str, domain: str) -> dict:
    kind = rng.choices(
        ["holdings", "locations", "machine", "vending"], weights=[3, 3, 3, 1 if domain == "shopping" else 0]
    )[0]
    ph = Phrases(rng, prefix=f"{kind}.")
    return {"holdings": _holdings, "locations": _locations, "machine": _machine, "vending": _vending}[kind](
        rng, SIZES[difficulty], domain, ph
    )


def _finish(ph, domain, sentences, instruction, steps, transitions, answer_text, spec, memory=None):
    spec["template"] = ph.template_id()
    return dict(
        domain=domain,
        context=" ".join(sentences),
        instruction=instruction,
        reasoning_steps=steps,
        state_transitions=transitions,
        memory_usage=memory,
        final_answer=answer_text,
        problem_spec=spec,
    )


# ------------------------------------------------------------------------------------ holdings
SWAP = [
    "{a} and {b} swap what they are holding.",
    "{a} trades items with {b}.",
    "{b} and {a} exchange their things.",
    "{a} hands the {x} to {b} and takes the {y} in return.",
    "{a} gives {b} the {x}; {b} gives back the {y}.",
]
PASS3 = [
    "{a} passes the {x} to {b}, {b} passes the {y} to {c}, and {c} passes the {z} to {a}.",
    "In a quick round, {a} gives to {b}, {b} gives to {c} and {c} gives to {a}.",
]
HOLD_INTRO = ["At the start, {list}.", "{list} at first.", "Each person holds one thing: {list}."]
HOLD_ITEM = ["{p} has the {o}", "{p} holds the {o}", "{p} is holding the {o}"]


def _holdings(rng, size, domain, ph):
    k = rng.randint(*size["k"])
    names = people(rng, k)
    objs = rng.sample(OBJECTS[domain], k)
    state = dict(zip(names, objs))
    initial = dict(state)
    item_phrase = ph.pick("item", HOLD_ITEM)
    sentences = [
        cap(
            ph.pick("intro", HOLD_INTRO).format(
                list=join_names([item_phrase.format(p=p, o=o) for p, o in state.items()])
            )
        )
    ]
    steps, transitions, ops = [], [], []
    for _ in range(rng.randint(*size["ops"])):
        before = dict(state)
        if k >= 3 and rng.random() < 0.3:
            a, b, c = rng.sample(names, 3)
            text = ph.pick("pass3", PASS3).format(a=a, b=b, c=c, x=state[a], y=state[b], z=state[c])
            state[a], state[b], state[c] = before[c], before[a], before[b]
            ops.append(["pass3", a, b, c])
            why = f"{b} now has the {before[a]}, {c} the {before[b]} and {a} the {before[c]}"
        else:
            a, b = rng.sample(names, 2)
            text = ph.pick("swap", SWAP).format(a=a, b=b, x=state[a], y=state[b])
            state[a], state[b] = before[b], before[a]
            ops.append(["swap", a, b])
            why = (
                f"{a} had the {before[a]} and {b} had the {before[b]}, "
                f"so now {a} has the {before[b]} and {b} has the {before[a]}"
            )
        sentences.append(text)
        n = len(steps) + 1
        steps.append(
            ReasoningStep(
                step=n, description=f"Apply change {n}: {text}", reasoning=why, memory_update=_state_text(state)
            )
        )
        frm, to = _changed(before, state)
        transitions.append(
            StateTransition(
                step=n, from_state=frm, to_state=to, action=text, rationale="everyone else keeps their item"
            )
        )
    qtype = rng.choice(["who_has", "what_holds", "all"])
    if qtype == "who_has":
        target = rng.choice(objs)
        answer = next(p for p, o in state.items() if o == target)
        instruction = ph.pick(
            "q_who",
            [
                "Who has the {t} at the end?",
                "Who is holding the {t} after all the changes?",
                "At the end, which person holds the {t}?",
            ],
        ).format(t=target)
        answer_text = ph.pick("a_who", ["{a} has the {t}.", "{a}", "The {t} is with {a}."]).format(a=answer, t=target)
    elif qtype == "what_holds":
        target = rng.choice(names)
        answer = state[target]
        instruction = ph.pick(
            "q_what", ["What is {t} holding at the end?", "Which item does {t} have after the last change?"]
        ).format(t=target)
        answer_text = ph.pick("a_what", ["{t} has the {a}.", "The {a}.", "{t} ends up with the {a}."]).format(
            a=answer, t=target
        )
    else:
        target = None
        answer = _state_text(state)
        instruction = ph.pick(
            "q_all", ["Who holds what at the end?", "List what each person holds after all the changes."]
        )
        answer_text = answer
    spec = {"kind": "holdings", "initial": initial, "ops": ops, "question": [qtype, target], "answer": answer}
    return _finish(ph, domain, sentences, instruction, steps, transitions, answer_text, spec)


# ----------------------------------------------------------------------------------- locations
MOVE = [
    "{who} moves the {x} to the {p}.",
    "The {x} {is} put {at_p}.",
    "{who} carries the {x} over to the {p}.",
    "Next the {x} {goes} {at_p}.",
]
SWAP_PLACES = ["The {x} and the {y} trade places.", "{who} swaps the {x} and the {y}."]
EMPTY = ["{who} moves everything {at_p} to the {q}.", "All items {at_p} are transferred to the {q}."]
LOC_INTRO = ["the {x} {is} {at_p}", "the {x} {sits} {at_p}", "the {x} {starts} {at_p}"]
ON = {"shelf", "counter", "bench", "desk", "scale pan", "oven tray", "tray", "mail tray"}


def _at(place: str) -> str:
    return f"{'on' if place in ON else 'in'} the {place}"


def _verbs(thing: str) -> dict[str, str]:
    plural = thing.endswith("s")
    return dict(
        is_="are" if plural else "is",
        sits="sit" if plural else "sits",
        starts="start" if plural else "starts",
        goes="go" if plural else "goes",
        leaves="leave" if plural else "leaves",
        was="were" if plural else "was",
    )


def _locations(rng, size, domain, ph):
    k = rng.randint(*size["k"])
    items = rng.sample(ITEMS_TO_MOVE[domain], k)
    places = rng.sample(PLACES[domain], min(len(PLACES[domain]), k))
    state = {x: rng.choice(places) for x in items}
    initial = dict(state)
    who = people(rng, 1)[0]
    intro = ph.pick("intro", LOC_INTRO).replace("{is}", "{is_}")
    sentences = [cap(join_names([intro.format(x=x, at_p=_at(p), **_verbs(x)) for x, p in state.items()])) + "."]
    steps, transitions, ops = [], [], []
    for _ in range(rng.randint(*size["ops"])):
        before = dict(state)
        r = rng.random()
        occupied = sorted(set(state.values()), key=places.index)
        if r < 0.2 and len(occupied) >= 1:
            p = rng.choice(occupied)
            q = rng.choice([x for x in places if x != p])
            text = ph.pick("empty", EMPTY).format(who=who, at_p=_at(p), q=q)
            moved = [x for x in items if state[x] == p]
            for x in moved:
                state[x] = q
            ops.append(["empty", p, q])
            were = "were" if len(moved) > 1 else _verbs(moved[0])["was"]
            why = f"{join_names(['the ' + x for x in moved])} {were} {_at(p)}; now {_at(q)}"
        elif r < 0.4 and len({state[x] for x in items}) > 1:
            x, y = rng.sample(items, 2)
            while state[x] == state[y]:
                x, y = rng.sample(items, 2)
            text = ph.pick("swapp", SWAP_PLACES).format(who=who, x=x, y=y)
            state[x], state[y] = before[y], before[x]
            ops.append(["swap", x, y])
            why = f"the {x} {_verbs(x)['was']} {_at(before[x])} and the {y} {_at(before[y])}; they exchange places"
        else:
            x = rng.choice(items)
            p = rng.choice([q for q in places if q != state[x]])
            v = _verbs(x)
            text = ph.pick("move", MOVE).replace("{is}", "{is_}").format(who=who, x=x, p=p, at_p=_at(p), **v)
            state[x] = p
            ops.append(["move", x, p])
            why = f"the {x} {v['leaves']} the {before[x]} and {v['is_']} now {_at(p)}"
        sentences.append(text)
        n = len(steps) + 1
        steps.append(
            ReasoningStep(
                step=n, description=f"Apply change {n}: {text}", reasoning=why, memory_update=_state_text(state)
            )
        )
        frm, to = _changed(before, state)
        transitions.append(
            StateTransition(step=n, from_state=frm, to_state=to, action=text, rationale="other items stay put")
        )
    qtype = rng.choice(["where", "where", "contents"])
    if qtype == "where":
        target = rng.choice(items)
        answer = state[target]
        v = _verbs(target)
        instruction = ph.pick(
            "q_where",
            [
                "Where {is_} the {t} at the end?",
                "In which place {does} the {t} end up?",
                "After all the moves, where {is_} the {t}?",
            ],
        ).format(t=target, does="do" if v["is_"] == "are" else "does", **v)
        answer_text = ph.pick("a_where", ["The {t} {is_} {at}.", "{At}.", "{A}"]).format(
            t=target, at=_at(answer), At=cap(_at(answer)), A=cap(answer), **v
        )
    else:
        occupied = sorted(set(state.values()), key=places.index)
        target = rng.choice(occupied if rng.random() < 0.8 else places)
        inside = [x for x in items if state[x] == target]
        answer = ", ".join(inside) if inside else "nothing"
        instruction = ph.pick(
            "q_contents", ["What is {at} at the end?", "Which items are {at} after the last move?"]
        ).format(at=_at(target))
        answer_text = f"{cap(_at(target))}: {answer}."
    spec = {"kind": "locations", "initial": initial, "ops": ops, "question": [qtype, target], "answer": answer}
    return _finish(ph, domain, sentences, instruction, steps, transitions, answer_text, spec)


# ------------------------------------------------------------------------------------- machines
RULE = [
    "When it is {s} and {e}, it becomes {t}.",
    "From {s}, if {e}, it switches to {t}.",
    "{S} + {e} -> {t}.",
    "If {e} while it is {s}, it turns {t}.",
    "{S}: when {e}, go to {t}.",
    "A {s} one becomes {t} when {e}.",
]


def _machine(rng, size, domain, ph):
    name, starts, rules, events = rng.choice(MACHINES[domain])
    state = rng.choice(starts)
    initial = state
    order = list(rules.items())
    rng.shuffle(order)
    phrase = {e: rng.choice(v) for e, v in events.items()}  # one wording per event inside a problem
    rule_lines = [cap(ph.pick("rule", RULE).format(s=s, S=cap(s), e=phrase[e], t=t)) for (s, e), t in order]
    names = sorted(events)
    seq = []
    cur = state
    for _ in range(rng.randint(*size["events"])):
        applicable = [e for e in names if (cur, e) in rules]
        e = rng.choice(applicable) if applicable and rng.random() < 0.85 else rng.choice(names)
        seq.append(e)
        cur = rules.get((cur, e), cur)
    article = "an" if name[0] in "aeiouAEIOU" else "a"
    intro = ph.pick(
        "intro", ["{A} {m} follows these rules.", "Here is how {a} {m} behaves.", "The rules of {a} {m}:"]
    ).format(m=name, a=article, A=cap(article))
    sentences = [
        intro,
        *rule_lines,
        "Any other event leaves it unchanged.",
        ph.pick("start", ["It starts {s}.", "At first it is {s}.", "Its state is {s} at the start."]).format(s=state),
        ph.pick("events", ["Then, in order: {ev}.", "These events happen one after another: {ev}."]).format(
            ev="; ".join(phrase[e] for e in seq)
        ),
    ]
    steps, transitions = [], []
    for n, e in enumerate(seq, 1):
        nxt = rules.get((state, e))
        if nxt is None:
            why, nxt = f"no rule for {phrase[e]} while {state}, so it stays {state}", state
        else:
            why = f"the rule for {state} when {phrase[e]} gives {nxt}"
        steps.append(
            ReasoningStep(step=n, description=f"Event {n}: {phrase[e]}", reasoning=why, memory_update=f"state: {nxt}")
        )
        transitions.append(StateTransition(step=n, from_state=state, to_state=nxt, action=phrase[e], rationale=why))
        state = nxt
    instruction = ph.pick(
        "q",
        [
            "What state is the {m} in after the last event?",
            "Give the final state of the {m}.",
            "After all the events, what is the {m}'s state?",
        ],
    ).format(m=name)
    answer_text = ph.pick("a", ["The {m} is {s}.", "{S}", "It ends up {s}."]).format(m=name, s=state, S=cap(state))
    spec = {
        "kind": "machine",
        "initial": initial,
        "rules": [[s, e, t] for (s, e), t in order],
        "events": seq,
        "question": ["final_state", name],
        "answer": state,
    }
    return _finish(ph, domain, sentences, instruction, steps, transitions, answer_text, spec)


def _vending(rng, size, domain, ph):
    menu = rng.sample(VENDING_ITEMS, 3)
    prices = dict(menu)
    credit, dispensed = 0, []
    seq = []
    for _ in range(rng.randint(*size["events"])):
        r = rng.random()
        if r < 0.55:
            seq.append(["coin", rng.choice(COINS)])
        elif r < 0.9:
            seq.append(["select", rng.choice(menu)[0]])
        else:
            seq.append(["refund"])
    sentences = [
        ph.pick("intro", ["A vending machine sells {m}.", "The vending machine offers {m}."]).format(
            m=join_names([f"{i} for {p} cents" for i, p in menu])
        ),
        "Coins add to the credit. Choosing an item dispenses it only if the credit covers the price, "
        "and the price is then taken from the credit; otherwise nothing happens. Refund returns all the credit.",
        "The credit starts at 0.",
        ph.pick("events", ["A customer does this: {ev}.", "In order: {ev}."]).format(
            ev="; ".join(_vend_phrase(e) for e in seq)
        ),
    ]
    steps, transitions = [], []
    for n, e in enumerate(seq, 1):
        before = f"credit {credit}"
        if e[0] == "coin":
            why = f"{credit} + {e[1]} = {credit + e[1]} cents"
            credit += e[1]
        elif e[0] == "select" and credit >= prices[e[1]]:
            price = prices[e[1]]
            why = f"{credit} ≥ {price}, so the {e[1]} is dispensed: {credit} - {price} = {credit - price} cents"
            credit -= prices[e[1]]
            dispensed.append(e[1])
        elif e[0] == "select":
            why = f"{credit} < {prices[e[1]]}, so nothing is dispensed and the credit stays {credit}"
        else:
            why = f"the {credit} cents are returned, credit 0"
            credit = 0
        memory = f"credit: {credit}; dispensed: {', '.join(dispensed) or 'nothing'}"
        steps.append(
            ReasoningStep(step=n, description=f"Event {n}: {_vend_phrase(e)}", reasoning=why, memory_update=memory)
        )
        transitions.append(
            StateTransition(
                step=n, from_state=before, to_state=f"credit {credit}", action=_vend_phrase(e), rationale=why
            )
        )
    answer = f"credit: {credit}; dispensed: {', '.join(dispensed) or 'nothing'}"
    instruction = ph.pick(
        "q",
        [
            "What is the credit at the end, and which items came out?",
            "Give the final credit and every item dispensed, in order.",
        ],
    )
    spec = {"kind": "vending", "prices": prices, "events": seq, "question": ["final", None], "answer": answer}
    return _finish(ph, domain, sentences, instruction, steps, transitions, answer, spec)


def _vend_phrase(e) -> str:
    if e[0] == "coin":
        return f"insert {e[1]} cents"
    return f"choose {e[1]}" if e[0] == "select" else "press refund"


# --------------------------------------------------------------------------------------- checker
def _replay(spec) -> tuple[list, object]:
    """Independent replay: the state after each operation, and the answer to the question."""
    kind = spec["kind"]
    if kind == "vending":
        credit, out, states = 0, [], []
        for e in spec["events"]:
            if e[0] == "coin":
                credit = credit + e[1]
            elif e[0] == "select":
                price = spec["prices"][e[1]]
                if price <= credit:
                    credit, out = credit - price, out + [e[1]]
            elif e[0] == "refund":
                credit = 0
            states.append(("credit", credit, tuple(out)))
        final = f"credit: {credit}; dispensed: {', '.join(out) or 'nothing'}"
        return states, final
    if kind == "machine":
        table = {(s, e): t for s, e, t in spec["rules"]}
        cur, states = spec["initial"], []
        for e in spec["events"]:
            cur = table.get((cur, e), cur)
            states.append(cur)
        return states, cur
    cur, states = dict(spec["initial"]), []
    for op in spec["ops"]:
        if op[0] == "swap":
            cur[op[1]], cur[op[2]] = cur[op[2]], cur[op[1]]
        elif op[0] == "pass3":
            a, b, c = op[1:]
            cur[a], cur[b], cur[c] = cur[c], cur[a], cur[b]
        elif op[0] == "move":
            cur[op[1]] = op[2]
        elif op[0] == "empty":
            cur = {x: (op[2] if p == op[1] else p) for x, p in cur.items()}
        else:
            raise ValueError(f"unknown operation {op[0]}")
        states.append(dict(cur))
    qtype, target = spec["question"]
    if qtype == "who_has":
        answer = next(p for p, o in cur.items() if o == target)
    elif qtype in ("what_holds", "where"):
        answer = cur[target]
    elif qtype == "contents":
        answer = ", ".join(x for x in cur if cur[x] == target) or "nothing"
    else:
        answer = ", ".join(f"{k}: {v}" for k, v in cur.items())
    return states, answer


def replay_states(spec) -> list[dict[str, str]]:
    """What memory holds at the start and after each operation, as the records' memory lines write it ({entity: item
    or place}, {"state": s} for a machine, {"credit": "n"} for a vending machine): what a completion's state lines
    are checked against (cognitive.rl.rewards.state_step_validity)."""
    states, _ = _replay(spec)
    if spec["kind"] == "machine":
        return [{"state": s} for s in [spec["initial"], *states]]
    if spec["kind"] == "vending":
        return [{"credit": "0"}] + [{"credit": str(s[1])} for s in states]
    return [dict(spec["initial"]), *states]


def _says(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", text.lower()) is not None


def _candidates(spec) -> set[str]:
    """The other possible answers of a single-valued question (another person, place or state)."""
    qtype = spec["question"][0]
    if spec["kind"] == "machine":
        return {s for rule in spec["rules"] for s in (rule[0], rule[2])}
    if qtype == "who_has":
        return set(spec["initial"])
    if qtype == "what_holds":
        return set(spec["initial"].values())
    if qtype == "where":
        return set(spec["initial"].values()) | {op[-1] for op in spec["ops"] if op[0] in ("move", "empty")}
    return set()


def _parse_state(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(", "):
        key, sep, value = part.partition(": ")
        if not sep:
            raise ValueError(f"cannot read state '{text}'")
        out[key.strip()] = value.strip()
    return out


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:
    spec = example.problem_spec
    if spec is None:
        return ["unverifiable: no problem_spec; a state sequence cannot be replayed from free text"]
    problems = []
    states, answer = _replay(spec)
    if str(answer) != spec["answer"]:
        problems.append(f"problem_spec answer '{spec['answer']}' but the replay gives '{answer}'")
    kind = spec["kind"]
    if not _says(example.final_answer, str(answer)):
        problems.append(f"final answer does not state '{answer}'")
    else:
        wrong = [c for c in _candidates(spec) if c != answer and _says(example.final_answer, c)]
        if wrong:
            problems.append(f"final answer also names '{wrong[0]}'")
    mentioned = list(spec["initial"]) if kind in ("holdings", "locations") else []
    for name in mentioned:
        if name not in example.context:
            problems.append(f"'{name}' does not appear in the context")
    if not strict:
        return problems
    if len(example.reasoning_steps) != len(states):
        problems.append(f"{len(example.reasoning_steps)} steps for {len(states)} operations")
    transitions = example.state_transitions or []
    if len(transitions) != len(states):
        problems.append(f"{len(transitions)} state transitions for {len(states)} operations")
    prev = spec.get("initial")
    for i, st in enumerate(states):
        step = example.reasoning_steps[i] if i < len(example.reasoning_steps) else None
        tr = transitions[i] if i < len(transitions) else None
        if kind in ("holdings", "locations"):
            if step and _parse_state(step.memory_update) != st:
                problems.append(f"step {i + 1}: state '{step.memory_update}' but the replay gives '{_state_text(st)}'")
            if tr:
                frm, to = _parse_state(tr.from_state), _parse_state(tr.to_state)
                if any(prev.get(k) != v for k, v in frm.items()) or any(st.get(k) != v for k, v in to.items()):
                    problems.append(f"transition {i + 1}: states do not match the replay")
                elif any(prev[k] != st[k] and k not in to for k in st):
                    problems.append(f"transition {i + 1}: does not show every entity that changed")
        elif kind == "machine":
            if step and step.memory_update != f"state: {st}":
                problems.append(f"step {i + 1}: '{step.memory_update}' but the replay gives state {st}")
            if tr and (tr.to_state != st or tr.from_state != prev):
                problems.append(f"transition {i + 1}: {tr.from_state} -> {tr.to_state}, replay gives {prev} -> {st}")
        else:
            expected = f"credit: {st[1]}; dispensed: {', '.join(st[2]) or 'nothing'}"
            if step and step.memory_update != expected:
                problems.append(f"step {i + 1}: '{step.memory_update}' but the replay gives '{expected}'")
            if tr and tr.to_state != f"credit {st[1]}":
                problems.append(f"transition {i + 1}: '{tr.to_state}' but the replay gives credit {st[1]}")
        prev = st
    if kind == "vending":
        for i, s in enumerate(example.reasoning_steps, 1):
            for c in arith.chains(s.reasoning):
                if not c.ok:
                    problems.append(f"step {i}: arithmetic is wrong in '{c.text}'")
    return problems


# ------------------------------------------------------------------------------------ a model's answer
def _split_pairs(text: str, sep: str = ", ") -> dict[str, str]:
    return dict(part.split(": ", 1) for part in text.split(sep) if ": " in part)


def score(output: str | None, spec: dict) -> dict[str, float]:
    """Entity and state tracking: normalised entity match, the right person / object / place / state and no other
    candidate; lists (who holds what, what is where, vending credit and items) must match completely."""
    kind, (qtype, _target) = spec["kind"], spec["question"]
    gold = spec["answer"]
    if kind == "vending":
        return _score_vending(answers.entity_region(output, multi_line=True), spec)
    if kind == "machine":
        states = {spec["initial"]} | {s for rule in spec["rules"] for s in (rule[0], rule[2])}
        return answers.single_entity(answers.entity_region(output, False), gold, states)
    initial = spec["initial"]
    if qtype == "who_has":
        return answers.single_entity(answers.entity_region(output, False), gold, initial.keys())
    if qtype == "what_holds":
        return answers.single_entity(answers.entity_region(output, False), gold, initial.values())
    if qtype == "where":
        places = set(initial.values()) | {op[-1] for op in spec["ops"] if op[0] in ("move", "empty")}
        return answers.single_entity(answers.entity_region(output, False), gold, places)
    if qtype == "contents":
        region = answers.entity_region(output, multi_line=True)
        named = answers.named(region, initial.keys())
        want = [] if gold == "nothing" else gold.split(", ")
        empty_said = bool(re.search(r"\b(nothing|none|empty|no items?)\b", region.lower()))
        right = sorted(named) == sorted(want) and (bool(want) or empty_said)
        return {"exact_match": float(right), "answered": float(bool(named) or empty_said)}
    # qtype == "all": who holds what, every person
    return _score_assignment(
        answers.entity_region(output, multi_line=True), _split_pairs(gold), initial.keys(), initial.values()
    )


def _score_assignment(region: str, gold: dict[str, str], persons, things) -> dict[str, float]:
    """Pairs (person, thing) read clause by clause ('Ana: whisk, Bo: ladle', 'Ana has the whisk and Bo the
    ladle', 'the whisk is with Ana'); right iff every person gets exactly the gold thing."""
    said: dict[str, set[str]] = {}
    for clause in re.split(r"[;,\n]|\band\b|\.(?:\s|$)", region):
        who, what = answers.named(clause, persons), answers.named(clause, things)
        if len(who) == 1 and len(what) == 1:
            said.setdefault(who[0], set()).add(what[0])
    right = all(said.get(p) == {t} for p, t in gold.items())
    return {"exact_match": float(right), "answered": float(bool(said))}


def _score_vending(region: str, spec: dict) -> dict[str, float]:
    gold_credit, _, gold_items = spec["answer"].partition("; dispensed: ")
    gold_credit = int(gold_credit.split(": ")[1])
    want = Counter() if gold_items == "nothing" else Counter(gold_items.split(", "))
    m = re.search(r"credit\D{0,20}?(\d+)", region, re.IGNORECASE)
    numbers = answers.read_numbers(region)
    credit = arith.read_number(m.group(1)) if m else (numbers[0] if len(numbers) == 1 else None)
    items = Counter(c for _, c in answers.mentions(region, spec["prices"].keys()))
    right = credit is not None and credit == gold_credit and items == want
    return {"exact_match": float(right), "answered": float(credit is not None)}


# The work of a state-tracking completion ends at its first final-answer line (or the guide layout's planning steps,
# which repeat the changes as transitions); a state line is "<entity>: <value>" pairs, split at "," and ";", the
# value after an arrow where a step shows its arithmetic first ("0 + 50 = 50 → credit: 50").
_WORK_END = re.compile(r"(?im)^[^\w\n]*final answer|" + re.escape(PLANNING_HEADER))  # [^\w\n]: linear on blank lines
_ARROW = re.compile(r"→|->")
_ARTICLE = re.compile(r"^(?:(?:in|at|on|into) )?(?:the |a |an )?")


def _norm(value: str) -> str:
    return _ARTICLE.sub("", value.strip().strip(".*").strip().lower())


def _line_state(line: str, kind: str, entities: set[str], machine_states: set[str]) -> dict[str, str]:
    """The {entity: value} pairs a line writes about the problem's entities (others are ignored)."""
    pairs = {}
    for part in re.split(r"[;,]", _ARROW.split(line)[-1]):
        tokens = part.split(":")
        if len(tokens) < 2:
            continue
        key, value = _norm(re.sub(r"^[^A-Za-z]+", "", tokens[-2])), _norm(tokens[-1])
        if key in entities:
            pairs[key] = value
        elif kind == "machine" and (key == "state" or value in machine_states):
            pairs["state"] = value
        elif kind == "vending" and key == "credit" and (amount := re.search(r"\d+", value)):
            pairs["credit"] = amount.group()
    return pairs


def state_steps(text: str, spec: dict) -> float:
    """The share of a state-tracking completion's state lines that match the replay (replay_states): the i-th line
    that names the problem's entities (people, items, the machine's state, the credit) against the state after
    operation i, every entity it names right. Lines beyond the operations (a loop) count against it, missing ones
    leave steps unearned; a first line restating the start is not counted. 0 without a state line. (The opt-in
    state_steps reward of cognitive/rl/rewards.py.)"""
    expected = [{k.lower(): _norm(v) for k, v in state.items()} for state in replay_states(spec)]
    kind = spec["kind"]
    entities = {k.lower() for k in spec["initial"]} if kind in ("holdings", "locations") else set()
    machine_states = {_norm(s) for rule in spec.get("rules", []) for s in (rule[0], rule[2])}
    work = _WORK_END.split(text, maxsplit=1)[0]
    lines = [s for s in (_line_state(line, kind, entities, machine_states) for line in work.splitlines()) if s]
    start, after = expected[0], expected[1:]
    if len(lines) == len(after) + 1 and all(start.get(k) == v for k, v in lines[0].items()):
        lines = lines[1:]
    if not lines:
        return 0.0
    valid = sum(all(after[i].get(k) == v for k, v in got.items()) for i, got in enumerate(lines[: len(after)]))
    return valid / max(len(lines), len(after))
