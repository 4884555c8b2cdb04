"""The response format of the training records, rendered and parsed in one place.

A record's prompt is the guide's system prompt (task type, difficulty, domain, constraints, instructions) and a
"Context: ... Instruction: ..." user turn; its response is laid out as

    **Reasoning Process:**

    1. <description>
       Reasoning: <reasoning>
       Memory: <memory update>
    ...

    **Planning Steps:**            (only for records with state transitions)

    State: <from> → <to>
    Action: <action>
    Rationale: <rationale>
    ...

    **Final Answer:** <answer>

`response_parts` gives that layout as labelled parts (the auxiliary labels of the cognitive modules are placed on
them), `render_response` joins them, and `parse_response` reads a model's reply back into steps, planning steps and
the final answer (chat, teacher).

Training can also render a record in other styles (recipe settings `prompt_styles` and `response_style`); the
guide's `to_training_format()` is always the guide layout:

    prompt styles    guide      the guide's system prompt + "Context: ... Instruction: ..." (the layout above)
                     user       no system prompt: the context, then the question in one of the task type's
                                `train_requests` phrasings (cognitive/tasks.py)
                     question   no system prompt: the context and the record's question, one paragraph
    response styles  guide      the layout above
                     concise    the same verified steps, one short line each (a step's arithmetic and what it
                                leaves in memory), then one "Final Answer: <answer>" line
                     column     the concise style with every sum or difference of whole numbers above 9 worked one
                                column at a time before it is written whole ("Balance: $90 + $64: 0 + 4 = 4,
                                9 + 6 = 15; $90 + $64 = $154"): each step written is one a small model can compute
                                (experiments/arithmetic_ceiling/)
"""

from __future__ import annotations

import random
import re

from cognitive import tasks
from cognitive.data import arith

SYSTEM_PROMPT_HEADER = "You are a cognitive AI system capable of reasoning, planning, and problem-solving."
SYSTEM_PROMPT_INSTRUCTIONS = """Instructions:
1. Think step-by-step through the problem
2. Show your reasoning process clearly
3. Use working memory to track important information
4. Plan your approach before executing
5. Provide a clear final answer

Format your response with clear reasoning steps and your final answer."""
DEFAULT_SYSTEM_PROMPT = f"{SYSTEM_PROMPT_HEADER}\n\n{SYSTEM_PROMPT_INSTRUCTIONS}"  # without task-specific lines
REASONING_HEADER = "**Reasoning Process:**"
PLANNING_HEADER = "**Planning Steps:**"
FINAL_ANSWER_MARKER = "**Final Answer:**"
PART_SEPARATOR = "\n\n"
CONCISE_ANSWER_MARKER = "Final Answer:"
PROMPT_STYLES = ("guide", "user", "question")
RESPONSE_STYLES = ("guide", "concise", "column")
SEPARATORS = {"guide": PART_SEPARATOR, "concise": "\n", "column": "\n"}  # between the parts of a response, by style


# ------------------------------------------------------------------------------------------------ prompts
def system_prompt(task_type: str, difficulty: str, domain: str, constraints: list[str] | None) -> str:
    """The guide's system prompt of a record."""
    lines = f"\nConstraints: {'; '.join(constraints)}" if constraints else ""
    return (
        f"{SYSTEM_PROMPT_HEADER}\n\n"
        f"Task Type: {task_type}\n"
        f"Difficulty: {difficulty}\n"
        f"Domain: {domain}{lines}\n\n"
        f"{SYSTEM_PROMPT_INSTRUCTIONS}"
    )


def user_prompt(context: str, instruction: str) -> str:
    return f"Context: {context}\n\nInstruction: {instruction}"


def bare_question(example) -> str:
    """The record's question less any training-style prefix of its generator (such as "Solve step by step.")."""
    question = example.instruction
    for prefix in tasks.get(example.task_type).hook("INSTRUCTION_PREFIX") or ():
        if prefix and question.startswith(prefix):
            question = question[len(prefix) :]
    return question


def prompt_messages(example, style: str, rng: random.Random) -> list[dict]:
    """The prompt turns of a record in one of PROMPT_STYLES (`rng` picks the phrasing of the user style). The
    constraints, which the guide layout states in its system prompt, go into the user turn of the others."""
    if style == "guide":
        return [
            {"role": "system", "content": example.system_prompt()},
            {"role": "user", "content": example.user_prompt()},
        ]
    context = example.context
    if example.constraints:
        context += "\n" + "\n".join(f"- {c}" for c in example.constraints)
    if style == "user":
        request = rng.choice(tasks.get(example.task_type).train_requests).format(question=bare_question(example))
        return [{"role": "user", "content": f"{context}\n\n{request}"}]
    if style == "question":
        return [{"role": "user", "content": f"{context}\n{bare_question(example)}"}]
    raise ValueError(f"unknown prompt style {style!r} (known: {', '.join(PROMPT_STYLES)})")


# ------------------------------------------------------------------------------------------------ rendering
def response_parts(example, style: str = "guide") -> list[tuple[str, int, str]]:
    """The response of a CognitiveTrainingExample as (kind, index, text) parts, in order; kind is "header",
    "step" (index: the reasoning step, 0-based), "transition" (index: the state transition) or "answer".
    Joined with SEPARATORS[style] they are the response."""
    if style in ("concise", "column"):
        parts = [("step", i, concise_step(step, style == "column")) for i, step in enumerate(example.reasoning_steps)]
        return parts + [("answer", -1, f"{CONCISE_ANSWER_MARKER} {example.final_answer}")]
    if style != "guide":
        raise ValueError(f"unknown response style {style!r} (known: {', '.join(RESPONSE_STYLES)})")
    parts: list[tuple[str, int, str]] = []
    if example.reasoning_steps:
        parts.append(("header", -1, REASONING_HEADER))
        for i, step in enumerate(example.reasoning_steps):
            text = f"{i + 1}. {step.description}"
            if step.reasoning:
                text += f"\n   Reasoning: {step.reasoning}"
            if step.memory_update:
                text += f"\n   Memory: {step.memory_update}"
            parts.append(("step", i, text))
    if example.state_transitions:
        parts.append(("header", -1, f"\n{PLANNING_HEADER}"))
        for j, t in enumerate(example.state_transitions):
            text = f"State: {t.from_state} → {t.to_state}"
            if t.action:
                text += f"\nAction: {t.action}"
            if t.rationale:
                text += f"\nRationale: {t.rationale}"
            parts.append(("transition", j, text))
    parts.append(("answer", -1, f"\n{FINAL_ANSWER_MARKER} {example.final_answer}"))
    return parts


def render_response(example, style: str = "guide") -> str:
    return SEPARATORS.get(style, PART_SEPARATOR).join(text for _, _, text in response_parts(example, style))


# A clause of a step's reasoning that does arithmetic: it has an "=" and an operator ("$30 - $8 = $22",
# "10 × 14 cookies = 140 cookies", "end 5 + 50 = 55"); clauses end at ";", ", ", ": " and ". ".
_CLAUSE_END = re.compile(r";\s*|[,:]\s+|\.(?:\s+|$)")
_OPERATOR = re.compile(r"\s[-+×÷*/x]\s")


def arithmetic_clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_END.split(text) if "=" in c and _OPERATOR.search(c)]


CONCISE_LABEL_CHARS = 40  # a step without arithmetic keeps a description this short as its label ("Apply clue 2")


def column_steps(a: int, operator: str, b: int) -> list[str]:
    """A sum or difference of whole numbers as the school method writes it, one column at a time from the right,
    each an "x op y = z" step on one-digit numbers: 654 - 327 -> ["14 - 7 = 7", "4 - 2 = 2", "6 - 3 = 3"] (a
    borrowed column is written from 10 up, "14 - 7", the column it borrowed from one less, "4 - 2"), 592 + 868 ->
    ["2 + 8 = 10", "9 + 6 + 1 = 16", "5 + 8 + 1 = 14"] (a carry written "+ 1")."""
    if operator not in ("+", "-") or a < 0 or b < 0:
        raise ValueError(f"column working adds or subtracts whole numbers: {a} {operator} {b}")
    if operator == "-" and b > a:
        raise ValueError(f"column working subtracts the smaller number from the larger: {a} - {b}")
    columns, carry = [], 0
    top, bottom = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(top), len(bottom))):
        x, y = (int(digits[i]) if i < len(digits) else 0 for digits in (top, bottom))
        if operator == "+":
            columns.append(f"{x} + {y}{' + 1' if carry else ''} = {x + y + carry}")
            carry = (x + y + carry) // 10
        else:
            x -= carry
            carry = int(x < y)
            columns.append(f"{x + 10 * carry} - {y} = {x + 10 * carry - y}")
    return columns


def worked_clause(clause: str) -> str:
    """An arithmetic clause with its column working before it when it adds or subtracts two whole numbers above 0,
    one of them above 9 ("Tank: $129 - $7 = $122" -> "129 - 7: 9 - 7 = 2, 2 - 0 = 2, 1 - 0 = 1; $129 - $7 = $122");
    any other clause (a product, a fraction, a zero, a negative difference, more than two operands) unchanged."""
    found = arith.chains(clause)
    if len(found) != 1 or not found[0].ok or len(found[0].operands or []) != 2:
        return clause
    operators = [c for c in found[0].expression if c in "+-*/"]
    a, b = found[0].operands
    whole = all(v == int(v) and v >= 1 for v in (a, b)) and max(a, b) >= 10
    if operators not in (["+"], ["-"]) or not whole or (operators == ["-"] and b > a):
        return clause
    a, b = int(a), int(b)
    return f"{a} {operators[0]} {b}: {', '.join(column_steps(a, operators[0], b))}; {clause}"


def concise_step(step, column: bool = False) -> str:
    """One short line for a reasoning step: its arithmetic (the equations of its reasoning) with what it leaves in
    memory ("Budget: $30 - $8 = $22", or "end 5 + 50 = 55 → solder: 5-55" when memory holds more than the result);
    without arithmetic, a short description as its label ("Apply clue 2: Jamal: drink ≠ cider"); a step with none
    of these keeps its reasoning. `column`: sums and differences worked one column at a time (worked_clause)."""
    clauses = arithmetic_clauses(step.reasoning or "")
    equations = "; ".join(worked_clause(c) if column else c for c in clauses)
    memory = step.memory_update
    if equations:
        label, _, value = (memory or "").partition(": ")
        if value and equations.endswith(value):  # "Budget: $22" after "$30 - $8 = $22": "Budget: $30 - $8 = $22"
            return f"{label}: {equations}"
        return f"{equations} → {memory}" if memory else equations
    label = step.description if len(step.description) <= CONCISE_LABEL_CHARS else ""
    if memory:
        return f"{label}: {memory}" if label else memory
    return label or step.reasoning or step.description


# ------------------------------------------------------------------------------------------------ parsing
_STEP = re.compile(r"^\s{0,3}(\d+)[.)]\s+(.*)$")
_FIELD = re.compile(r"^\s*(Reasoning|Memory|State|Action|Rationale):\s*(.*)$")
_ARROW = re.compile(r"\s*(?:→|->)\s*")


def parse_response(text: str) -> dict:
    """A reply read back into the layout above:

    steps           [{"step", "description", "reasoning", "memory"}] from the numbered lines
    planning_steps  [{"from_state", "to_state", "action", "rationale"}] from the State/Action/Rationale lines
    preamble        free text before the first numbered step (the header left out)
    final_answer    the text after the last "**Final Answer:**" (or a line's "Final Answer:"), None without one
    format_ok       whether the reply has that marker
    text            the reply
    """
    body, marker, answer = text.rpartition(FINAL_ANSWER_MARKER)
    if not marker:  # the concise style's plain marker, at the start of a line
        found = list(re.finditer(rf"(?m)^{re.escape(CONCISE_ANSWER_MARKER)}", text))
        if found:
            body, marker, answer = text[: found[-1].start()], CONCISE_ANSWER_MARKER, text[found[-1].end() :]
        else:
            body, answer = text, ""
    reasoning, _, planning = body.partition(PLANNING_HEADER)
    reasoning = reasoning.split(REASONING_HEADER, 1)[-1]
    steps, preamble = _reasoning_steps(reasoning)
    return {
        "steps": steps,
        "planning_steps": _planning_steps(planning),
        "preamble": preamble,
        "final_answer": answer.strip() if marker else None,
        "format_ok": bool(marker),
        "text": text,
    }


def _reasoning_steps(section: str) -> tuple[list[dict], str]:
    steps: list[dict] = []
    preamble: list[str] = []
    after_blank = False
    for line in section.splitlines():
        step, field = _STEP.match(line), _FIELD.match(line)
        if step:
            steps.append(
                {
                    "step": arith.read_number(step.group(1)) or 0,  # 0: a numeral too long to read
                    "description": step.group(2).strip(),
                    "reasoning": None,
                    "memory": None,
                }
            )
        elif steps and field and field.group(1) in ("Reasoning", "Memory"):
            steps[-1][field.group(1).lower()] = field.group(2).strip()
        elif steps and line.strip() and (line[:1].isspace() or not after_blank):
            # a wrapped line continues the last field written; an unindented paragraph after a blank line does not
            key = "memory" if steps[-1]["memory"] else "reasoning" if steps[-1]["reasoning"] else "description"
            steps[-1][key] = f"{steps[-1][key]} {line.strip()}"
        elif not steps and line.strip():
            preamble.append(line.strip())
        after_blank = not line.strip()
    return steps, " ".join(preamble)


def _planning_steps(section: str) -> list[dict]:
    steps: list[dict] = []
    for line in section.splitlines():
        field = _FIELD.match(line)
        if not field:
            continue
        name, value = field.group(1), field.group(2).strip()
        if name == "State":
            states = _ARROW.split(value, maxsplit=1)  # "a → b"; a state without an arrow has no target
            steps.append(
                {
                    "from_state": states[0],
                    "to_state": states[1] if len(states) == 2 else None,
                    "action": None,
                    "rationale": None,
                }
            )
        elif steps and name in ("Action", "Rationale"):
            steps[-1][name.lower()] = value
    return steps
