"""The training record of the design guide, as pydantic v2 models.

Field names and the `to_training_format()` output are the guide's (users' existing JSON must load
unchanged). One optional field is added: `problem_spec`, the structured problem a generator solved, so
that an independent checker can re-solve it. Records without it (hand-written or teacher data) can only
be checked as far as their text allows and are otherwise flagged unverifiable.

    example = CognitiveTrainingExample.model_validate_json(line)
    example.to_training_format()  # {"messages": [system, user, assistant], "metadata": {...}}
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cognitive.atomic import open_atomic
from cognitive.data import response
from cognitive.errors import UserError, load_yaml_mapping, read_jsonl
from cognitive.tasks import ReasoningType


class DifficultyLevel(str, Enum):
    BASIC = "basic"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"
    EXPERT = "expert"


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a field name must not silently drop data.
    model_config = ConfigDict(extra="forbid")


class ReasoningStep(_Strict):
    step: int
    description: str
    reasoning: str = ""
    memory_update: str = ""


class StateTransition(_Strict):
    step: int
    from_state: str
    to_state: str
    action: str = ""
    rationale: str = ""
    estimated_time: str | None = None


class CognitiveTrainingExample(_Strict):
    """One training example (the guide's `CognitiveTrainingExample`)."""

    # Identifiers
    id: str
    task_type: ReasoningType
    difficulty: DifficultyLevel
    domain: str
    # Input
    context: str
    instruction: str
    constraints: list[str] | None = None
    # Reasoning
    reasoning_steps: list[ReasoningStep]
    state_transitions: list[StateTransition] | None = None
    memory_usage: list[str] | None = None
    # Output
    final_answer: str
    confidence_score: float | None = Field(default=None, ge=0.0, le=1.0)
    # Provenance
    generated_by: str
    verified: bool = False
    quality_score: float | None = Field(default=None, ge=0.0, le=1.0)
    # Added by this project (optional): the structured problem, for independent re-checking.
    problem_spec: dict[str, Any] | None = None

    def to_training_format(self) -> dict[str, Any]:
        """The guide's chat layout: system prompt, user turn (context + instruction), assistant response."""
        return {
            "messages": [
                {"role": "system", "content": self.system_prompt()},
                {"role": "user", "content": self.user_prompt()},
                {"role": "assistant", "content": self.response()},
            ],
            "metadata": {
                "task_type": self.task_type.value,
                "difficulty": self.difficulty.value,
                "domain": self.domain,
                "quality_score": self.quality_score,
            },
        }

    def system_prompt(self) -> str:
        return response.system_prompt(self.task_type.value, self.difficulty.value, self.domain, self.constraints)

    def user_prompt(self) -> str:
        return response.user_prompt(self.context, self.instruction)

    def response(self) -> str:
        return response.render_response(self)


class DatasetSplit(_Strict):
    train_ratio: float = 0.8
    val_ratio: float = 0.1
    test_ratio: float = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> DatasetSplit:
        total = self.train_ratio + self.val_ratio + self.test_ratio
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train_ratio + val_ratio + test_ratio must sum to 1, got {total:g}")
        return self


def _check_distribution(name: str, dist: dict[Any, float]) -> dict[Any, float]:
    if any(v < 0 for v in dist.values()):
        raise ValueError(f"{name} has a negative share: {dist}")
    total = sum(dist.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got {total:g}")
    return dist


class DatasetConfiguration(_Strict):
    """What to generate: the guide's `DatasetConfiguration`, loaded from data/configs/*.yaml."""

    target_size: int = Field(gt=0)
    task_distribution: dict[ReasoningType, float]
    difficulty_distribution: dict[DifficultyLevel, float]
    domain_distribution: dict[str, float]
    synthetic_ratio: float = Field(default=0.8, ge=0.0, le=1.0)
    quality_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    split: DatasetSplit = DatasetSplit()
    seed: int = 0
    # Pipeline settings (cognitive.data.build); all optional, the guide's keys above are unchanged.
    tokenizer: str = "embedded:smollm2-135m-instruct"  # for token-length limits; "whitespace" = approximate
    max_tokens: int = Field(default=2048, gt=0)  # longest chat-formatted example kept
    # The response style max_tokens measures (cognitive.data.response.RESPONSE_STYLES; the prompt is always the
    # guide's, the longest): the style the data trains with ("concise" for response_style concise).
    length_style: str = "guide"
    near_duplicate_threshold: float = Field(default=0.7, gt=0.0, le=1.0)  # MinHash Jaccard
    curated_files: list[str] = []  # JSONL records that fill (1 - synthetic_ratio) of target_size
    eval_dir: str | None = None  # decontaminate against every <eval_dir>/*.jsonl; default: the project's eval/data
    max_attempts: int = Field(default=8, gt=0)  # seeds tried per slot before it is left empty
    shard_size: int = Field(default=200_000, gt=0)  # rows per JSONL shard

    @field_validator("task_distribution", "difficulty_distribution", "domain_distribution")
    @classmethod
    def _sum_to_one(cls, v: dict, info) -> dict:
        return _check_distribution(info.field_name, v)

    @field_validator("length_style")
    @classmethod
    def _known_style(cls, v: str) -> str:
        if v not in response.RESPONSE_STYLES:
            raise ValueError(f"unknown response style {v!r} (known: {', '.join(response.RESPONSE_STYLES)})")
        return v

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetConfiguration:
        raw = load_yaml_mapping(path, "data config")
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise UserError(f"{path}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "<record>"
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"key '{loc}': {err['msg']}{more}"


def parse_example(line: str, where: str = "<input>") -> CognitiveTrainingExample:
    """Parse one JSON record; errors name `where` (e.g. 'file.jsonl:12') and the offending key."""
    try:
        return CognitiveTrainingExample.model_validate_json(line)
    except ValidationError as e:
        if e.errors()[0]["type"] == "json_invalid":
            raise UserError(f"{where}: not valid JSON ({e.errors()[0]['msg']})") from None
        raise UserError(f"{where}: {_first_error(e)}") from None


def validate_record(record: dict, where: str = "<input>") -> CognitiveTrainingExample:
    """A parsed JSON object as a record; a missing, unknown or mistyped field is a UserError naming `where` and it."""
    try:
        return CognitiveTrainingExample.model_validate(record)
    except ValidationError as e:
        raise UserError(f"{where}: {_first_error(e)}") from None


def iter_records(path: str | Path) -> Iterator[tuple[str, CognitiveTrainingExample]]:
    """('file:line', example) for every record of a JSONL file (a `.json` file: one record), read by the project's
    one JSONL reader (cognitive.errors.read_jsonl: invalid UTF-8, a line that is not a JSON object, an overlong line
    are one-line errors naming file and line), each validated (validate_record)."""
    for where, record in read_jsonl(path):
        yield where, validate_record(record, where)


def iter_jsonl(path: str | Path) -> Iterator[CognitiveTrainingExample]:
    """The examples of a JSONL file (one record per line; a single JSON object file also works): iter_records."""
    for _, example in iter_records(path):
        yield example


def write_jsonl(examples, path: str | Path) -> int:
    """Write examples atomically (temp file + rename). Returns the count."""
    n = 0
    with open_atomic(path) as f:
        for ex in examples:
            f.write(ex.model_dump_json(exclude_none=True) + "\n")
            n += 1
    return n
