"""Records -> chat messages -> the datasets TRL's SFTTrainer trains on.

Each record becomes a *conversational prompt-completion* pair:

    {"prompt": [system, user], "completion": [assistant]}

in the recipe's styles (cognitive/data/response.py): `prompt_styles` weights the guide's system + user prompt, a
user-only prompt and a plain question (each record's style picked by its id, so a dataset renders the same every
time); `response_style` is the guide's layout, the concise one or the concise one with column working;
`arithmetic_drills` mixes that share of arithmetic worksheets (cognitive.data.drills) into the training rows, and
`practice_problems` that share of third-party practice problems (cognitive.data.practice).

SFTTrainer renders both with the base's chat template and computes the loss on the completion tokens only
(`completion_only_loss`, on by default for prompt-completion data). That is "loss on the assistant
response", without needing `{% generation %}` markers in the chat template (SmolLM2's has none), and unlike
the guide's `labels = input_ids`, which also trains on the prompt.

When the recipe weights a cognitive-module auxiliary loss, the rows also carry the label spans of the response
(`aux_spans`, see cognitive/train/aux_labels.py).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cognitive.data.drills import drill_rows
from cognitive.data.practice import practice_rows
from cognitive.data.response import PROMPT_STYLES, RESPONSE_STYLES, prompt_messages, render_response
from cognitive.data.schema import CognitiveTrainingExample, iter_jsonl
from cognitive.errors import UserError

GUIDE_ONLY = {"guide": 1.0}  # the guide's to_training_format() layout, every record
DEFAULT_PROMPT_STYLES = {"guide": 1.0, "user": 1.0, "question": 1.0}  # a recipe without prompt_styles: a third each


def to_prompt_completion(example: CognitiveTrainingExample, prompt_styles=None, response_style="guide") -> dict:
    """The record as a prompt-completion pair; `prompt_styles` ({style: weight}, default GUIDE_ONLY) and
    `response_style` as validated by check_styles."""
    style, rng = pick_prompt_style(example, prompt_styles or GUIDE_ONLY)
    completion = [{"role": "assistant", "content": render_response(example, response_style)}]
    return {"prompt": prompt_messages(example, style, rng), "completion": completion}


def pick_prompt_style(example: CognitiveTrainingExample, prompt_styles: dict[str, float]):
    """(style, the random.Random that goes on to pick its phrasing), seeded by the record's id alone."""
    rng = random.Random(f"style|{example.id}")
    return rng.choices(list(prompt_styles), weights=list(prompt_styles.values()))[0], rng


def check_styles(prompt_styles, response_style: str) -> dict[str, float]:
    """The recipe's `prompt_styles` as {style: weight} (a mapping, one style's name, or None: DEFAULT_PROMPT_STYLES)
    and its `response_style`; an unknown name or a weight that is not a non-negative number is a one-line UserError
    naming the key."""
    if prompt_styles is None:
        prompt_styles = DEFAULT_PROMPT_STYLES
    if isinstance(prompt_styles, str):
        prompt_styles = {prompt_styles: 1.0}
    if not isinstance(prompt_styles, dict) or not prompt_styles:
        raise UserError(
            f"prompt_styles: expected a mapping such as {{guide: 1, user: 1, question: 1}}, got {prompt_styles!r}"
        )
    for name, weight in prompt_styles.items():
        if name not in PROMPT_STYLES:
            raise UserError(f"prompt_styles: unknown style '{name}' (known: {', '.join(PROMPT_STYLES)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise UserError(f"prompt_styles.{name}: {weight!r} is not a non-negative weight")
    if not sum(prompt_styles.values()) > 0:
        raise UserError("prompt_styles: every weight is 0; give at least one style a positive weight")
    if response_style not in RESPONSE_STYLES:
        raise UserError(f"response_style: unknown style '{response_style}' (known: {', '.join(RESPONSE_STYLES)})")
    return {name: float(weight) for name, weight in prompt_styles.items()}


def find_split_files(path: str | Path, split: str) -> list[Path]:
    """The JSONL files of `split` under a data directory (`train.jsonl` or `train-00000-of-00004.jsonl`)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"dataset '{path}' not found (expected a .jsonl file or a generated data directory)")
    return sorted(path.glob(f"{split}.jsonl")) + sorted(path.glob(f"{split}-*.jsonl"))


def load_examples(files, limit: int | None = None) -> list[CognitiveTrainingExample]:
    """Validated records of these JSONL files (at most `limit`); a malformed line is a UserError naming file and
    line."""
    examples: list[CognitiveTrainingExample] = []
    for f in files:
        for ex in iter_jsonl(f):
            examples.append(ex)
            if limit is not None and len(examples) >= limit:
                return examples
    return examples


def sft_dataset(examples: list[CognitiveTrainingExample], aux_labels=None, prompt_styles=None, response_style="guide"):
    """A `datasets.Dataset` of prompt-completion conversations (in the styles of to_prompt_completion).

    With `aux_labels` (a cognitive.train.aux_labels.AuxLabelSpec: some cognitive_modules aux loss is on) each row
    also gets `aux_spans`, the label spans in characters of the response; CognitiveSFTTrainer turns them into
    token labels once TRL has tokenized the rows."""
    from datasets import Dataset

    rows = [to_prompt_completion(ex, prompt_styles, response_style) for ex in examples]
    if aux_labels is not None:
        from cognitive.train.aux_labels import SPANS_COLUMN, response_spans

        for row, ex in zip(rows, examples):
            row[SPANS_COLUMN] = json.dumps(response_spans(ex, aux_labels, response_style))
    return Dataset.from_list(rows)


DRILL_STEPS = 6  # steps per worksheet mixed into training: ~60 tokens answered directly, ~200 in columns


def with_extra_rows(train, response_style: str, drills: float = 0.0, practice: float = 0.0, aux_labels=None):
    """`train` and rows beside the records, each kind making up its share of all the rows: arithmetic worksheets
    (`drills`, cognitive.data.drills) and third-party practice problems (`practice`, cognitive.data.practice), both
    with column working when the response style is column; with aux labels they carry none (no steps, states or
    actions to label). The trainer shuffles the rows."""
    from datasets import Dataset, concatenate_datasets

    column = response_style == "column"
    rest = 1 - drills - practice
    rows = drill_rows(round(len(train) * drills / rest), DRILL_STEPS, "column" if column else "direct")
    rows += practice_rows(round(len(train) * practice / rest), column)
    if aux_labels is not None:
        from cognitive.train.aux_labels import SPANS_COLUMN

        empty = json.dumps({"steps": [], "states": [], "actions": [], "plan": []})
        rows = [row | {SPANS_COLUMN: empty} for row in rows]
    return concatenate_datasets([train, Dataset.from_list(rows, features=train.features)]) if rows else train


def load_sft_datasets(run):
    """(train, eval or None) for SFTTrainer from a resolved run (cognitive.train.sft_config.SFTRun): its data files,
    at most max_train_examples / max_eval_examples records, in its styles, with aux label spans when it needs them."""
    script = run.script
    train_examples = load_examples(run.train_files, script.max_train_examples)
    if not train_examples:
        raise UserError(f"{', '.join(map(str, run.train_files))}: no training records")
    styles = (run.prompt_styles, script.response_style)
    train = sft_dataset(train_examples, run.aux_labels, *styles)
    shares = dict(drills=script.arithmetic_drills, practice=script.practice_problems)
    train = with_extra_rows(train, script.response_style, **shares, aux_labels=run.aux_labels)
    if not run.eval_files:
        return train, None
    evaluation = load_examples(run.eval_files, script.max_eval_examples)
    return train, sft_dataset(evaluation, run.aux_labels, *styles)
