"""Teacher backends: a model writes the solution, the task's checker decides whether it is kept.

    teacher = OpenAITeacher("http://localhost:8000/v1", model="Qwen/Qwen2.5-7B-Instruct")  # OpenAI-compatible server
    teacher = HFTeacher("path/to/local/model")                                             # or a local HF model
    example, problems = teacher_example(teacher, "planning", "basic", seed=123)
    write_teacher_jsonl(teacher, [("planning", "basic", 123), ...], "teacher.jsonl")

From the command line, with the task / difficulty / domain mix of a data config (seeds offset from the
config's own, so the teacher's problems are not the synthetic ones), then into the pipeline:

    python recipes/teacher.py --hf_model path/to/model --config data/configs/default.yaml -n 200 \
        --out data/teacher/t.jsonl
    python recipes/teacher.py --endpoint http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct \
        --config ... --out ...
    python recipes/generate_data.py --config data/configs/default.yaml --curated data/teacher/t.jsonl

The problem (context, instruction, problem_spec) always comes from a generator, so the teacher's answer
can be re-checked exactly like synthetic data: the response is parsed back into reasoning steps and a
final answer, marked generated_by="teacher:<name>", and verified by cognitive.data.verify
(non-strict: the teacher may reason its own way, but its final answer and every arithmetic it writes
must be right). Failing answers come back with verified=False and quality_score 0; the data pipeline
drops them (feed the JSONL to recipes/generate_data.py --curated ...). Nothing a teacher says is trusted.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cognitive.data.generators import TRAIN_SEEDS, generate_example
from cognitive.data.response import parse_response
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep, write_jsonl
from cognitive.data.verify import verify
from cognitive.errors import UserError


class Teacher(Protocol):
    name: str

    def complete(self, messages: list[dict[str, str]]) -> str: ...


class OpenAITeacher:
    """POST <base_url>/chat/completions (OpenAI, vLLM, llama.cpp server, TGI, ...), greedy by default."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 1024,
        timeout: float = 120.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.name = model, model
        self.api_key = os.environ.get(api_key_env, "")
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout

    def complete(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        ).encode()
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
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
        else:
            ids = self.tokenizer("\n\n".join(m["content"] for m in messages), return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = self.model.generate(
                ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


class CallableTeacher:
    """Wrap a function messages -> text (custom backends, tests)."""

    def __init__(self, fn: Callable[[list[dict[str, str]]], str], name: str = "callable"):
        self.fn, self.name = fn, name

    def complete(self, messages):
        return self.fn(messages)


def response_steps(text: str) -> tuple[list[ReasoningStep], str]:
    """A reply in the training layout (cognitive.data.response) as reasoning steps and the final answer. Free text
    before the first numbered step becomes a step of its own; without the final-answer marker the last non-empty
    line is taken as the final answer."""
    parsed = parse_response(text)
    final = parsed["final_answer"]
    if final is None:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        final = lines[-1] if lines else ""
        parsed = parse_response("\n".join(lines[:-1]))
    texts = [(parsed["preamble"], "", "")] if parsed["preamble"] else []
    texts += [(s["description"], s["reasoning"] or "", s["memory"] or "") for s in parsed["steps"]]
    steps = [ReasoningStep(step=i, description=d, reasoning=r, memory_update=m) for i, (d, r, m) in enumerate(texts, 1)]
    return steps, final.strip()


def teacher_example(
    teacher: Teacher, task_type: str, difficulty: str, seed: int, domain: str | None = None
) -> tuple[CognitiveTrainingExample, list[str]]:
    """The generator's problem, the teacher's solution, the checker's verdict (problems; [] = verified)."""
    if seed not in TRAIN_SEEDS:
        raise UserError(f"seed {seed} is outside the training seeds {TRAIN_SEEDS}")
    reference = generate_example(task_type, difficulty, seed, domain=domain)
    messages = reference.to_training_format()["messages"][:2]
    steps, final = response_steps(teacher.complete(messages))
    example = reference.model_copy(
        update=dict(
            id=f"teacher-{reference.id}",
            reasoning_steps=steps,
            state_transitions=None,
            memory_usage=None,
            final_answer=final,
            generated_by=f"teacher:{teacher.name}",
            verified=False,
            quality_score=None,
            confidence_score=None,
        )
    )
    example = CognitiveTrainingExample.model_validate(example.model_dump())  # schema stage for parsed output
    problems = verify(example)
    return example, problems


def write_teacher_jsonl(teacher: Teacher, items, path: str | Path, keep_failed: bool = False) -> dict:
    """Ask the teacher for every (task_type, difficulty, seed[, domain]); write the verified answers (and, with
    keep_failed, the flagged ones) as JSONL for the pipeline's curated input (via a temp file). Returns counts."""
    from tqdm import tqdm

    kept, counts = [], {"asked": 0, "verified": 0, "failed": 0}
    for task, difficulty, seed, *domain in tqdm(list(items), desc=f"teacher {teacher.name}", unit="ex"):
        example, problems = teacher_example(teacher, task, difficulty, seed, domain=domain[0] if domain else None)
        counts["asked"] += 1
        counts["verified" if not problems else "failed"] += 1
        if not problems or keep_failed:
            kept.append(example)
    write_jsonl(kept, path)
    return counts


TEACHER_SEED_OFFSET = 2**39  # teacher problems use seeds far from the synthetic data's (both in TRAIN_SEEDS)


def config_items(config_path: str | Path, n: int) -> list[tuple[str, str, int, str]]:
    """n (task_type, difficulty, seed, domain) with the data config's mix, seeds offset from its own."""
    from cognitive.data.build import load_config, plan_slots

    config = load_config(config_path)
    seeds = range(config.seed + TEACHER_SEED_OFFSET, config.seed + TEACHER_SEED_OFFSET + n)
    if seeds.stop > TRAIN_SEEDS.stop:
        raise UserError(
            f"{config_path}: key 'seed' {config.seed} leaves no room for {n} teacher seeds in {TRAIN_SEEDS}"
        )
    return [(task, difficulty, seed, domain) for (task, difficulty, domain), seed in zip(plan_slots(config, n), seeds)]
