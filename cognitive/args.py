"""The one config mechanism: TrlParser dataclasses + YAML recipes (`--config`) + CLI overrides.

    script_args, training_args, model_args = parse_sft_args()

* `ScriptArguments` (below): data and run options of this project.
* `trl.SFTConfig`: TrainingArguments + SFT options (output_dir, max_steps, learning_rate, deepspeed, ...).
* `trl.ModelConfig`: the base (`model_name_or_path`, hub id / local dir / `embedded:...`), LoRA and
  bitsandbytes options.

Unknown keys, in the YAML or on the command line, are a one-line error naming them. `--ds X` is accepted
as an alias of `--deepspeed X` (the project's launch command).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from cognitive.errors import UserError


@dataclass
class ScriptArguments:
    dataset_path: str = field(
        default="data/synthetic/demo",
        metadata={"help": "A .jsonl file of records, or a generated data directory (reads train*.jsonl)."},
    )
    eval_dataset_path: str | None = field(
        default=None,
        metadata={"help": "Evaluation records; default: validation*.jsonl of dataset_path when present."},
    )
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many."})
    max_eval_examples: int | None = field(default=200, metadata={"help": "Use at most this many."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing finished run dir."})
    cognitive_modules: dict[str, Any] | None = field(
        default=None, metadata={"help": "The guide's cognitive_modules block (YAML mapping)."}
    )


def _normalise_argv(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        if a == "--ds":
            out.append("--deepspeed")
        elif a.startswith("--ds="):
            out.append("--deepspeed=" + a[len("--ds=") :])
        else:
            out.append(a)
    return out


def _config_path(argv: list[str]) -> str | None:
    return argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None


def parse_sft_args(argv: list[str] | None = None):
    """Parse (ScriptArguments, SFTConfig, ModelConfig) from `--config <yaml>` and CLI overrides."""
    from trl import ModelConfig, SFTConfig, TrlParser

    argv = _normalise_argv(list(sys.argv[1:] if argv is None else argv))
    config_path = _config_path(argv)
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    known = {action.dest for action in parser._actions}
    if config_path is not None:
        unknown = sorted(set(_check_yaml(config_path)) - known - {"env"})
        if unknown:
            raise UserError(f"{config_path}: unknown key(s) {', '.join(unknown)}")
    _, unknown_cli = parser.parse_known_args([a for a in argv if a not in ("--config", config_path)])
    if unknown_cli:
        raise UserError(f"unknown command-line option(s): {' '.join(unknown_cli)}")
    try:
        return parser.parse_args_and_config(argv)
    except ValueError as e:
        msg = str(e).splitlines()[0]
        if "bf16" in msg and "use_cpu" in msg:
            msg = "bf16 is on (the SFTConfig default) but this machine has no GPU: pass --bf16 false or use a CPU recipe"
        raise UserError(f"{config_path or 'command line'}: {msg}") from None


def _check_yaml(path: str) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise UserError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of keys to values")
    return data
