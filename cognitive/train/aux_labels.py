"""Per-token labels for the cognitive modules' auxiliary losses (step, state and action labels).

Only computed for the losses whose weight in the recipe's `cognitive_modules` block is > 0 (and whose module
is enabled); with every weight 0 nothing here runs and the datasets are unchanged.

Label scheme (position t's label is about token t itself; -100 = no label):

    step_labels   [T]     for each token of the rendered reasoning step i (0-based: "1. <description>", its
                          "Reasoning:" and "Memory:" lines), the class min(i, 7): the step predictor learns how
                          far into the reasoning a token is (steps 8, 9, ... share class 7). Other tokens -100.
    state_labels  [T]     for each token of state transition j's text ("State: a → b", "Action: ...",
                          "Rationale: ..."), the index of its `to_state` among the example's distinct to_state
                          names in order of first appearance, modulo num_states (a state revisited later in the
                          same example gets the same index). Other tokens -100.
    action_labels [T, H]  examples whose task type has a plan (its generator module's `plan_actions` hook: planning,
                          a solved plan, problem_spec["answer"]["plan"]) only. An action is "start task X"
                          (cognitive/data/generators/planning.py: one state transition per task, in start order);
                          its id is crc32(task name) % action_space_size, stable across processes and versions
                          (several task names can share an id when there are more names than classes).
                          Each completion token up to the end of the last transition gets the next H =
                          planning_horizon actions of the plan, starting at the first action whose transition text
                          is not finished yet (so every reasoning token gets actions 0..H-1, the tokens of
                          transition j and the separator before it get actions j..j+H-1); -100 past the plan's end
                          and for every other token (prompt, final answer, non-planning examples).

Alignment. Labels are first placed on character spans of the response (`response_spans`, run by
`load_sft_datasets` and stored as the JSON column `aux_spans`), then mapped to tokens after TRL has tokenized
and truncated the data (`add_token_labels`, run from CognitiveSFTTrainer._prepare_dataset): the conversation is
rendered with the same chat template TRL used, tokenized with the tokenizer's offset mapping, checked to give
exactly TRL's input_ids (truncated the same way), and each token takes the label of the span holding its first
non-whitespace character. The columns are kept through TRL's column removal (the trainer adds them to its
signature columns) and `AuxLabelCollator` pads them to the batch's length with -100 on the right, as TRL pads.
Packing and padding-free batches are refused (the labels would not follow the flattened sequences).
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cognitive import tasks
from cognitive.data.response import SEPARATORS, response_parts
from cognitive.data.schema import CognitiveTrainingExample
from cognitive.errors import UserError
from cognitive.model.modules import NUM_STEP_CLASSES

IGNORE = -100
SPANS_COLUMN = "aux_spans"  # JSON: label spans in response characters (from load_sft_datasets)
# token-level columns after dataset preparation; actions are stored compactly (a plan cursor per token and the
# plan's action ids per row) and expanded to [T, planning_horizon] by the collator
STEP_COLUMN, STATE_COLUMN, CURSOR_COLUMN, PLAN_COLUMN = "step_labels", "state_labels", "action_cursor", "plan_actions"
LABEL_COLUMNS = (STEP_COLUMN, STATE_COLUMN, CURSOR_COLUMN, PLAN_COLUMN)


@dataclass(frozen=True)
class AuxLabelSpec:
    """Which auxiliary labels a config needs, and the sizes that shape them."""

    steps: bool
    states: bool
    actions: bool
    num_states: int
    planning_horizon: int
    action_space_size: int

    @classmethod
    def from_config(cls, cfg) -> AuxLabelSpec | None:
        """The labels of a CognitiveModulesConfig (or None when no aux loss is on: nothing to compute)."""
        if cfg is None:
            return None
        rh, st, pm = cfg.reasoning_heads, cfg.state_tracking, cfg.planning_module
        spec = cls(
            steps=rh.enabled and rh.aux_loss_weight > 0,
            states=st.enabled and st.aux_loss_weight > 0,
            actions=pm.enabled and pm.aux_loss_weight > 0,
            num_states=st.num_states,
            planning_horizon=pm.planning_horizon,
            action_space_size=pm.action_space_size,
        )
        return spec if spec.steps or spec.states or spec.actions else None

    @property
    def columns(self) -> tuple[str, ...]:
        """The token-level dataset columns these labels occupy."""
        return (STEP_COLUMN,) * self.steps + (STATE_COLUMN,) * self.states + (CURSOR_COLUMN, PLAN_COLUMN) * self.actions


def check_padded_batches(spec: AuxLabelSpec | None, packing: bool, padding_free: bool) -> None:
    """Aux labels follow padded rows only: refuse packing and padding-free batches (one-line UserError)."""
    if spec is not None and (packing or padding_free):
        raise UserError(
            "cognitive_modules aux losses (aux_loss_weight > 0) need padded batches: set packing: false and "
            "padding_free: false, or every aux_loss_weight to 0"
        )


# --------------------------------------------------------------------------------- character spans
def action_id(task_name: str, action_space_size: int) -> int:
    """The class of the action "start <task_name>": crc32 of the name, modulo the action space."""
    return zlib.crc32(task_name.strip().lower().encode("utf-8")) % action_space_size


def plan_actions(example: CognitiveTrainingExample, action_space_size: int) -> list[int] | None:
    """Action ids of an example's plan, in the order its state transitions take the tasks (its task type's
    `plan_actions` hook); None when its type has no plan, or the example no solved one."""
    names_of = tasks.get(example.task_type).hook("plan_actions")
    names = names_of(example) if names_of else None
    return [action_id(name, action_space_size) for name in names] if names else None


def response_spans(example: CognitiveTrainingExample, spec: AuxLabelSpec, style: str = "guide") -> dict[str, Any]:
    """Label spans in characters of the response in `style` (`example.response()` for the guide's), for the labels
    `spec` asks for:
    {"steps": [[start, end, class]], "states": [[start, end, state]], "actions": [[start, end, cursor]],
    "plan": [action ids]} (end exclusive, spans sorted and disjoint)."""
    out: dict[str, Any] = {"steps": [], "states": [], "actions": [], "plan": []}
    state_index: dict[str, int] = {}
    transition_spans = []
    pos = 0
    for kind, index, text in response_parts(example, style):
        span = (pos, pos + len(text))
        if kind == "step" and spec.steps:
            out["steps"].append([*span, min(index, NUM_STEP_CLASSES - 1)])
        if kind == "transition":
            transition_spans.append(span)
            to_state = example.state_transitions[index].to_state
            state = state_index.setdefault(to_state, len(state_index))
            if spec.states:
                out["states"].append([*span, state % spec.num_states])
        pos = span[1] + len(SEPARATORS[style])
    actions = plan_actions(example, spec.action_space_size) if spec.actions else None
    if actions:
        out["plan"] = actions
        start = 0  # the reasoning and everything up to the end of transition j wait for action j
        for j, (_, end) in enumerate(transition_spans):
            out["actions"].append([start, end, j])
            start = end
    return out


# --------------------------------------------------------------------------------- characters -> tokens
def _span_labels(anchors: list[int], spans: list[list[int]]) -> list[int]:
    """For each character position in `anchors`, the label of the span [start, end) holding it, else -100."""
    starts = [s for s, _, _ in spans]
    labels = []
    for p in anchors:
        k = bisect.bisect_right(starts, p) - 1
        labels.append(spans[k][2] if k >= 0 and p < spans[k][1] else IGNORE)
    return labels


def token_labels(
    text: str, offsets: list[tuple[int, int]], response_start: int, spans: dict, spec: AuxLabelSpec
) -> dict:
    """Token-level label columns for a rendered conversation `text` tokenized with `offsets`, whose response
    starts at character `response_start` and carries the character `spans` of `response_spans`."""
    anchors = []  # a token sits where its first non-whitespace character is (BPE tokens carry leading spaces)
    for start, end in offsets:
        p = start
        while p < end and text[p].isspace():
            p += 1
        anchors.append((p if p < end else start) - response_start)
    columns: dict[str, list[int]] = {}
    if spec.steps:
        columns[STEP_COLUMN] = _span_labels(anchors, spans["steps"])
    if spec.states:
        columns[STATE_COLUMN] = _span_labels(anchors, spans["states"])
    if spec.actions:
        columns[CURSOR_COLUMN] = _span_labels(anchors, spans["actions"])
        columns[PLAN_COLUMN] = list(spans["plan"])
    return columns


def add_token_labels(
    dataset,
    tokenizer,
    spec: AuxLabelSpec,
    *,
    chat_template: str | None = None,
    max_length: int | None = None,
    truncation_mode: str = "keep_start",
    num_proc: int | None = None,
):
    """Map a dataset that TRL's SFTTrainer has prepared (prompt, completion, input_ids, aux_spans) to the token
    label columns of `spec`, aligned with its (possibly truncated) input_ids; drops `aux_spans`."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("cognitive_modules aux losses need a fast tokenizer (for its offset mapping)")
    if truncation_mode not in ("keep_start", "keep_end"):
        raise UserError(f"truncation_mode: {truncation_mode!r} is not supported with cognitive_modules aux losses")
    keep = (
        slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length if max_length else None, None)
    )

    def label_row(row):
        messages = row["prompt"] + row["completion"]
        text = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=chat_template)
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if encoded["input_ids"][keep] != row["input_ids"]:
            raise UserError(
                "cognitive_modules aux losses: the chat template tokenized with offsets does not give TRL's input_ids "
                "for this tokenizer, so the labels cannot be aligned; set every aux_loss_weight to 0"
            )
        response = row["completion"][-1]["content"]
        response_start = text.rfind(response)
        if response_start < 0:
            raise UserError(
                "cognitive_modules aux losses: the chat template alters the response text; "
                "set every aux_loss_weight to 0"
            )
        columns = token_labels(text, encoded["offset_mapping"], response_start, json.loads(row[SPANS_COLUMN]), spec)
        return {k: (v if k == PLAN_COLUMN else v[keep]) for k, v in columns.items()}

    kwargs = {"num_proc": num_proc, "desc": "Aligning auxiliary labels"} if hasattr(dataset, "num_rows") else {}
    return dataset.map(label_row, remove_columns=[SPANS_COLUMN], **kwargs)


# --------------------------------------------------------------------------------- batches
def _pad(rows: list[list[int]], length: int):
    import torch

    out = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def expand_actions(cursors, plans: list[list[int]], horizon: int):
    """[B, T, horizon] action labels from per-token plan cursors [B, T] (-100 = none) and each row's plan:
    labels[b, t, h] = plans[b][cursor + h] where that exists, else -100."""
    import torch

    B, T = cursors.shape
    out = torch.full((B, T, horizon), IGNORE, dtype=torch.long)
    steps = torch.arange(horizon)
    for b, plan in enumerate(plans):
        table = torch.tensor(list(plan) + [IGNORE], dtype=torch.long)  # the last entry: "past the end"
        index = cursors[b].unsqueeze(-1) + steps  # [T, horizon]
        valid = (cursors[b].unsqueeze(-1) >= 0) & (index < len(plan))
        out[b] = table[torch.where(valid, index, len(plan))]
    return out


@dataclass
class AuxLabelCollator:
    """Wraps TRL's collator: adds step_labels / state_labels [B, T] and action_labels [B, T, horizon], padded with
    -100 on the right to the batch's length (TRL pads input_ids on the right)."""

    collator: Callable
    spec: AuxLabelSpec

    def __call__(self, examples: list[dict]) -> dict:
        missing = [c for c in self.spec.columns if c not in examples[0]]
        if missing:
            raise ValueError(
                f"batch has no {missing[0]} column: cognitive_modules aux losses need the datasets prepared by "
                "CognitiveSFTTrainer from load_sft_datasets (no skip_prepare_dataset)"
            )
        for ex in examples:
            for column in self.spec.columns:
                if column != PLAN_COLUMN and len(ex[column]) != len(ex["input_ids"]):
                    raise ValueError(f"{column} has {len(ex[column])} labels for {len(ex['input_ids'])} tokens")
        batch = self.collator(examples)
        length = batch["input_ids"].shape[1]
        if self.spec.steps:
            batch["step_labels"] = _pad([ex[STEP_COLUMN] for ex in examples], length)
        if self.spec.states:
            batch["state_labels"] = _pad([ex[STATE_COLUMN] for ex in examples], length)
        if self.spec.actions:
            cursors = _pad([ex[CURSOR_COLUMN] for ex in examples], length)
            batch["action_labels"] = expand_actions(
                cursors, [ex[PLAN_COLUMN] for ex in examples], self.spec.planning_horizon
            )
        return batch
