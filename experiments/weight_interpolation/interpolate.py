"""Weight-space interpolation of a finished run with its base (WiSE-FT: Wortsman et al., "Robust fine-tuning of
zero-shot models", CVPR 2022): keep a share `alpha` of what training changed.

    python experiments/weight_interpolation/interpolate.py --run runs/demo --alpha 0.5 --out runs/demo-wise0.5
    python recipes/evaluate.py --base embedded:smollm2-135m-instruct --adapter runs/demo-wise0.5 --split validation

A LoRA adapter changes a weight by scaling * B @ A, linear in B: the interpolated run is the same directory with
every lora_B tensor (weights and biases) times alpha. Each cognitive module adds tanh(gate) * f(h) to the residual
stream: its gate is set so that tanh(gate) is alpha times what it was, every other module weight kept. alpha 1 is
the run, 0 the base. What is not linear in one tensor is refused with one line (DoRA's magnitudes, fully trained
modules_to_save and trainable tokens, other PEFT methods).

The output is a finished run directory (`recipes/evaluate.py --adapter` / `--modules_run`, `recipes/merge.py --run`
take it): the run's top-level files (adapter, modules, run_config.yaml, tokenizer, logs; not its checkpoints),
run_info.json recording where it came from and alpha. It is written in `<out>.partial` and renamed when complete.
Choose alpha on the validation split (`recipes/evaluate.py --split validation`), never on the test snapshots.

A study tool, not part of the library: on the embedded 135M it did not help (experiments/weight_interpolation/
README.md); bench_interpolate.py beside it runs the whole comparison.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from cognitive.atomic import MARKER, check_replaceable, output_dir, write_text
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error
from cognitive.model.inject import COGNITIVE_WEIGHTS
from cognitive.train.run import PEFT_CONFIG, PEFT_WEIGHTS, RUN_INFO, read_run

LORA_B_KEYS = ("lora_B.", "lora_embedding_B.")  # the factor of a LoRA update that scaling by alpha multiplies
GATE_SUFFIX = ".gate"  # a cognitive module's residual gate (cognitive/model/modules.py)
# adapter_config.json settings under which the update is not scaling * B @ A alone
NOT_LINEAR = {
    "use_dora": "DoRA's magnitude vectors",
    "modules_to_save": "modules_to_save (fully trained copies)",
    "trainable_token_indices": "trainable token embeddings",
}


def check_linear(adapter_config: dict, path: Path) -> None:
    """A one-line UserError when the adapter's update is not linear in its lora_B tensors."""
    if adapter_config.get("peft_type") != "LORA":
        raise UserError(f"{path}: peft_type {adapter_config.get('peft_type')!r}: only LoRA adapters are interpolated")
    for key, what in NOT_LINEAR.items():
        if adapter_config.get(key):
            raise UserError(f"{path}: {key} is set: {what} cannot be interpolated by scaling lora_B")


def is_lora_b(key: str) -> bool:
    return any(marker in key for marker in LORA_B_KEYS)


def scale_lora(tensors: dict, alpha: float) -> dict:
    """The adapter's tensors with every lora_B tensor times alpha (the others as they are)."""
    if not any(is_lora_b(k) for k in tensors):
        raise UserError("the adapter holds no lora_B tensor: nothing to interpolate")
    return {k: (v * alpha if is_lora_b(k) else v) for k, v in tensors.items()}


def scale_gates(tensors: dict, alpha: float) -> dict:
    """The cognitive modules' tensors with every gate g replaced by atanh(alpha * tanh(g))."""
    gates = [k for k in tensors if k.endswith(GATE_SUFFIX)]
    if not gates:
        raise UserError(f"{COGNITIVE_WEIGHTS} holds no '*{GATE_SUFFIX}' tensor: not this project's modules")
    if alpha == 1.0:  # atanh(tanh(g)) is inf for a saturated gate
        return dict(tensors)
    return {k: (v.tanh().mul(alpha).atanh() if k in gates else v) for k, v in tensors.items()}


def interpolate_run(run_dir: str | Path, alpha: float, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write `out`: the finished run `run_dir` with a share `alpha` (0..1) of its change to the base kept."""
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise UserError(f"--alpha {alpha}: must be between 0 (the base) and 1 (the run)")
    run = read_run(run_dir)
    out = Path(out)
    if out.resolve() == run.run_dir.resolve():
        raise UserError(f"--out {out} is the run itself; write the interpolated run elsewhere")
    exists = UserError(f"{out} exists (pass --overwrite to replace it)")
    check_replaceable(out, "run", overwrite=overwrite, exists_error=exists)  # before anything is read
    if run.has_adapter:
        check_linear(json.loads((run.run_dir / PEFT_CONFIG).read_text()), run.run_dir / PEFT_CONFIG)
    with output_dir(out, kind="run", overwrite=overwrite, exists_error=exists) as tmp:
        for path in run.run_dir.iterdir():
            if path.is_file() and path.name not in (PEFT_WEIGHTS, COGNITIVE_WEIGHTS, RUN_INFO, MARKER):
                shutil.copy2(path, tmp / path.name)
        if run.has_adapter:
            lora = scale_lora(load_file(str(run.run_dir / PEFT_WEIGHTS)), alpha)
            save_file(lora, str(tmp / PEFT_WEIGHTS), metadata={"format": "pt"})
        if run.has_modules:
            modules = scale_gates(load_file(str(run.run_dir / COGNITIVE_WEIGHTS)), alpha)
            save_file(modules, str(tmp / COGNITIVE_WEIGHTS), metadata={"format": "pt"})
        info_path = run.run_dir / RUN_INFO
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info["interpolated"] = {
            "from": str(run.run_dir),
            "alpha": alpha,
            "method": "WiSE-FT (experiments/weight_interpolation)",
        }
        write_text(tmp / RUN_INFO, json.dumps(info, indent=1))
    return out


def choose_alpha(scores: dict[float, list[float]]) -> float:
    """The rule bench_interpolate.py applies on the validation split: the alpha whose mean score over
    seeds is highest; a tie (within float rounding) goes to the larger alpha, which keeps more of the training."""
    if not scores or any(not values for values in scores.values()):
        raise UserError("choose_alpha: every alpha needs at least one score")
    means = {alpha: sum(values) / len(values) for alpha, values in scores.items()}
    best = max(means.values())
    return max(alpha for alpha, mean in means.items() if mean >= best - 1e-9)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="finished run directory (LoRA adapter and/or cognitive modules)")
    parser.add_argument("--alpha", type=float, required=True, help="share of the run's change kept: 0 (base) to 1")
    parser.add_argument("--out", required=True, help="run directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


@exit_on_user_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    out = interpolate_run(args.run, args.alpha, args.out, overwrite=args.overwrite)
    print(f"Interpolated run written to {out} (alpha {args.alpha} of {args.run})")


if __name__ == "__main__":
    main()
