"""Wall time and documents/s of the cognitive evaluation suite on the embedded SmolLM2-135M-Instruct, CPU.

    python tests/performance/bench_eval.py                        # the fast in-training check: --limit 3
    python tests/performance/bench_eval.py --limit 12 --batch-size 16 --threads 1 --json bench.json

Each task runs through lm_eval's Python API (cognitive.evaluation.harness.run_suite, chat template, greedy, batched
generation) on its first `--limit` documents (the snapshots interleave difficulties, so --limit 3 is one
document per difficulty). Reported per task: documents, wall seconds, documents/s, generated tokens/s, the mean
generated length and how many outputs hit max_gen_toks; then the total, and the full suite's time extrapolated
as (seconds per measured batch) x (batches of the full run): a fair estimate when --limit >= --batch-size,
a lower bound otherwise (a full batch costs more than a partial one). `--fast` times FAST_CHECK instead.
This process's CPU seconds are reported beside wall seconds: on a shared machine they are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from cognitive.evaluation.harness import FAST_CHECK, ModelSpec, flatten_scores, run_suite
from cognitive.evaluation.snapshots import DOCS_PER_DIFFICULTY, SNAPSHOT_DIFFICULTIES
from cognitive.model.base import DEFAULT_EMBEDDED, load_tokenizer
from cognitive.tasks import TASK_TYPES

TASKS = {t.eval_task: t.name for t in TASK_TYPES}  # eval task -> task type


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    base: str, tasks: list[str], limit: int, batch_size: int, tokenizer, **settings
) -> tuple[list[dict], float, float]:
    """One lm_eval run; per-task rows (documents, generated lengths, score), its wall and CPU seconds."""
    wall0, cpu0 = time.time(), cpu_seconds()
    results = run_suite(ModelSpec.base(base), tasks, limit, batch_size, log_samples=True, **settings)
    wall, cpu = time.time() - wall0, cpu_seconds() - cpu0
    rows = []
    for task in tasks:
        outputs = [s["resps"][0][0] for s in results["samples"][task]]
        lengths = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
        cap = results["configs"][task]["generation_kwargs"]["max_gen_toks"]
        rows.append(
            {
                "task": task,
                "documents": len(outputs),
                "mean_gen_tokens": round(sum(lengths) / len(lengths)),
                "max_gen_tokens": max(lengths),
                "hit_max_gen_toks": sum(n >= cap - 1 for n in lengths),
                "score": flatten_scores(results)[task]["score"],
            }
        )
    return rows, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_EMBEDDED)
    parser.add_argument("--limit", type=int, default=3, help="documents per task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--fast", action="store_true", help="time cognitive.evaluation.harness.FAST_CHECK (one run)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.base)
    summary = {"base": args.base, "batch_size": args.batch_size, "threads": torch.get_num_threads()}
    if args.fast:
        settings = {k: FAST_CHECK[k] for k in ("metadata", "gen_kwargs")}
        rows, wall, cpu = run(
            args.base, FAST_CHECK["tasks"], FAST_CHECK["limit"], args.batch_size, tokenizer, **settings
        )
        for row in rows:
            print(json.dumps(row))
        summary.update(fast_check=FAST_CHECK, wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    else:
        rows, wall, cpu, full = [], 0.0, 0.0, 0.0
        full_docs = len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY
        for task in args.tasks.split(","):
            [row], task_wall, task_cpu = run(args.base, [task], args.limit, args.batch_size, tokenizer)
            row.update(
                wall_s=round(task_wall, 1), cpu_s=round(task_cpu, 1), docs_per_s=round(row["documents"] / task_wall, 4)
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
            wall, cpu = wall + task_wall, cpu + task_cpu
            full += task_wall / math.ceil(row["documents"] / args.batch_size) * math.ceil(full_docs / args.batch_size)
        summary.update(
            limit=args.limit, wall_s=round(wall, 1), cpu_s=round(cpu, 1), full_suite_estimate_h=round(full / 3600, 1)
        )
    documents = sum(r["documents"] for r in rows)
    summary.update(documents=documents, docs_per_s=round(documents / wall, 4), tasks=rows)
    print(
        f"\n{documents} documents in {wall:.0f} s wall ({cpu:.0f} s CPU of this process): {documents / wall:.3f} docs/s"
        + (f"; full suite extrapolated: {summary['full_suite_estimate_h']} h" if not args.fast else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
