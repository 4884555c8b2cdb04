"""Teacher backends: a model writes the solution, the task's checker decides whether it is kept.

    teacher = OpenAITeacher("http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")   # any OpenAI-compatible server
    teacher = HFTeacher("path/to/local/model")                                              # or a local HF model
    example, problems = teacher_example(teacher, "planning", "basic", seed=123)
    write_teacher_jsonl(teacher, [("planning", "basic", 123), ...], "teacher.jsonl")

The problem (context, instruction, problem_spec) always comes from a generator, so the teacher's answer
can be re-checked exactly like synthetic data: the response is parsed back into reasoning steps and a
final answer, marked generated_by="teacher:<name>", and verified by cognitive.generators.check_example
(non-strict: the teacher may reason its own way, but its final answer and every arithmetic it writes
must be right). Failing answers come back with verified=False and quality_score 0; the data pipeline
drops them (feed the JSONL to recipes/generate_data.py --curated ...). Nothing a teacher says is trusted.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Callable, Protocol

from cognitive import quality
from cognitive.errors import UserError
from cognitive.generators import TRAIN_SEEDS, generate_example
from cognitive.schema import FINAL_ANSWER_MARKER, CognitiveTrainingExample, ReasoningStep


class Teacher(Protocol):
    name: str

    def complete(self, messages: list[dict[str, str]]) -> str: ...


class OpenAITeacher:
    """POST <base_url>/chat/completions (OpenAI, vLLM, llama.cpp server, TGI, ...), greedy by default."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0,
                 max_tokens: int = 1024, timeout: float = 120.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.name = model, model
        self.api_key = os.environ.get(api_key_env, "")
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout

    def complete(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except OSError as e:
            raise UserError(f"teacher endpoint {self.url}: {e}") from None
        return payload["choices"][0]["message"]["content"] or ""


class HFTeacher:
    """A local transformers causal LM (directory or hub id), greedy decoding with its chat template."""

    def __init__(self, model_name_or_path: str, max_new_tokens: int = 512, model=None, tokenizer=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = str(model_name_or_path)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_name_or_path)
        self.model = model or AutoModelForCausalLM.from_pretrained(model_name_or_path)
        self.model.eval()
        self.max_new_tokens = max_new_tokens

    def complete(self, messages: list[dict[str, str]]) -> str:
        import torch

        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        else:
            ids = self.tokenizer("\n\n".join(m["content"] for m in messages), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


class CallableTeacher:
    """Wrap a function messages -> text (custom backends, tests)."""

    def __init__(self, fn: Callable[[list[dict[str, str]]], str], name: str = "callable"):
        self.fn, self.name = fn, name

    def complete(self, messages):
        return self.fn(messages)


_STEP = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")


def parse_response(text: str) -> tuple[list[ReasoningStep], str]:
    """A response in the training layout ('**Reasoning Process:**', numbered steps with 'Reasoning:' and
    'Memory:' lines, '**Final Answer:**') back into steps and the final answer. Free text becomes one
    step; without the marker the last non-empty line is taken as the final answer."""
    body, marker, final = text.partition(FINAL_ANSWER_MARKER)
    if not marker:
        lines = [x for x in text.strip().splitlines() if x.strip()]
        final = lines[-1] if lines else ""
        body = "\n".join(lines[:-1])
    body = body.split("**Planning Steps:**")[0].replace("**Reasoning Process:**", "")
    steps: list[ReasoningStep] = []
    for line in body.splitlines():
        m = _STEP.match(line)
        stripped = line.strip()
        if m:
            steps.append(ReasoningStep(step=len(steps) + 1, description=m.group(2).strip()))
        elif not stripped:
            continue
        elif not steps:
            steps.append(ReasoningStep(step=1, description=stripped))
        elif stripped.startswith("Reasoning:"):
            steps[-1].reasoning = stripped[len("Reasoning:"):].strip()
        elif stripped.startswith("Memory:"):
            steps[-1].memory_update = stripped[len("Memory:"):].strip()
        else:
            steps[-1].reasoning = (steps[-1].reasoning + " " + stripped).strip()
    return steps, final.strip()


def teacher_example(teacher: Teacher, task_type: str, difficulty: str, seed: int,
                    domain: str | None = None) -> tuple[CognitiveTrainingExample, list[str]]:
    """The generator's problem, the teacher's solution, the checker's verdict (problems; [] = verified)."""
    if seed not in TRAIN_SEEDS:
        raise UserError(f"seed {seed} is outside the training seeds {TRAIN_SEEDS}")
    reference = generate_example(task_type, difficulty, seed, domain=domain)
    messages = reference.to_training_format()["messages"][:2]
    steps, final = parse_response(teacher.complete(messages))
    example = reference.model_copy(update=dict(
        id=f"teacher-{reference.id}", reasoning_steps=steps, state_transitions=None, memory_usage=None,
        final_answer=final, generated_by=f"teacher:{teacher.name}", verified=False, quality_score=None, confidence_score=None))
    example = CognitiveTrainingExample.model_validate(example.model_dump())  # schema stage for parsed output
    problems = quality.verify(example)
    return example, problems


def write_teacher_jsonl(teacher: Teacher, items, path: str | Path, keep_failed: bool = False) -> dict:
    """Ask the teacher for every (task_type, difficulty, seed); write the verified answers (and, with
    keep_failed, the flagged ones) as JSONL for the pipeline's curated input. Returns counts."""
    from tqdm import tqdm

    from cognitive.schema import write_jsonl

    kept, counts = [], {"asked": 0, "verified": 0, "failed": 0}
    for task, difficulty, seed in tqdm(list(items), desc=f"teacher {teacher.name}", unit="ex"):
        example, problems = teacher_example(teacher, task, difficulty, seed)
        counts["asked"] += 1
        counts["verified" if not problems else "failed"] += 1
        if not problems or keep_failed:
            kept.append(example)
    write_jsonl(kept, path)
    return counts
