"""The one config mechanism: TrlParser dataclasses + YAML recipes (`--config`) + CLI overrides.

    script_args, training_args, model_args = parse_sft_args()     # recipes/sft.py
    script_args, training_args, model_args = parse_grpo_args()    # recipes/grpo.py

* `ScriptArguments` / `GRPOScriptArguments` (below): data and run options of this project.
* `trl.SFTConfig` / `trl.GRPOConfig`: TrainingArguments + the trainer's options (output_dir, max_steps, ...).
* `trl.ModelConfig`: the base (`model_name_or_path`, hub id / local dir / `embedded:...`), LoRA and
  bitsandbytes options.

Unknown keys, in the YAML or on the command line, are a one-line error naming them. `--ds X` is accepted
as an alias of `--deepspeed X` (the project's launch command). The dataclasses declare the arguments; what they mean
together is checked and resolved once, by cognitive/train/sft_config.py (SFT) and cognitive/rl/grpo_config.py (GRPO).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cognitive import PROJECT_ROOT
from cognitive.errors import ArgumentParser, UserError, load_yaml_mapping
from cognitive.model import base as model_base

DEFAULT_RECIPE = PROJECT_ROOT / "recipes" / "configs" / "cognitive_1.5b.yaml"
DEFAULT_GRPO_RECIPE = PROJECT_ROOT / "recipes" / "configs" / "grpo_1.5b.yaml"


CPU_PRECISIONS = ("auto", "recipe")  # RunArguments.cpu_precision


@dataclass
class RunArguments:
    """What every training recipe of this project has (SFT: ScriptArguments, GRPO: GRPOScriptArguments)."""

    overwrite: bool = field(default=False, metadata={"help": "Replace an existing finished run dir."})
    gpu: str | None = field(
        default=None,
        metadata={
            "help": "Card to check the memory estimate against before loading (e.g. 3090ti); "
            "default: the GPU present, none on a CPU machine."
        },
    )
    cognitive_modules: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "The guide's cognitive_modules block (a YAML mapping; on the command line, JSON)."},
    )
    cpu_heap_trim_mb: int = field(
        default=0,
        metadata={
            "help": "On a CPU with glibc: malloc_trim before a decoder layer runs when the RSS has grown by more than "
            "this many MiB since the last trim (returns gradient checkpointing's freed working sets; "
            "cognitive/train/heap.py; the preflight estimates the untrimmed peak). 0: off."
        },
    )
    cpu_precision: str = field(
        default="auto",
        metadata={
            "help": "On a CPU (use_cpu: true): auto trains as the recipe says (bf16) where the CPU has native bf16 "
            "matmuls (AMX / AVX512-BF16) and in fp32 (dtype float32, bf16 false) where it has not, said in one line "
            "(bf16 is emulated there: several times slower; experiments/cpu_speed run 8); recipe: the recipe's "
            "settings as written."
        },
    )
    prompt_styles: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Weights of the training prompts' styles: guide (system prompt + Context/Instruction), user "
            "(no system prompt, a phrased request), question (the plain question); a YAML mapping, on the command "
            "line JSON or one style's name. Default: a third each."
        },
    )

    def __post_init__(self):  # a command-line string into a value; the checks: sft_config.py, rl/grpo_config.py
        if self.cpu_heap_trim_mb is None:  # run_config.yaml of runs made when unset meant off
            self.cpu_heap_trim_mb = 0
        if self.cpu_precision not in CPU_PRECISIONS:
            raise UserError(f"cpu_precision: expected one of {', '.join(CPU_PRECISIONS)}, got {self.cpu_precision!r}")
        if isinstance(self.prompt_styles, str) and self.prompt_styles.lstrip().startswith("{"):
            self.prompt_styles = _json_value("prompt_styles", self.prompt_styles)
        if isinstance(self.cognitive_modules, str):  # a command-line override: JSON, like TrainingArguments' dicts
            self.cognitive_modules = _json_value("cognitive_modules", self.cognitive_modules)
            if not isinstance(self.cognitive_modules, dict):
                raise UserError(
                    '--cognitive_modules: expected a JSON object, e.g. \'{"working_memory": {"enabled": false}}\''
                )


def _json_value(key: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--{key}: not valid JSON ({e.msg} at column {e.colno})") from None


@dataclass
class ScriptArguments(RunArguments):
    """recipes/sft.py: the records it trains on and how they are rendered."""

    dataset_path: str = field(
        default="data/synthetic/cpu_mix",
        metadata={"help": "A .jsonl file of records, or a generated data directory (reads train*.jsonl)."},
    )
    eval_dataset_path: str | None = field(
        default=None,
        metadata={"help": "Evaluation records; default: validation*.jsonl of dataset_path when present."},
    )
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many."})
    max_eval_examples: int | None = field(default=200, metadata={"help": "Use at most this many."})
    response_style: str = field(
        default="guide",
        metadata={
            "help": "guide (the guide's Reasoning Process layout), concise (short steps, a Final Answer line) or "
            "column (concise, sums and differences worked one column at a time)."
        },
    )
    arithmetic_drills: float = field(
        default=0.0,
        metadata={
            "help": "The share of training rows that are arithmetic worksheets (cognitive.data.drills: sums, "
            "differences and products, answered with column working in response_style column, else directly); "
            "0: none."
        },
    )
    practice_problems: float = field(
        default=0.0,
        metadata={
            "help": "The share of training rows that are third-party practice problems (cognitive.data.practice: "
            "reasoning-gym datasets the transfer suite does not hold, answered with verified working); 0: none."
        },
    )


@dataclass
class GRPOScriptArguments(RunArguments):
    """recipes/grpo.py: where it starts, the prompts it generates and the rewards that score the completions."""

    init_from: str | None = field(
        default=None,
        metadata={
            "help": "A finished SFT run dir (runs/<name>): continue from its LoRA adapter and cognitive modules. "
            "Default: LoRA from scratch on the bare base."
        },
    )
    data_config: str = field(
        default="data/configs/cpu_mix.yaml",
        metadata={"help": "The task, difficulty and domain mix of the prompts (a data config, data/configs/*.yaml)."},
    )
    task_types: list[str] | None = field(
        default=None,
        metadata={
            "help": "Generate only these task types (cognitive.tasks), in equal shares; default: data_config's "
            "task mix. Reward only reaches a type the policy sometimes gets right."
        },
    )
    difficulties: list[str] | None = field(
        default=None,
        metadata={
            "help": "Generate only these difficulties (e.g. [basic]), in equal shares; default: "
            "data_config's difficulty mix. Easier prompts give groups with some right completions."
        },
    )
    num_prompts: int = field(default=1000, metadata={"help": "Problems generated (seeds from RL_SEEDS)."})
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Prompts from records instead (a .jsonl file or a data directory's train*.jsonl)."},
    )
    max_prompt_tokens: int | None = field(
        default=512, metadata={"help": "Longer generated prompts are replaced by the slot's next problem."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["correctness", "work_then_answer", "step_validity", "no_loop"],
        metadata={
            "help": "Rewards by name (cognitive.rl.rewards.REWARDS; an unknown name's error lists them); their "
            "weights are reward_weights, in the same order."
        },
    )


def normalise_argv(argv: list[str]) -> list[str]:
    """`--ds X` / `--ds=X` (the project's launch command) as `--deepspeed X`."""
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


def sft_parser():
    """The TrlParser of recipes/sft.py: (ScriptArguments, SFTConfig, ModelConfig)."""
    from trl import SFTConfig

    return recipe_parser(ScriptArguments, SFTConfig)


def grpo_parser():
    """The TrlParser of recipes/grpo.py: (GRPOScriptArguments, GRPOConfig, ModelConfig)."""
    from trl import GRPOConfig

    return recipe_parser(GRPOScriptArguments, GRPOConfig)


def parse_sft_args(argv: list[str] | None = None):
    """Parse (ScriptArguments, SFTConfig, ModelConfig) from `--config <yaml>` and CLI overrides."""
    return parse_recipe_args(argv, sft_parser(), DEFAULT_RECIPE)


def parse_grpo_args(argv: list[str] | None = None):
    """Parse (GRPOScriptArguments, GRPOConfig, ModelConfig) from `--config <yaml>` and CLI overrides."""
    parsed = parse_recipe_args(argv, grpo_parser(), DEFAULT_GRPO_RECIPE)
    if (parsed[1].gradient_checkpointing_kwargs or {}).get("every_n_layers", 1) != 1:
        raise UserError(  # TRL re-enables checkpointing after generating with these kwargs as torch checkpoint's own
            "gradient_checkpointing_kwargs: every_n_layers is for SFT recipes; TRL's GRPOTrainer passes it on to "
            "torch.utils.checkpoint, which rejects it: remove it (GRPO checkpoints every layer or none)"
        )
    return parsed


def parser_for(config_path: str | Path):
    """parse_grpo_args for a GRPO recipe (its YAML names reward_funcs), else parse_sft_args."""
    return parse_grpo_args if is_grpo_recipe(load_yaml_mapping(config_path, "config file")) else parse_sft_args


def is_grpo_recipe(config: dict) -> bool:
    return "reward_funcs" in config


def recipe_parser(script_class, training_class):
    """TRL's TrlParser over (script_class, training_class, trl.ModelConfig); a bad value (--lora_r abc) is one line,
    exit 2. `--config <yaml>` and the `--ds` alias are handled by parse_recipe_args (normalise_argv)."""
    from trl import ModelConfig, TrlParser

    parser = TrlParser((script_class, training_class, ModelConfig))
    parser.error = ArgumentParser.error.__get__(parser)
    return parser


def read_recipe(argv: list[str] | None, default_recipe: Path) -> tuple[str, dict, list[str]]:
    """(the recipe's path, its YAML mapping, the other command-line arguments) of a recipe's command line: the YAML
    is read here, once (`--config`, default: default_recipe); `--ds` is `--deepspeed`."""
    argv = normalise_argv(list(sys.argv[1:] if argv is None else argv))
    if "--config" not in argv:
        argv = ["--config", str(default_recipe), *argv]
    config_path = _config_path(argv)
    if config_path is None:
        raise UserError("--config: expected a recipe YAML after it")
    i = argv.index("--config")
    return config_path, load_yaml_mapping(config_path, "config file"), argv[:i] + argv[i + 2 :]


def parse_recipe_args(argv, parser, default_recipe: Path, recipe: tuple[str, dict, list[str]] | None = None):
    """The parser's dataclass instances (script, training, trl.ModelConfig) from `--config <yaml>` (default:
    default_recipe; or `recipe`, as read_recipe read it) and CLI overrides: TrlParser's mechanism (the YAML's values
    are the parser's defaults, the command line overrides them, an `env` mapping sets environment variables).
    Unknown keys and bad values are one-line UserErrors. Under DeepSpeed on a machine without a GPU a CPU recipe
    (use_cpu: true, which transformers would train without DeepSpeed) gets CPU_UNDER_DEEPSPEED, said in one line;
    elsewhere, on a CPU without native bf16 matmuls, a CPU recipe trains in fp32 instead of bf16 (cpu_precision: auto),
    said in one line."""
    config_path, config, cli = recipe or read_recipe(argv, default_recipe)
    config = dict(config)
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(config) - known - {"env"})
    if unknown:
        raise UserError(f"{config_path}: unknown key(s) {', '.join(unknown)}")
    env = config.pop("env", {})
    if not isinstance(env, dict):
        raise UserError(f"{config_path}: env: expected a mapping of environment variables to values")
    os.environ.update({str(k): str(v) for k, v in env.items()})
    parser.set_defaults_with_config(**config)
    namespace, unknown_cli = parser.parse_known_args(cli)
    if unknown_cli:
        raise UserError(f"unknown command-line option(s): {' '.join(unknown_cli)}")
    if isinstance(namespace.deepspeed, str):
        _check_json(namespace.deepspeed)
    if namespace.deepspeed and _cpu_deepspeed_ranks():
        parser.set_defaults(accelerator_config={"use_configured_state": True})
        if namespace.use_cpu:
            cli = [*cli, *(f"--{k}={v}" for k, v in CPU_UNDER_DEEPSPEED.items())]
            if os.environ.get("RANK", "0") == "0":
                settings = ", ".join(f"{k} {v}" for k, v in CPU_UNDER_DEEPSPEED.items())
                print(f"DeepSpeed on a machine without a GPU: {config_path}'s CPU settings under ZeRO ({settings})")
    elif (
        namespace.use_cpu
        and namespace.bf16
        and namespace.cpu_precision == "auto"
        and not model_base.cpu_has_fast_bf16()
    ):
        fp32 = {"bf16": "false", **({"dtype": "float32"} if namespace.dtype == "bfloat16" else {})}
        cli = [*cli, *(f"--{k}={v}" for k, v in fp32.items())]
        if os.environ.get("RANK", "0") == "0":
            print(
                f"{config_path}: this CPU has no native bf16 matmuls (AMX / AVX512-BF16): training in fp32 (bf16 "
                f"false, a bfloat16 dtype float32; emulated bf16 is {model_base.EMULATED_BF16_SLOWDOWN}x slower); "
                "--cpu_precision recipe keeps bf16"
            )
    try:
        return parser.parse_args_into_dataclasses(args=cli)
    except ValueError as e:
        msg = str(e).splitlines()[0]
        import torch

        if "--tf32 requires" in msg and torch.cuda.is_available():  # a GPU older than Ampere
            name, (major, minor) = torch.cuda.get_device_name(), torch.cuda.get_device_capability()
            msg = (
                f"tf32: true needs an Ampere or newer GPU (compute capability >= 8.0); this one is {name} "
                f"({major}.{minor}): pass --tf32 false"
            )
        elif ("bf16" in msg and "use_cpu" in msg) or "--tf32 requires" in msg:
            msg = (
                "this recipe needs a GPU (bf16/tf32) and this machine has none: "
                "use recipes/configs/demo_cpu.yaml (runs offline on the CPU), or pass --bf16 false --tf32 false"
            )
        raise UserError(f"{config_path}: {msg}") from None


# A CPU recipe (use_cpu: true) launched with DeepSpeed on a machine without a GPU: transformers would train without
# DeepSpeed under use_cpu, so the ranks train with DeepSpeed's CPU accelerator (gloo) instead
CPU_UNDER_DEEPSPEED = {"use_cpu": "false", "bf16": "false"}


def _cpu_deepspeed_ranks() -> bool:
    """DeepSpeed ranks on a machine without a GPU (DeepSpeed's CPU accelerator + gloo).

    accelerate picks the process-group backend from the GPU type; finding none, it counts one process per
    rank, so every rank would train alone. Set the state up with gloo here and let TrainingArguments use it
    (`accelerator_config.use_configured_state`). Returns whether it did.
    """
    import torch

    if torch.cuda.is_available() or "LOCAL_RANK" not in os.environ:
        return False
    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        state = PartialState(backend="gloo")
    finally:
        del os.environ["ACCELERATE_USE_DEEPSPEED"]
    state.wait_for_everyone()  # every rank has mapped every other rank's all-reduce segment
    _unlink_own_shm_segment()
    return True


def _unlink_own_shm_segment() -> None:
    """Remove the name of the shared-memory segment DeepSpeed's CPU all-reduce created for this rank.

    With every rank on one machine (LOCAL_SIZE == WORLD_SIZE), DeepSpeed's CPU communication op
    (deepspeed/ops/csrc/cpu/comm/shm.cpp, 0.19) creates /dev/shm/deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_
    <MASTER_PORT>_<rank> (66 MB), maps the other ranks' segments by name while the process group starts, and never
    unlinks its own: every CPU run left 66 MB of memory in /dev/shm until reboot (this project's test machine had
    collected 181 of them, 12 GB of its 24). Once all ranks have mapped each other's (the barrier before this call),
    the name is not needed: the mappings stay valid until the process exits, and the kernel frees the memory then.
    Only this rank's own segment, by its exact name, is removed.
    """
    if os.environ.get("LOCAL_SIZE") != os.environ.get("WORLD_SIZE"):
        return
    name = "_".join(
        [
            "deepspeed_allreduce_buffer",
            str(os.getuid()),
            *(os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "RANK")),
        ]
    )
    Path("/dev/shm", name).unlink(missing_ok=True)


def _check_json(path: str) -> None:
    try:
        json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: DeepSpeed config not found") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
