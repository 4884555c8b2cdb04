"""Examples -> chat messages -> the datasets TRL's SFTTrainer trains on.

Each record becomes a *conversational prompt-completion* pair:

    {"prompt": [system, user], "completion": [assistant]}

SFTTrainer renders both with the base's chat template and computes the loss on the completion tokens only
(`completion_only_loss`, on by default for prompt-completion data). That is "loss on the assistant
response", without needing `{% generation %}` markers in the chat template (SmolLM2's has none), and unlike
the guide's `labels = input_ids`, which also trains on the prompt.

When the recipe weights a cognitive-module auxiliary loss, the rows also carry the label spans of the response
(`aux_spans`, see cognitive/aux_labels.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.errors import UserError
from cognitive.schema import CognitiveTrainingExample, iter_jsonl


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


def load_examples(path: str | Path, split: str = "train", limit: int | None = None) -> list[CognitiveTrainingExample]:
    """Validated examples of one split; a malformed line is a UserError naming file and line."""
    files = find_split_files(path, split)
    if not files:
        raise UserError(f"dataset '{path}' has no {split}*.jsonl files")
    examples: list[CognitiveTrainingExample] = []
    for f in files:
        for ex in iter_jsonl(f):
            examples.append(ex)
            if limit is not None and len(examples) >= limit:
                return examples
    return examples


def sft_dataset(examples: list[CognitiveTrainingExample], aux_labels=None):
    """A `datasets.Dataset` of prompt-completion conversations.

    With `aux_labels` (a cognitive.aux_labels.AuxLabelSpec: some cognitive_modules aux loss is on) each row also
    gets `aux_spans`, the label spans in characters of the response; CognitiveSFTTrainer turns them into token
    labels once TRL has tokenized the rows."""
    from datasets import Dataset

    rows = [to_prompt_completion(ex) for ex in examples]
    if aux_labels is not None:
        from cognitive.aux_labels import SPANS_COLUMN, response_spans

        for row, ex in zip(rows, examples):
            row[SPANS_COLUMN] = json.dumps(response_spans(ex, aux_labels))
    return Dataset.from_list(rows)


def aux_label_spec(script_args):
    """What auxiliary labels the recipe's cognitive_modules block asks for (None: no aux loss weighted > 0)."""
    if getattr(script_args, "cognitive_modules", None) is None:
        return None
    from cognitive.aux_labels import AuxLabelSpec
    from cognitive.training import cognitive_modules_config

    return AuxLabelSpec.from_config(cognitive_modules_config(script_args))


def load_sft_datasets(script_args):
    """(train, eval or None) for SFTTrainer from the recipe's data arguments.

    dataset_path: a .jsonl file (train only) or a data directory (train*.jsonl, and validation*.jsonl for eval
    when present); eval_dataset_path: an explicit eval file or directory.
    """
    aux = aux_label_spec(script_args)
    train = sft_dataset(load_examples(script_args.dataset_path, "train", script_args.max_train_examples), aux)
    eval_path = script_args.eval_dataset_path
    if eval_path is None and Path(script_args.dataset_path).is_dir():
        if find_split_files(script_args.dataset_path, "validation"):
            eval_path = script_args.dataset_path
    if eval_path is None:
        return train, None
    return train, sft_dataset(load_examples(eval_path, "validation", script_args.max_eval_examples), aux)
