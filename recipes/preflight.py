"""Will a recipe fit? The memory estimate of a training recipe (GPU memory on a card, or a CPU run's peak RSS) and
the settings that would fit, before anything is loaded or downloaded.

    python recipes/preflight.py --config recipes/configs/cognitive_1.5b.yaml --gpu 3090ti
    python recipes/preflight.py --config recipes/configs/cognitive_135m_cpu.yaml --max_length 1024
    python recipes/preflight.py --config recipes/configs/grpo_1.5b.yaml --gpu 3090ti     # GRPO recipes too

Flags it does not know are the recipe's keys (overrides, as for recipes/sft.py and recipes/grpo.py). The recipe is
resolved as the training recipe resolves it (cognitive/train/sft_config.py, cognitive/rl/grpo_config.py), without
looking for its data; the estimate is cognitive/model/memory.py's, which recipes/sft.py and recipes/grpo.py check
against the card (or RAM) before they load anything.
"""

import cognitive  # noqa: F401  (first: its OpenMP default is read when torch loads)

# isort: split
from dataclasses import asdict

from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.model import memory as hardware
from cognitive.rl.grpo_config import resolve_grpo
from cognitive.train.args import (
    DEFAULT_RECIPE,
    grpo_parser,
    is_grpo_recipe,
    parse_recipe_args,
    read_recipe,
    sft_parser,
)
from cognitive.train.preflight import memory_check
from cognitive.train.sft_config import resolve_sft

# Flags this parser does not know are the recipe's keys (the docs test checks them against the recipe's parser).
EXTRA_FLAGS = "recipe"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Estimate peak memory of a recipe (GPU memory, or RSS on a CPU) and recommend settings."
    )
    parser.add_argument("--config", required=True, help="recipe YAML (recipes/configs/*.yaml)")
    parser.add_argument("--gpu", default="3090ti", help=f"card: {', '.join(hardware.GPUS_GIB)}")
    parser.add_argument("--gib", type=float, help="card (or RAM) size in GiB (overrides --gpu / this machine's RAM)")
    parser.add_argument("--cpu", action="store_true", help="estimate the peak RSS of a CPU run (use_cpu recipes do)")
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    args, overrides = build_parser().parse_known_args(argv)
    path, config, cli = read_recipe(["--config", args.config, *overrides], DEFAULT_RECIPE)
    grpo = is_grpo_recipe(config)
    # A GPU recipe is parsed as on a GPU machine, minus the GPU-only switches TrainingArguments checks here;
    # a CPU recipe (use_cpu: true) as it is. Then it is resolved as its training recipe resolves it.
    parser = grpo_parser if grpo else sft_parser
    parsed = parse_recipe_args(
        None, parser(), DEFAULT_RECIPE, (path, config, ["--bf16", "false", "--tf32", "false", *cli])
    )
    if parsed[1].use_cpu:
        parsed = parse_recipe_args(None, parser(), DEFAULT_RECIPE, (path, config, cli))
    run = (resolve_grpo if grpo else resolve_sft)(*parsed, estimate_only=True)
    modules = run.modules_config if grpo else run.modules
    on_cpu = args.cpu or bool(run.training.use_cpu)
    check = memory_check(run.script, run.training, run.model, modules, on_cpu=on_cpu, gpu=args.gpu, gib=args.gib)
    if check is None:
        return
    shape, setup, est = check.shape, check.setup, check.estimate
    print(
        f"{run.model.model_name_or_path}: {shape.linear_params / 1e9:.2f}B linear + "
        f"{shape.other_params / 1e9:.2f}B other params; {asdict(setup)}"
    )
    print(est.table())
    if check.capacity:
        where = "RAM" if on_cpu else "card"
        fits = "fits" if check.fits else "DOES NOT FIT"
        print(f"{where}: {check.capacity / hardware.GIB:.1f} GiB -> {fits}")
        if not setup.generation_batch:  # recommend() sizes SFT batches; a GRPO recipe gets the estimate alone
            effective = run.training.per_device_train_batch_size * run.training.gradient_accumulation_steps
            print(f"recommended: {hardware.recommend(shape, setup, check.capacity, effective)}")


if __name__ == "__main__":
    main()
