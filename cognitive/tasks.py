"""The registry of task types: the one place that lists them. Everything else reads it.

A task type lives in three places:
  1. its generator module (cognitive/data/generators/<name>.py): `generate(rng, difficulty, domain)` -> the
     record's fields, its independent `check(example, strict)` -> problems, its scorer `score(output, problem_spec)`
     -> {metric: value in [0, 1], "answered": ...} and, where it has them, the optional hooks below;
  2. its entry here (a `TaskType`): the record's `task_type` value, the id prefix, the generator module, the lm-eval
     task and its metrics (the first one is the headline `score`), the prompts' phrasings, the eval's token limit;
  3. its eval snapshot, eval/data/<eval_task>.jsonl, built with `python recipes/snapshots.py --task <eval_task>`,
     which also writes its task YAMLs (eval/tasks/cognitive/<eval_task>.yaml and <eval_task>_plain.yaml) from
     this entry.
Nothing else branches on a task's name: the data pipeline, scoring, the rewards (cognitive/rl/rewards.py) and the
auxiliary labels (cognitive/train/aux_labels.py) reach the type's code through its entry (docs/adding-a-task-type.md).

Optional hooks of a generator module (`TaskType.hook(name)`; absent: the default in parentheses):
    step_validity(text, problem_spec) -> float | None   the step_validity reward (the share of the arithmetic steps
                                                        written that hold; None without one)
    state_steps(text, problem_spec) -> float | None     the opt-in state_steps reward (None: not this type's)
    plan_actions(example) -> [task name] | None         the planning module's action labels (None: none)
    INSTRUCTION_PREFIX                                  training-style prefixes of the instruction that the user
                                                        and plain prompts drop (none)

    from cognitive import tasks
    task = tasks.get("planning")                 # by task_type value, eval task name or short id
    task.generator_module().generate(rng, "basic", "cooking")
    task.scorer_function()(model_output, problem_spec)      # {"valid": 1.0, "optimal": 0.0, "answered": 1.0}

Generator modules are named, not imported, here: the data schema builds its `ReasoningType` enum from this registry,
and the generators import the schema, so importing them from this module would be a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cognitive.errors import UserError

# Every task type is generated in every domain, so task and domain mixes can be set independently.
DOMAINS = ("shopping", "cooking", "physics", "finance")


@dataclass(frozen=True)
class TransferTask:
    """A third-party task (reasoning-gym, PyPI) that exercises a task type on problems our generators did not
    write: `config` is the reasoning-gym dataset's config, sized so that a 1.5B model can attempt it."""

    name: str  # the reasoning-gym dataset, e.g. "chain_sum"
    config: dict = field(default_factory=dict, hash=False)

    @property
    def eval_task(self) -> str:
        return f"cognitive_transfer_{self.name}"


@dataclass(frozen=True)
class TaskType:
    name: str  # the record's task_type (a ReasoningType value), e.g. "chain_of_thought"
    short: str  # id prefix of generated records: "cot-basic-shopping-7"
    eval_task: str  # the lm-eval task on this type's eval snapshot (eval/tasks/cognitive/<eval_task>.yaml)
    generator: str  # its module: generate, check, score and the optional hooks (see above)
    metrics: tuple[str, ...]  # the scorer's metrics besides "answered"; the first is the headline `score`
    # The eval's generation limit (the task YAML's max_gen_toks): 1.25 x the longest reference response of the
    # snapshot (SmolLM2 tokens), rounded up to 64, so an answer in the trained format is never cut off
    # (tests/unit/test_snapshots.py checks >= 1.2 x).
    max_gen_toks: int = 1024
    # The plain variant (<eval_task>_plain): the same problems asked as a person would, no system prompt; the
    # request is one of these (phrasings the training data never uses; "{question}" is the record's own question).
    plain_requests: tuple[str, ...] = ()
    # The training prompts' "user" style (cognitive.data.response.PROMPT_STYLES): the record's question in one of
    # these phrasings, no system prompt. Never one of the plain requests: the plain suite stays unseen wording.
    train_requests: tuple[str, ...] = ()
    transfer: tuple[TransferTask, ...] = ()  # third-party tasks of this type (the cognitive_transfer group)
    # Third-party tasks of this type to train on (recipe setting practice_problems, cognitive/data/practice.py):
    # never a transfer task, so the transfer suite stays problems no training row comes from.
    practice: tuple[TransferTask, ...] = ()
    standard: tuple[str, ...] = ()  # stock lm-eval tasks of this skill (the cognitive_standard group; needs the Hub)
    fast_check: bool = True  # in the in-training check (False: trained answers too long for it)
    # The correctness reward of RL (cognitive/rl/rewards.py): {metric: weight} over the scorer's metrics, weights
    # summing to 1, for partial credit (a valid but slower plan, some logic-grid cells right); empty: the headline.
    reward_credit: dict = field(default_factory=dict, hash=False)

    @property
    def headline(self) -> str:
        return self.metrics[0]

    @property
    def plain_task(self) -> str:
        return f"{self.eval_task}_plain"

    def generator_module(self):
        return importlib.import_module(self.generator)

    def scorer_function(self) -> Callable[[str | None, dict], dict[str, float]]:
        """The generator module's `score(output, problem_spec)`."""
        return self.generator_module().score

    def hook(self, name: str):
        """The generator module's optional hook `name` (see the module docstring), or None when it has none."""
        return getattr(self.generator_module(), name, None)

    def credit(self) -> dict[str, float]:
        """{metric: weight} of the correctness reward (reward_credit, default: the headline metric alone)."""
        return dict(self.reward_credit) or {self.headline: 1.0}

    def zero_metrics(self) -> dict[str, float]:
        """What an unscorable output gets: 0 on every metric."""
        return {**dict.fromkeys(self.metrics, 0.0), "answered": 0.0}


_GENERATORS = "cognitive.data.generators"

TASK_TYPES: tuple[TaskType, ...] = (
    TaskType(
        name="chain_of_thought",
        short="cot",
        eval_task="cognitive_reasoning",
        generator=f"{_GENERATORS}.chain_of_thought",
        metrics=("exact_match",),
        max_gen_toks=640,
        train_requests=(
            "{question} Please work it out.",
            "{question} Show me how you get there.",
            "Can you figure this out? {question}",
            "{question} Go through it one step at a time.",
        ),
        plain_requests=(
            "{question} I'd like to know the number.",
            "{question} What do you make it?",
            "Quick one: {question}",
            "{question} Just give me your best figure.",
        ),
        transfer=(
            TransferTask("chain_sum", dict(min_terms=2, max_terms=4, min_digits=1, max_digits=2)),
            TransferTask(
                "basic_arithmetic",
                dict(
                    min_terms=2, max_terms=3, min_digits=1, max_digits=2, allow_parentheses=False, allow_negation=False
                ),
            ),
            TransferTask("gsm_symbolic"),
        ),
        practice=(
            TransferTask("leg_counting", dict(min_animals=2, max_animals=4, max_instances=12)),
            TransferTask("products", dict(min_digits=1, max_digits=2)),
        ),
        standard=("gsm8k_cot_zeroshot",),
    ),
    TaskType(
        name="planning",
        short="plan",
        eval_task="cognitive_planning",
        generator=f"{_GENERATORS}.planning",
        metrics=("valid", "optimal"),
        max_gen_toks=1856,
        reward_credit={"valid": 0.5, "optimal": 0.5},  # a valid plan earns half, the shortest one all
        train_requests=(
            "{question}",
            "Can you plan this for me? {question}",
            "{question} List each task's start and end.",
            "Please make a schedule. {question}",
        ),
        plain_requests=(
            "I need everything wrapped up at the earliest. When should each job start and end, and when will I be "
            "done?",
            "What timetable gets all of this done soonest? I want the start and finish minute of every job.",
            "Help me sort out the order of these jobs so I finish early. Start and finish times for each, please.",
            "How would you line these jobs up to wrap up fastest? Say when each one begins and finishes.",
        ),
        transfer=(
            TransferTask(
                "course_schedule",
                dict(
                    min_num_courses=3,
                    max_num_courses=5,
                    min_num_prerequisites=1,
                    max_num_prerequisites=2,
                    min_cycle_length=3,
                    max_cycle_length=3,
                ),
            ),
            TransferTask("shortest_path", dict(min_rows=3, max_rows=4, min_cols=3, max_cols=4)),
        ),
        fast_check=False,  # trained answers run to ~1k tokens
    ),
    TaskType(
        name="state_transition",
        short="state",
        eval_task="cognitive_state",
        generator=f"{_GENERATORS}.state_transition",
        metrics=("exact_match",),
        max_gen_toks=1536,
        train_requests=(
            "{question}",
            "{question} Follow the changes in order.",
            "Can you keep track of this? {question}",
            "{question} Go through each change.",
        ),
        plain_requests=(
            "{question} I lost track partway.",
            "{question} Can you follow it through for me?",
            "I got confused here. {question}",
        ),
        transfer=(
            TransferTask(
                "string_manipulation", dict(min_string_length=5, max_string_length=8, min_num_rules=3, max_num_rules=4)
            ),
            TransferTask("game_of_life", dict(grid_size_x=4, grid_size_y=4, filled_cells=4, simulation_steps=1)),
        ),
        practice=(TransferTask("spell_backward", dict(min_word_len=3, max_word_len=8)),),
        standard=("bbh_cot_zeroshot_tracking_shuffled_objects_three_objects",),
    ),
    TaskType(
        name="problem_solving",
        short="logic",
        eval_task="cognitive_logic",
        generator=f"{_GENERATORS}.problem_solving",
        metrics=("grid_accuracy", "cell_accuracy"),
        max_gen_toks=1536,
        reward_credit={"cell_accuracy": 1.0},  # the share of cells right (1 for the whole grid)
        train_requests=(
            "{question}",
            "Can you solve this puzzle? {question}",
            "{question} Use every clue.",
            "Here is a logic puzzle. {question}",
        ),
        plain_requests=(
            "Who ends up with what? I can't crack it.",
            "Can you match each person to their options using these hints?",
            "Work out which person goes with which option, please.",
        ),
        transfer=(
            TransferTask("knights_knaves", dict(n_people=2, depth_constraint=2, width_constraint=2)),
            TransferTask("zebra_puzzles", dict(num_people=3, num_characteristics=3)),
        ),
        practice=(TransferTask("syllogism"),),
        standard=("bbh_cot_zeroshot_logical_deduction_three_objects",),
    ),
    TaskType(
        name="memory_recall",
        short="memory",
        eval_task="cognitive_memory",
        generator=f"{_GENERATORS}.memory_recall",
        metrics=("exact_match",),
        max_gen_toks=512,
        train_requests=(
            "{question}",
            "{question} Look back through the story.",
            "From the story: {question}",
            "Can you remember? {question}",
        ),
        plain_requests=("{question} I don't remember.", "Quick check: {question}", "{question} Think back through it."),
        transfer=(
            TransferTask("needle_haystack", dict(min_num_statements=10, max_num_statements=30)),
            TransferTask("family_relationships", dict(min_family_size=3, max_family_size=5)),
        ),
        practice=(TransferTask("letter_counting", dict(min_words=5, max_words=10)),),
        standard=("babi",),
    ),
)

# The guide's enum of task types (the record's `task_type`), built from the registry: members such as
# ReasoningType.CHAIN_OF_THOUGHT == "chain_of_thought".
ReasoningType = Enum("ReasoningType", {t.name.upper(): t.name for t in TASK_TYPES}, type=str, module=__name__)

_BY_KEY = {key: t for t in TASK_TYPES for key in (t.name, t.short, t.eval_task)}


def get(key: str | Enum) -> TaskType:
    """The task type named by its task_type value (or ReasoningType member), eval task name or short id."""
    task = _BY_KEY.get(getattr(key, "value", key))
    if task is None:
        known = ", ".join(t.name for t in TASK_TYPES)
        raise UserError(f"unknown task type '{getattr(key, 'value', key)}' (known: {known})")
    return task


def eval_tasks() -> list[str]:
    """The lm-eval task of every task type, in registry order (the group `cognitive` runs them all)."""
    return [t.eval_task for t in TASK_TYPES]


def plain_tasks() -> list[str]:
    """The plain variant of every task type's task (the group `cognitive_plain`)."""
    return [t.plain_task for t in TASK_TYPES]


def transfer_tasks() -> list[TransferTask]:
    """Every third-party transfer task, in registry order (the group `cognitive_transfer`)."""
    return [x for t in TASK_TYPES for x in t.transfer]


def practice_tasks() -> list[TransferTask]:
    """Every third-party task training may practise on, in registry order (cognitive/data/practice.py)."""
    return [x for t in TASK_TYPES for x in t.practice]


def type_of(eval_task: str) -> TaskType:
    """The task type an lm-eval task of this project exercises (own, plain or transfer)."""
    for t in TASK_TYPES:
        if eval_task in (t.eval_task, t.plain_task, *(x.eval_task for x in t.transfer)):
            return t
    raise UserError(f"'{eval_task}' is no task of this project")
