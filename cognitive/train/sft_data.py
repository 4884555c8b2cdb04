"""Records -> chat messages -> the datasets TRL's SFTTrainer trains on.

Each record becomes a *conversational prompt-completion* pair:

    {"prompt": [system, user], "completion": [assistant]}

SFTTrainer renders both with the base's chat template and computes the loss on the completion tokens only
(`completion_only_loss`, on by default for prompt-completion data). That is "loss on the assistant
response", without needing `{% generation %}` markers in the chat template (SmolLM2's has none), and unlike
the guide's `labels = input_ids`, which also trains on the prompt.

When the recipe weights a cognitive-module auxiliary loss, the rows also carry the label spans of the response
(`aux_spans`, see cognitive/train/aux_labels.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.data.schema import CognitiveTrainingExample, iter_jsonl
from cognitive.errors import UserError


def to_prompt_completion(example: CognitiveTrainingExample) -> dict:
    messages = example.to_training_format()["messages"]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


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


def sft_dataset(examples: list[CognitiveTrainingExample], aux_labels=None):
    """A `datasets.Dataset` of prompt-completion conversations.

    With `aux_labels` (a cognitive.train.aux_labels.AuxLabelSpec: some cognitive_modules aux loss is on) each row
    also gets `aux_spans`, the label spans in characters of the response; CognitiveSFTTrainer turns them into
    token labels once TRL has tokenized the rows."""
    from datasets import Dataset

    rows = [to_prompt_completion(ex) for ex in examples]
    if aux_labels is not None:
        from cognitive.train.aux_labels import SPANS_COLUMN, response_spans

        for row, ex in zip(rows, examples):
            row[SPANS_COLUMN] = json.dumps(response_spans(ex, aux_labels))
    return Dataset.from_list(rows)


def load_sft_datasets(script_args, resolved):
    """(train, eval or None) for SFTTrainer: the resolved data files (cognitive.train.args.resolve_arguments), at
    most max_train_examples / max_eval_examples records, with aux label spans when the recipe needs them."""
    train_examples = load_examples(resolved.train_files, script_args.max_train_examples)
    if not train_examples:
        raise UserError(f"{', '.join(map(str, resolved.train_files))}: no training records")
    train = sft_dataset(train_examples, resolved.aux_labels)
    if not resolved.eval_files:
        return train, None
    return train, sft_dataset(load_examples(resolved.eval_files, script_args.max_eval_examples), resolved.aux_labels)
