"""Chat with a release: load it, stream a reply, read the reply's reasoning steps and final answer.

    model, tokenizer = load_for_chat("release/demo")
    text = "".join(stream_reply(model, tokenizer, [{"role": "user", "content": "..."}]))
    parse_response(text)   # {"steps": [...], "planning_steps": [...], "final_answer": "...", "format_ok": True, "text": ...}

The trained response format (cognitive/schema.py, CognitiveTrainingExample.response):

    **Reasoning Process:**

    1. <description>
       Reasoning: <reasoning>
       Memory: <memory update>
    ...

    **Planning Steps:**            (only for planning / state tasks)

    State: <from> → <to>
    Action: <action>
    Rationale: <rationale>
    ...

    **Final Answer:** <answer>

Remote code: a release with cognitive modules runs its shipped modeling code. It is trusted without asking only
when it is byte-for-byte what this checkout writes (cognitive/remote_code.py); otherwise --trust-remote-code.
"""

from __future__ import annotations

import re
from pathlib import Path
from threading import Thread
from typing import Iterator

from cognitive.errors import UserError
from cognitive.schema import FINAL_ANSWER_MARKER, SYSTEM_PROMPT_HEADER, SYSTEM_PROMPT_INSTRUCTIONS

REASONING_HEADER = "**Reasoning Process:**"
PLANNING_HEADER = "**Planning Steps:**"
DEFAULT_SYSTEM_PROMPT = f"{SYSTEM_PROMPT_HEADER}\n\n{SYSTEM_PROMPT_INSTRUCTIONS}"


# ------------------------------------------------------------------------------------------------ loading
def load_for_chat(release_dir: str | Path, trust_remote_code: bool = False):
    """(model, tokenizer) of a release dir, in eval mode; bf16 on a GPU, fp32 on the CPU."""
    import torch
    from transformers import AutoTokenizer

    from cognitive.release import has_remote_code, load_release
    from cognitive.remote_code import remote_code_is_current

    path = Path(release_dir)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json); give a release dir, e.g. release/demo")
    remote = has_remote_code(path)
    if remote and not trust_remote_code and not remote_code_is_current(path):
        raise UserError(f"{path} ships modeling code that differs from this checkout's; read its *.py files, "
                        f"then pass --trust-remote-code to run it")
    cuda = torch.cuda.is_available()
    model = load_release(path, trust_remote_code=remote, dtype=torch.bfloat16 if cuda else torch.float32,
                         device_map="cuda" if cuda else None)
    return model.eval(), AutoTokenizer.from_pretrained(path, trust_remote_code=remote)  # reads config.json too


# ------------------------------------------------------------------------------------------------ generation
def stream_reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 512,
                 temperature: float = 0.0) -> Iterator[str]:
    """Yield the reply's text as it is generated (greedy when temperature is 0)."""
    from transformers import TextIteratorStreamer

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens, **sampling,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    errors: list[BaseException] = []

    def generate():
        try:
            model.generate(**kwargs)
        except BaseException as e:  # re-raised below; end the stream so the reader does not wait forever
            errors.append(e)
            streamer.end()

    thread = Thread(target=generate, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------------------------ parsing
_STEP = re.compile(r"^\s{0,3}(\d+)[.)]\s+(.*)$")
_FIELD = re.compile(r"^\s*(Reasoning|Memory|State|Action|Rationale):\s*(.*)$")
_ARROW = re.compile(r"\s*(?:→|->)\s*")


def parse_response(text: str) -> dict:
    """The reply's numbered reasoning steps, planning steps and final answer (None when it has no
    "**Final Answer:**"); format_ok says whether it had the final-answer marker."""
    body, marker, answer = text.rpartition(FINAL_ANSWER_MARKER)
    if not marker:
        body, answer = text, ""
    reasoning, _, planning = body.partition(PLANNING_HEADER)
    reasoning = reasoning.split(REASONING_HEADER, 1)[-1]
    return {
        "steps": _reasoning_steps(reasoning),
        "planning_steps": _planning_steps(planning),
        "final_answer": answer.strip() if marker else None,
        "format_ok": bool(marker),
        "text": text,
    }


def _reasoning_steps(section: str) -> list[dict]:
    steps: list[dict] = []
    after_blank = False
    for line in section.splitlines():
        step, field = _STEP.match(line), _FIELD.match(line)
        if step:
            steps.append({"step": int(step.group(1)), "description": step.group(2).strip(), "reasoning": None,
                          "memory": None})
        elif steps and field and field.group(1) in ("Reasoning", "Memory"):
            steps[-1][field.group(1).lower()] = field.group(2).strip()
        elif steps and line.strip() and (line[:1].isspace() or not after_blank):
            # a wrapped line continues the last field written; an unindented paragraph after a blank line does not
            key = "memory" if steps[-1]["memory"] else "reasoning" if steps[-1]["reasoning"] else "description"
            steps[-1][key] = f"{steps[-1][key]} {line.strip()}"
        after_blank = not line.strip()
    return steps


def _planning_steps(section: str) -> list[dict]:
    steps: list[dict] = []
    for line in section.splitlines():
        field = _FIELD.match(line)
        if not field:
            continue
        name, value = field.group(1), field.group(2).strip()
        if name == "State":
            states = _ARROW.split(value, maxsplit=1)  # "a → b"; a state without an arrow has no target
            steps.append({"from_state": states[0], "to_state": states[1] if len(states) == 2 else None,
                          "action": None, "rationale": None})
        elif steps and name in ("Action", "Rationale"):
            steps[-1][name.lower()] = value
    return steps


def summary_line(parsed: dict) -> str:
    """One line after a streamed reply: how many steps were read, and the final answer."""
    counts = f"{len(parsed['steps'])} reasoning steps, {len(parsed['planning_steps'])} planning steps"
    if not parsed["format_ok"]:
        return f"-- {counts}; no {FINAL_ANSWER_MARKER} in the reply (not in the trained format)"
    return f"-- {counts}; final answer: {parsed['final_answer']}"
