"""Auxiliary-loss labels (cognitive/train/aux_labels.py): the tokens carrying each label decode to the right text, the
planning head's labels are the plan's next actions, truncation and padding keep them aligned with input_ids."""

from __future__ import annotations

import itertools
import json
import zlib

import pytest
import torch

from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep, StateTransition
from cognitive.errors import UserError
from cognitive.model.inject import config_from_dict
from cognitive.train.aux_labels import (
    IGNORE,
    SPANS_COLUMN,
    AuxLabelCollator,
    AuxLabelSpec,
    add_token_labels,
    check_padded_batches,
)
from cognitive.train.sft_data import sft_dataset

SPEC = AuxLabelSpec(steps=True, states=True, actions=True, num_states=3, planning_horizon=3, action_space_size=16)


def planted_example() -> CognitiveTrainingExample:
    """9 reasoning steps (the 9th shares class 7 with the 8th) and 5 transitions over 4 distinct to_states, one
    revisited (num_states 3: the 4th distinct state wraps to 0)."""
    steps = [
        ReasoningStep(
            step=i + 1,
            description=f"Step number {i + 1} of the work",
            reasoning=f"{i} + 1 = {i + 1}",
            memory_update=f"count: {i + 1}" if i % 2 else "",
        )
        for i in range(9)
    ]
    states = ["kitchen", "hall", "kitchen", "garden", "attic"]  # first appearance: kitchen 0, hall 1, garden 2, attic 3
    transitions = [
        StateTransition(
            step=j + 1,
            from_state="start" if j == 0 else states[j - 1],
            to_state=s,
            action=f"Walk to the {s}",
            rationale="it is next" if j % 2 else "",
        )
        for j, s in enumerate(states)
    ]
    return CognitiveTrainingExample(
        id="planted-1",
        task_type="state_transition",
        difficulty="basic",
        domain="cooking",
        context="A walk through the house.",
        instruction="Where does the walk end?",
        reasoning_steps=steps,
        state_transitions=transitions,
        final_answer="In the attic.",
        generated_by="test",
    )


def step_text(i: int, step: ReasoningStep) -> str:
    text = f"{i + 1}. {step.description}\n   Reasoning: {step.reasoning}"
    return text + (f"\n   Memory: {step.memory_update}" if step.memory_update else "")


def transition_text(t: StateTransition) -> str:
    text = f"State: {t.from_state} → {t.to_state}\nAction: {t.action}"
    return text + (f"\nRationale: {t.rationale}" if t.rationale else "")


def prepared(examples, tokenizer, spec=SPEC, max_length=None, truncation_mode="keep_start"):
    """Rows as TRL's SFTTrainer leaves them (input_ids from the chat template, truncated), then labelled."""
    dataset = sft_dataset(examples, spec)

    def tokenize(row):  # what TRL's tokenize_fn does for conversational prompt-completion rows
        ids = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
        keep = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
        return {"input_ids": ids[keep]}

    dataset = dataset.map(tokenize)
    return add_token_labels(dataset, tokenizer, spec, max_length=max_length, truncation_mode=truncation_mode)


def runs(ids, labels):
    """[(label, decoded text)] for each run of consecutive tokens with the same label other than -100."""
    out = []
    for label, group in itertools.groupby(zip(ids, labels), key=lambda pair: pair[1]):
        if label != IGNORE:
            out.append((label, [i for i, _ in group]))
    return out


def test_step_labels_cover_exactly_each_steps_text(embedded_tokenizer):
    ex = planted_example()
    row = prepared([ex], embedded_tokenizer)[0]
    got = [(label, embedded_tokenizer.decode(ids)) for label, ids in runs(row["input_ids"], row["step_labels"])]
    # steps 1..8 are classes 0..7; step 9 shares class 7 (the "\n\n" between steps has no label)
    assert got == [(min(i, 7), step_text(i, s)) for i, s in enumerate(ex.reasoning_steps)]
    assert len(row["step_labels"]) == len(row["input_ids"])


def test_state_labels_cover_each_transition_by_first_appearance(embedded_tokenizer):
    ex = planted_example()
    row = prepared([ex], embedded_tokenizer)[0]
    got = [(label, embedded_tokenizer.decode(ids)) for label, ids in runs(row["input_ids"], row["state_labels"])]
    assert got == [(state, transition_text(t)) for state, t in zip([0, 1, 0, 2, 0], ex.state_transitions)]


def test_prompt_and_final_answer_carry_no_label(embedded_tokenizer):
    ex = planted_example()
    row = prepared([ex], embedded_tokenizer)[0]
    labelled = [
        i for i, (a, b) in enumerate(zip(row["step_labels"], row["state_labels"])) if a != IGNORE or b != IGNORE
    ]
    before, after = row["input_ids"][: labelled[0]], row["input_ids"][labelled[-1] + 1 :]
    assert embedded_tokenizer.decode(before).endswith("**Reasoning Process:**\n\n")
    assert "Where does the walk end?" in embedded_tokenizer.decode(before)
    assert embedded_tokenizer.decode(after) == f"\n\n\n**Final Answer:** {ex.final_answer}<|im_end|>\n"
    assert row["plan_actions"] == [] and set(row["action_cursor"]) == {IGNORE}  # not a planning example


def test_action_labels_are_the_plans_next_actions(embedded_tokenizer):
    from cognitive.data.generators import generate_example

    ex = generate_example("planning", "basic", 1)
    plan = ex.problem_spec["answer"]["plan"]
    order = sorted(plan, key=lambda name: (plan[name][0], name))  # the plan, in start order
    ids = [zlib.crc32(name.encode()) % SPEC.action_space_size for name in order]
    H = SPEC.planning_horizon
    row = prepared([ex], embedded_tokenizer)[0]
    collator = AuxLabelCollator(lambda rows: {"input_ids": torch.tensor([r["input_ids"] for r in rows])}, SPEC)
    actions = collator([row])["action_labels"][0].tolist()  # [T, H]
    tokens = row["input_ids"]
    prompt = sft_dataset([ex])[0]["prompt"]
    response_start = len(
        embedded_tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)[
            "input_ids"
        ]
    )
    transitions = [transition_text(t) for t in ex.state_transitions]
    assert len(transitions) == len(order)
    for t in range(len(tokens)):
        before = embedded_tokenizer.decode(tokens[:t])
        finished = sum(text in before for text in transitions)  # transitions written out before token t
        if t < response_start or finished == len(order):  # prompt, and everything after the last transition
            assert actions[t] == [IGNORE] * H, (t, before[-40:])
        else:  # the next H actions, from the first one whose transition is not finished
            assert actions[t] == (ids[finished : finished + H] + [IGNORE] * H)[:H], (t, before[-60:])
    # the reasoning waits for the whole plan; the last transition's tokens have one action left
    assert actions[response_start] == ids[:H]
    last = max(t for t in range(len(tokens)) if actions[t][0] != IGNORE)
    assert actions[last] == [ids[-1]] + [IGNORE] * (H - 1)
    assert embedded_tokenizer.decode(tokens[: last + 1]).endswith(transitions[-1])


def test_truncation_keeps_labels_aligned_with_trls_input_ids(embedded_tokenizer):
    ex = planted_example()
    full = prepared([ex], embedded_tokenizer)[0]
    for mode in ("keep_start", "keep_end"):
        row = prepared([ex], embedded_tokenizer, max_length=200, truncation_mode=mode)[0]
        keep = slice(None, 200) if mode == "keep_start" else slice(-200, None)
        assert row["input_ids"] == full["input_ids"][keep]
        for column in ("step_labels", "state_labels", "action_cursor"):
            assert row[column] == full[column][keep]


def test_input_ids_that_do_not_match_are_refused(embedded_tokenizer):
    dataset = prepared([planted_example()], embedded_tokenizer).remove_columns(
        ["step_labels", "state_labels", "action_cursor", "plan_actions"]
    )
    dataset = sft_dataset([planted_example()], SPEC).add_column("input_ids", [dataset[0]["input_ids"][1:]])
    with pytest.raises(UserError, match="cannot be aligned"):
        add_token_labels(dataset, embedded_tokenizer, SPEC)


def test_collator_pads_labels_on_the_right_to_the_batch_length():
    spec = AuxLabelSpec(steps=True, states=True, actions=True, num_states=4, planning_horizon=2, action_space_size=8)
    rows = [
        {
            "input_ids": [5, 6, 7],
            "step_labels": [IGNORE, 0, 1],
            "state_labels": [IGNORE, IGNORE, 3],
            "action_cursor": [0, 1, IGNORE],
            "plan_actions": [4, 2],
        },
        {
            "input_ids": [5, 6],
            "step_labels": [2, 2],
            "state_labels": [1, 1],
            "action_cursor": [IGNORE, IGNORE],
            "plan_actions": [],
        },
    ]

    def trl_like(rows):  # right padding, as TRL's DataCollatorForLanguageModeling
        return {"input_ids": torch.tensor([r["input_ids"] + [0] * (4 - len(r["input_ids"])) for r in rows])}

    batch = AuxLabelCollator(trl_like, spec)(rows)
    assert batch["step_labels"].tolist() == [[IGNORE, 0, 1, IGNORE], [2, 2, IGNORE, IGNORE]]
    assert batch["state_labels"].tolist() == [[IGNORE, IGNORE, 3, IGNORE], [1, 1, IGNORE, IGNORE]]
    assert batch["action_labels"].tolist() == [
        [[4, 2], [2, IGNORE], [IGNORE, IGNORE], [IGNORE, IGNORE]],
        [[IGNORE, IGNORE]] * 4,
    ]
    rows[0]["step_labels"] = [0, 1]
    with pytest.raises(ValueError, match="2 labels for 3 tokens"):
        AuxLabelCollator(trl_like, spec)(rows)


def test_labels_only_for_weighted_losses():
    block = {
        "working_memory": {"enabled": False},
        "reasoning_heads": {"aux_loss_weight": 0.5},
        "state_tracking": {"enabled": False, "aux_loss_weight": 1.0},
        "planning_module": {},
    }
    spec = AuxLabelSpec.from_config(config_from_dict(block))
    assert (spec.steps, spec.states, spec.actions) == (True, False, False)  # the state module is off
    assert spec.columns == ("step_labels",)
    assert AuxLabelSpec.from_config(config_from_dict({})) is None  # every weight 0: nothing computed
    assert AuxLabelSpec.from_config(None) is None
    assert SPANS_COLUMN not in sft_dataset([planted_example()]).column_names
    spans = json.loads(sft_dataset([planted_example()], spec)[0][SPANS_COLUMN])
    assert len(spans["steps"]) == 9 and spans["states"] == [] and spans["actions"] == []


def test_packing_and_padding_free_are_refused():
    check_padded_batches(None, packing=True, padding_free=True)  # no aux loss: anything goes
    check_padded_batches(SPEC, packing=False, padding_free=False)
    for packing, padding_free in ((True, False), (False, True)):
        with pytest.raises(UserError, match="need padded batches"):
            check_padded_batches(SPEC, packing=packing, padding_free=padding_free)
