"""memory_recall: long stories of facts with updates and distractors; questions about earlier facts.

A story is a timed sequence of sentences about people, objects and places: where everyone starts,
moves ("At 9:40 Ana walks to the pantry."), objects picked up, handed over and put down, and
distractors that change nothing ("Bo checks his phone."). The question asks where someone is now,
who has an object now, where someone was at a given time, or where someone was at the start.
Difficulty sets the number of sentences (about 7 to 40) and how far back the deciding fact lies.

Each reasoning step quotes one sentence that changes the asked-about entity and records its state
after it (memory_update "Ana: pantry"); memory_usage lists the live facts at the end of the story.

problem_spec: {"events": [{"t", "kind", ..., "text"}], "question": [type, entity, time], "answer"}.
`check` replays the events, recomputes the answer, and checks every quoted sentence and state.

A model's answer: `score` is a normalised entity match (the asked room or person, and no other candidate).
"""

from __future__ import annotations

import random
import re

from cognitive.data import answers
from cognitive.data.generators._text import Phrases, clock, join_names, people
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep

# sentences, people, objects, distractor share, minimum distance of the deciding fact (share of story)
SIZES = {
    "basic": dict(events=(6, 8), people=2, objects=1, noise=0.2, distance=0.0),
    "intermediate": dict(events=(12, 16), people=3, objects=2, noise=0.3, distance=0.3),
    "advanced": dict(events=(22, 28), people=4, objects=3, noise=0.35, distance=0.5),
    "expert": dict(events=(34, 42), people=5, objects=4, noise=0.4, distance=0.6),
}
SETTINGS = {
    "cooking": (
        ["kitchen", "pantry", "dining room", "garden", "cellar", "larder"],
        ["ladle", "recipe book", "tray", "apron", "bread knife", "jar of honey"],
        [
            "The oven timer beeps.",
            "Steam fogs up the window.",
            "A pot starts to simmer.",
            "{P} tastes the sauce.",
            "{P} hums a tune.",
        ],
    ),
    "shopping": (
        ["bakery", "bookshop", "food court", "pharmacy", "shoe shop", "car park"],
        ["receipt", "gift bag", "umbrella", "loyalty card", "shopping list", "coupon book"],
        [
            "A song plays over the speakers.",
            "The mall gets busier.",
            "{P} checks a price tag.",
            "{P} looks at a window display.",
        ],
    ),
    "physics": (
        ["optics lab", "workshop", "library", "clean room", "storeroom", "lecture hall"],
        ["stopwatch", "laser pointer", "notebook", "magnet", "voltmeter", "glass prism"],
        [
            "A fan hums in the corner.",
            "The lights flicker once.",
            "{P} writes an equation on the board.",
            "{P} checks a reading.",
        ],
    ),
    "finance": (
        ["trading room", "meeting room", "archive", "reception area", "vault", "cafeteria"],
        ["ledger", "contract", "key card", "laptop", "stamp", "report"],
        ["A phone rings somewhere.", "The printer jams and is fixed.", "{P} reads the news.", "{P} answers an email."],
    ),
}
MOVE = [
    "{t}, {p} walks to the {x}.",
    "{p} goes to the {x} at {t0}.",
    "{t}, {p} moves to the {x}.",
    "At {t0} {p} heads over to the {x}.",
]
TAKE = ["{t}, {p} picks up the {o}.", "{p} takes the {o} at {t0}.", "{t}, {p} grabs the {o}."]
GIVE = ["{t}, {p} gives the {o} to {q}.", "{p} hands the {o} to {q} at {t0}.", "{t}, {p} passes the {o} to {q}."]
PUT = [
    "{t}, {p} leaves the {o} in the {x}.",
    "{p} puts the {o} down in the {x} at {t0}.",
    "{t}, {p} sets the {o} down in the {x}.",
]
NOISE = ["{t}: {n}", "{n}"]


QUESTIONS = {  # question type -> (phrase key, variants)
    "where_now": (
        "q_now",
        ["Where is {x} at the end of the story?", "In which room is {x} now?", "Where did {x} end up?"],
    ),
    "holder_now": (
        "q_holder",
        [
            "Where is the {x} now: who has it, or in which room is it?",
            "At the end, who has the {x}, or where was it left?",
        ],
    ),
    "where_at": ("q_at", ["Where was {x} at {time}?", "At {time}, which room was {x} in?"]),
    "where_first": ("q_first", ["Where was {x} at the start of the story?", "In which room did {x} begin?"]),
}


def generate(rng: random.Random, difficulty: str, domain: str) -> dict:
    size = SIZES[difficulty]
    places, objects, noise = SETTINGS[domain]
    ph = Phrases(rng, prefix=f"{domain}.")
    names = people(rng, size["people"])
    objs = rng.sample(objects, size["objects"])
    story = _Story(rng, ph, names, objs, places, noise)
    n_events = rng.randint(*size["events"])
    while len(story.events) < n_events:
        story.next_event(size["noise"])
    events = story.events

    question, relevant, answer = _pick_question(rng, events, names, objs, size["distance"])
    qtype, target, qtime = question
    # every variant list is drawn from, in this order, whatever the question (the phrase statistics count them)
    variants = {q: ph.pick(key, forms) for q, (key, forms) in QUESTIONS.items()}
    instruction = variants[qtype].format(x=target, time=clock(qtime) if qtime is not None else "")
    lead = ph.pick("lead", ["Read the story and remember the details.", "Here is a log of what happened.", ""])
    context = lead + " " + " ".join(e["text"] for e in events)
    label = target if qtype != "holder_now" else f"the {target}"
    steps = _recall_steps(events, relevant, question, label, answer)
    final_answer = ph.pick("answer", ["{x}: {a}.", "The answer is {a}.", "{a}"]).format(
        x=label[0].upper() + label[1:], a=_answer_phrase(answer, names)
    )
    loc, where = story.loc, story.where
    live = [f"{p} is in the {loc[p]}" for p in names] + [
        f"the {o} is {'with ' + where[o] if where[o] in names else 'in the ' + where[o]}" for o in objs
    ]
    spec = {"events": events, "question": [qtype, target, qtime], "answer": answer, "template": ph.template_id()}
    return dict(
        domain=domain,
        context=context.strip(),
        instruction=instruction,
        reasoning_steps=steps,
        memory_usage=live,
        final_answer=final_answer,
        problem_spec=spec,
    )


class _Story:
    """The story as it is told: where everyone and everything is (`loc`: person -> room, `where`: object -> room or
    person), the clock, and the events so far (the first one states the start)."""

    def __init__(self, rng, ph: Phrases, names, objs, places, noise):
        self.rng, self.ph, self.names, self.objs, self.places, self.noise = rng, ph, names, objs, places, noise
        self.loc = {p: rng.choice(places) for p in names}
        self.where = {o: rng.choice(places) for o in objs}
        self.time = rng.randrange(8 * 60, 10 * 60, 5)
        facts = [f"{p} is in the {self.loc[p]}" for p in names] + [f"the {o} is in the {self.where[o]}" for o in objs]
        start_text = ph.pick("start", ["At {t0}, {facts}.", "The story starts at {t0}: {facts}."]).format(
            t0=clock(self.time), facts=join_names(facts)
        )
        self.events = [
            {"t": self.time, "kind": "start", "people": dict(self.loc), "objects": dict(self.where), "text": start_text}
        ]

    def next_event(self, noise_share: float) -> None:
        """Someone moves, takes, gives or puts down an object, or nothing that matters happens (noise)."""
        rng, ph, loc, where = self.rng, self.ph, self.loc, self.where
        self.time += rng.randrange(5, 25, 5)
        t, t0 = f"At {clock(self.time)}", clock(self.time)
        p = rng.choice(self.names)
        here_objs = [o for o in self.objs if where[o] == loc[p]]
        held = [o for o in self.objs if where[o] == p]
        mates = [q for q in self.names if q != p and loc[q] == loc[p]]
        options = ["move", "move"] + ["take"] * bool(here_objs) + ["give"] * bool(held and mates) + ["put"] * bool(held)
        kind = "noise" if rng.random() < noise_share else rng.choice(options)
        if kind == "move":
            x = rng.choice([y for y in self.places if y != loc[p]])
            loc[p] = x
            ev = {"kind": "move", "who": p, "to": x, "text": ph.pick("move", MOVE).format(t=t, t0=t0, p=p, x=x)}
        elif kind == "take":
            o = rng.choice(here_objs)
            where[o] = p
            ev = {"kind": "take", "who": p, "object": o, "text": ph.pick("take", TAKE).format(t=t, t0=t0, p=p, o=o)}
        elif kind == "give":
            o, q = rng.choice(held), rng.choice(mates)
            where[o] = q
            text = ph.pick("give", GIVE).format(t=t, t0=t0, p=p, o=o, q=q)
            ev = {"kind": "give", "who": p, "to": q, "object": o, "text": text}
        elif kind == "put":
            o = rng.choice(held)
            where[o] = loc[p]
            text = ph.pick("put", PUT).format(t=t, t0=t0, p=p, o=o, x=loc[p])
            ev = {"kind": "put", "who": p, "object": o, "to": loc[p], "text": text}
        else:
            text = rng.choice(self.noise).format(P=p)
            ev = {"kind": "noise", "text": ph.pick("noise", NOISE).format(t=t, n=text)}
        ev["t"] = self.time
        ev["text"] = ev["text"][0].upper() + ev["text"][1:]
        self.events.append(ev)


def _recall_steps(events, relevant: list[int], question, label: str, answer: str) -> list[ReasoningStep]:
    """One step per event that matters to the question (what it says, the value after it), then the answer."""
    qtype, target, qtime = question
    steps: list[ReasoningStep] = []
    for i in relevant:
        steps.append(
            ReasoningStep(
                step=len(steps) + 1,
                description=f"Recall what happened to {label} at {clock(events[i]['t'])}",
                reasoning=f'The story says: "{events[i]["text"]}"',
                memory_update=f"{target}: {_value_after(events[: i + 1], target)}",
            )
        )
    if qtype == "where_at":
        last = events[relevant[-1]]["t"]
        why = f"{clock(qtime)} is after {clock(last)}, and {target} does not move again before {clock(qtime)}."
    elif qtype == "where_first":
        why = f"The first sentence gives where {target} starts; later moves do not change that."
    else:
        why = f"No later sentence changes where {label} is."
    steps.append(
        ReasoningStep(
            step=len(steps) + 1, description="Give the answer", reasoning=why, memory_update=f"answer: {answer}"
        )
    )
    return steps


def _answer_phrase(answer: str, names: list[str]) -> str:
    return answer if answer in names else f"the {answer}"


def _value_after(events: list[dict], entity: str) -> str:
    """Where a person is, or where / with whom an object is, after these events (generator side)."""
    start = events[0]
    value = start["people"].get(entity) or start["objects"].get(entity)
    for e in events[1:]:
        if e.get("who") == entity and e["kind"] == "move":
            value = e["to"]
        elif e.get("object") == entity:
            value = e["who"] if e["kind"] == "take" else e["to"]
    return value


def _pick_question(rng, events, names, objs, distance):
    """A question whose deciding fact lies at least `distance` of the story before its end, if one exists."""
    n = len(events)
    candidates = []
    for p in names:
        moves = [i for i, e in enumerate(events) if e["kind"] == "move" and e["who"] == p]
        candidates.append((("where_now", p, None), [0] + moves, _value_after(events, p)))
        candidates.append((("where_first", p, None), [0], events[0]["people"][p]))
        for k, i in enumerate(moves):
            nxt = moves[k + 1] if k + 1 < len(moves) else n
            end_t = events[nxt]["t"] if nxt < n else events[-1]["t"] + 30
            if end_t - events[i]["t"] > 5:
                qt = rng.randrange(events[i]["t"] + 1, end_t)
                if all(e["t"] != qt for e in events):
                    candidates.append((("where_at", p, qt), [0] + moves[: k + 1], events[i]["to"]))
    for o in objs:
        touched = [i for i, e in enumerate(events) if e.get("object") == o]
        candidates.append((("holder_now", o, None), [0] + touched, _value_after(events, o)))
    far = [
        c
        for c in candidates
        if (n - 1 - c[1][-1]) >= distance * (n - 1) and (distance == 0 or c[0][0] != "where_first")
    ]
    if not far:
        far = sorted(candidates, key=lambda c: c[1][-1])[:3]
    kinds = sorted({c[0][0] for c in far})
    kind = rng.choice(kinds)  # question types equally likely, then a target of that type
    return rng.choice([c for c in far if c[0][0] == kind])


# --------------------------------------------------------------------------------------- checker
def _replay(events: list[dict]) -> list[dict[str, str]]:
    """Independent replay: the full state (people and objects) after every event."""
    state = {**events[0]["people"], **events[0]["objects"]}
    out = [dict(state)]
    for e in events[1:]:
        kind = e["kind"]
        if kind == "move":
            state[e["who"]] = e["to"]
        elif kind == "take":
            state[e["object"]] = e["who"]
        elif kind == "give":
            state[e["object"]] = e["to"]
        elif kind == "put":
            state[e["object"]] = e["to"]
        elif kind != "noise":
            raise ValueError(f"unknown event kind {kind}")
        out.append(dict(state))
    return out


_QUOTE = re.compile(r'"([^"]+)"')


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:
    spec = example.problem_spec
    if spec is None:
        return ["unverifiable: no problem_spec; the story's facts cannot be replayed from free text"]
    problems = []
    events = spec["events"]
    states = _replay(events)
    qtype, target, qtime = spec["question"]
    if qtype == "where_at":
        idx = max(i for i, e in enumerate(events) if e["t"] <= qtime)
    elif qtype == "where_first":
        idx = 0
    else:
        idx = len(events) - 1
    answer = states[idx][target]
    if answer != spec["answer"]:
        problems.append(f"problem_spec answer '{spec['answer']}' but the replay gives '{answer}'")
    said = example.final_answer.lower()
    if not re.search(rf"(?<!\w){re.escape(answer.lower())}(?!\w)", said):
        problems.append(f"final answer does not state '{answer}'")
    others = {v for st in states for v in st.values()} - {answer}
    wrong = [o for o in others if o != target and re.search(rf"(?<!\w){re.escape(o.lower())}(?!\w)", said)]
    if wrong:
        problems.append(f"final answer also names '{wrong[0]}'")
    for e in events:
        if e["text"] not in example.context:
            problems.append(f"sentence '{e['text'][:40]}' is not in the context")
            break
    texts = {e["text"]: i for i, e in enumerate(events)}
    quoted = []
    for i, step in enumerate(example.reasoning_steps, 1):
        for q in _QUOTE.findall(step.reasoning):
            if q not in texts:
                problems.append(f"step {i}: quotes a sentence that is not in the story")
                continue
            j = texts[q]
            quoted.append(j)
            m = re.fullmatch(r"(.+?): (.+)", step.memory_update)
            if m and m.group(1) in states[j] and states[j][m.group(1)] != m.group(2):
                problems.append(
                    f"step {i}: '{step.memory_update}' but after that sentence it is '{states[j][m.group(1)]}'"
                )
    if strict:
        relevant = [0] + [j for j in range(1, idx + 1) if states[j][target] != states[j - 1][target]]
        if qtype == "where_first":
            relevant = [0]
        if quoted != relevant:
            problems.append(f"the steps quote sentences {quoted}, the facts deciding the answer are {relevant}")
        last = example.reasoning_steps[-1].memory_update if example.reasoning_steps else ""
        if last != f"answer: {answer}":
            problems.append(f"last step records '{last}', expected 'answer: {answer}'")
        live = set(example.memory_usage or [])
        for key, value in states[-1].items():
            fact = (
                f"{key} is in the {value}"
                if key not in events[0]["objects"]
                else (f"the {key} is with {value}" if value in events[0]["people"] else f"the {key} is in the {value}")
            )
            if fact not in live:
                problems.append(f"memory_usage misses the live fact '{fact}'")
                break
    return problems


# ------------------------------------------------------------------------------------ a model's answer
def score(output: str | None, spec: dict) -> dict[str, float]:
    """Long-context recall: the asked room or person, and no other (the answer's first line after the final-answer
    marker, else the output's last line)."""
    events = spec["events"]
    start = events[0]
    who = set(start["people"])
    places = set(start["people"].values()) | set(start["objects"].values())
    places |= {e["to"] for e in events[1:] if e.get("kind") in ("move", "put")}
    target = spec["question"][1]
    return answers.single_entity(answers.entity_region(output, False), spec["answer"], (who | places) - {target})
