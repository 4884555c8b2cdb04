"""The prompts of reinforcement learning (recipes/grpo.py): generator problems, no dataset file needed.

Each row is one problem asked in the recipe's prompt styles (cognitive/data/response.py), with what the rewards
(cognitive/rl/rewards.py) score the completions against:

    {"prompt": [messages], "task_type": "planning", "difficulty": "basic", "problem_spec": "<JSON>", "id": ...}

Generated rows follow a data config's task, difficulty and domain mix (data/configs/*.yaml, the same slot plan as
the SFT data: cognitive.data.build.plan_slots) with seeds from RL_SEEDS, disjoint from the training seeds of the SFT
data and from the seeds of the eval snapshots; a problem whose text is an eval document's (normalised hash), repeats
an earlier row's, fails its checker or has a prompt over `max_prompt_tokens` is replaced by the slot's next seed.
Deterministic in (config, num_prompts, styles). Or rows come from records (`dataset_path`, a JSONL file or a data
directory's train*.jsonl): each needs its problem_spec, which the rewards score against.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from cognitive.data.filters import normalized_hash
from cognitive.data.generators import RL_SEEDS, generate_example
from cognitive.data.response import prompt_messages
from cognitive.data.schema import CognitiveTrainingExample, iter_records
from cognitive.errors import UserError
from cognitive.train.sft_data import find_split_files, pick_prompt_style

MAX_ATTEMPTS = 8  # seeds tried per slot


def prompt_row(example: CognitiveTrainingExample, prompt_styles: dict[str, float]) -> dict:
    style, rng = pick_prompt_style(example, prompt_styles)
    return {
        "prompt": prompt_messages(example, style, rng),
        "task_type": example.task_type.value,
        "difficulty": example.difficulty.value,
        "problem_spec": json.dumps(example.problem_spec),
        "id": example.id,
    }


def rl_seed(n_slots: int, slot: int, attempt: int, offset: int = 0) -> int:
    seed = RL_SEEDS.start + offset + attempt * n_slots + slot
    if seed not in RL_SEEDS:
        raise UserError(f"num_prompts {n_slots} with seed offset {offset} steps outside the RL seeds {RL_SEEDS}")
    return seed


def generate_prompts(config, num_prompts: int, prompt_styles: dict[str, float], fits=None) -> list[dict]:
    """`num_prompts` rows in the mix of `config` (a DatasetConfiguration), none an eval document of its eval_dir
    (default: the project's eval snapshots); `fits(row) -> bool` bounds the prompt length. A slot left empty after
    MAX_ATTEMPTS seeds is a one-line UserError."""
    from cognitive.data.build import DEFAULT_EVAL_DIR, load_decontamination_hashes, plan_slots

    slots = plan_slots(config, num_prompts)
    seen = load_decontamination_hashes(Path(config.eval_dir) if config.eval_dir else DEFAULT_EVAL_DIR)
    rows = []
    for i, (task_type, difficulty, domain) in enumerate(tqdm(slots, desc="RL prompts", leave=False)):
        for attempt in range(MAX_ATTEMPTS):
            example = generate_example(task_type, difficulty, rl_seed(len(slots), i, attempt, config.seed), domain)
            key = normalized_hash(example)
            if not example.verified or key in seen:
                continue
            row = prompt_row(example, prompt_styles)
            if fits is not None and not fits(row):
                continue
            seen.add(key)
            rows.append(row)
            break
        else:
            raise UserError(
                f"no {difficulty} {task_type} problem in {MAX_ATTEMPTS} seeds passed the checks (verified, not an eval "
                "document, a prompt within max_prompt_tokens): raise max_prompt_tokens or leave that difficulty out"
            )
    return rows


def record_prompts(path: str, prompt_styles: dict[str, float], limit: int | None = None) -> list[dict]:
    """Rows from the records of a JSONL file or a data directory (its train*.jsonl)."""
    files = find_split_files(path, "train")
    if not files:
        raise UserError(f"dataset '{path}' has no train*.jsonl files")
    rows = []
    for f in files:
        for where, example in iter_records(f):
            if not example.problem_spec:
                raise UserError(f"{where}: record '{example.id}' has no problem_spec; the rewards score against it")
            rows.append(prompt_row(example, prompt_styles))
            if limit is not None and len(rows) >= limit:
                return rows
    if not rows:
        raise UserError(f"{', '.join(map(str, files))}: no records")
    return rows


def prompt_length_check(tokenizer, max_tokens: int | None):
    """fits(row): the row's prompt, chat-templated with the generation prompt, has at most max_tokens tokens."""
    if max_tokens is None:
        return None

    def fits(row) -> bool:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)
        return len(ids) <= max_tokens

    return fits


def rows_sha256(rows: list[dict]) -> str:
    """The identity of a prompt set (run_info.json's data hash: a resumed run must see the same prompts)."""
    import hashlib

    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True).encode() + b"\n")
    return digest.hexdigest()
