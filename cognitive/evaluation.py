"""Run the eval/tasks suite through lm-evaluation-harness's Python API.

    scores = evaluate("runs/demo/../base-dir", peft="runs/demo", tasks=["cognitive_reasoning"], limit=60)

is the same evaluation as the command

    lm_eval --model hf --model_args pretrained=<dir>,peft=runs/demo --tasks cognitive_reasoning \
        --include_path eval/tasks --apply_chat_template --limit 60
"""

from __future__ import annotations

from pathlib import Path

from cognitive.evalsets import EVAL_DIR

TASKS_DIR = EVAL_DIR / "tasks"


def lm_eval_command(
    pretrained: str, peft: str | None, tasks: list[str], limit: int | None, batch_size: int, device: str = "cpu"
) -> str:
    model_args = f"pretrained={pretrained}" + (f",peft={peft}" if peft else "")
    cmd = (
        f"lm_eval --model hf --model_args {model_args} --tasks {','.join(tasks)} "
        f"--include_path {TASKS_DIR.relative_to(Path.cwd()) if TASKS_DIR.is_relative_to(Path.cwd()) else TASKS_DIR} "
        f"--apply_chat_template --batch_size {batch_size} --device {device}"
    )
    return cmd + (f" --limit {limit}" if limit else "")


def evaluate(
    pretrained: str,
    peft: str | None = None,
    tasks: list[str] = ("cognitive_reasoning",),
    limit: int | None = None,
    batch_size: int = 16,
    apply_chat_template: bool = True,
    trust_remote_code: bool = False,
) -> dict[str, dict[str, float]]:
    """{task: {metric: value}} from a real lm_eval run (metric names without lm_eval's ',none' suffix)."""
    import lm_eval
    import torch
    from lm_eval.tasks import TaskManager

    model_args = {"pretrained": pretrained, "dtype": "float32", "trust_remote_code": trust_remote_code}
    if peft:
        model_args["peft"] = peft
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(tasks),
        task_manager=TaskManager(include_path=str(TASKS_DIR)),
        batch_size=batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu",
        limit=limit,
        apply_chat_template=apply_chat_template,
        log_samples=False,
    )
    scores: dict[str, dict[str, float]] = {}
    for task, metrics in results["results"].items():
        scores[task] = {
            key.split(",")[0]: value
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and "stderr" not in key
        }
    return scores
