"""Wall time of the evaluation suites at their default document counts, on the embedded SmolLM2-135M-Instruct.

    python tests/performance/bench_eval.py                          # the offline suites, as recipes/evaluate.py runs
    python tests/performance/bench_eval.py --suites transfer --limit 40 --json bench.json
    COGNITIVE_SLM_DTYPE=float32 python tests/performance/bench_eval.py --suites plain     # fp32 instead of bf16
    python tests/performance/bench_eval.py --fast                   # the in-training check
    python tests/performance/bench_eval.py --prune_every 0 --samples_dir /tmp/one_call     # one generate() per batch
    python tests/performance/bench_eval.py --same_as /tmp/one_call   # ... and count the answers that differ from it
    python tests/performance/bench_eval.py --pack_weights 0          # linear weights as lm_eval's hf runs them
    python tests/performance/bench_eval.py --refill 0                # lm_eval's batches, one at a time

Each suite runs through cognitive.evaluation.harness.evaluate_suites (lm_eval's Python API, chat template, greedy,
batched generation, bf16 on a CPU with native bf16). Reported per suite: documents, wall and CPU seconds,
documents/s, the mean generated length and how many outputs ran to max_gen_toks, the headline ± its standard error,
with --same_as how many answers differ from another run's samples (cognitive-hf's row pruning must change none), and
the targets (plain and transfer <= 15 min each, the offline suites <= 10 min together). This process's CPU
seconds are reported beside wall seconds: on a shared machine they are the steadier figure.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cognitive.errors import ArgumentParser
from cognitive.evaluation.harness import (
    FAST_CHECK,
    OFFLINE_SUITES,
    ModelSpec,
    compare,
    evaluate_suites,
    suites_table,
)
from cognitive.evaluation.lm import BufferedHFLM
from cognitive.evaluation.outputs import hit_token_limit
from cognitive.model.base import DEFAULT_EMBEDDED, inference_device_and_dtype

TARGET_MIN = {"plain": 15, "transfer": 15}  # issue targets; the offline suites together: 10 min (issue 42)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sample_rows(samples_dir: Path) -> list[dict]:
    """The suite's sample rows (harness.write_samples: output, generated_tokens, max_gen_toks, ...)."""
    files = samples_dir.rglob("*.jsonl")
    return [{"task": f.stem, **json.loads(line)} for f in files for line in f.read_text().splitlines()]


def differing_answers(rows: list[dict], other_dir: Path) -> int:
    """How many of these sample rows' outputs differ from the same task's and document's output under other_dir."""
    other = {}
    for f in other_dir.rglob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            other[(f.stem, row["id"])] = row["output"]
    return sum(other.get((row["task"], row["id"])) != row["output"] for row in rows)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_EMBEDDED)
    parser.add_argument("--suites", default=",".join(OFFLINE_SUITES))
    parser.add_argument("--limit", default=None, help="documents per task (default: each suite's)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--fast", action="store_true", help="time the in-training check instead")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument(
        "--prune_every",
        type=int,
        default=BufferedHFLM.prune_every,
        help="new tokens between removals of finished rows from a generating batch (0: one generate call per batch)",
    )
    parser.add_argument(
        "--refill",
        type=int,
        choices=(0, 1),
        default=int(BufferedHFLM.refill),
        help="1: rows freed in a batch are refilled from the waiting requests; 0: lm_eval's batches, one at a time",
    )
    parser.add_argument(
        "--pack_weights",
        type=int,
        choices=(0, 1),
        default=int(BufferedHFLM.pack_weights),
        help="1: weights packed for oneDNN once (cognitive/model/packed_linear.py); 0: as lm_eval's hf has them",
    )
    parser.add_argument("--samples_dir", default=None, help="keep the suites' samples here (default: a temp dir)")
    parser.add_argument("--same_as", default=None, help="a --samples_dir of another run: count differing answers")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    BufferedHFLM.prune_every = args.prune_every
    BufferedHFLM.pack_weights = bool(args.pack_weights)
    BufferedHFLM.refill = bool(args.refill)
    spec = ModelSpec.base(args.base)
    summary = {
        "base": args.base,
        "batch_size": args.batch_size,
        "prune_every": args.prune_every,
        "pack_weights": bool(args.pack_weights),
        "refill": bool(args.refill),
        "device_dtype": inference_device_and_dtype(),
        "suites": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        scratch = args.samples_dir or scratch
        if args.fast:
            started, cpu = time.time(), cpu_seconds()
            result = compare(
                [spec],
                FAST_CHECK["tasks"],
                FAST_CHECK["limit"],
                args.batch_size,
                metadata=FAST_CHECK["metadata"],
                gen_kwargs=FAST_CHECK["gen_kwargs"],
                samples_dir=Path(scratch),
            )["base"]
            summary["fast"] = {
                "documents": result["documents"],
                "wall_s": round(time.time() - started, 1),
                "cpu_s": round(cpu_seconds() - cpu, 1),
            }
            print(json.dumps(summary["fast"]))
        for name in [] if args.fast else args.suites.split(","):
            started, cpu = time.time(), cpu_seconds()
            limit = int(args.limit) if args.limit and args.limit.isdigit() else args.limit
            results = evaluate_suites(
                [spec], [name], limit, args.batch_size, samples_dir=Path(scratch) / name, log=lambda *_: None
            )
            wall = time.time() - started
            r = results["base"][name]
            rows = sample_rows(Path(scratch) / name)
            lengths = [row["generated_tokens"] for row in rows if "generated_tokens" in row]
            row = {
                "documents": r["documents"],
                "limit": r["limit"],
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu_seconds() - cpu, 1),
                "docs_per_s": round(r["documents"] / wall, 3),
                "mean_generated_tokens": round(sum(lengths) / max(len(lengths), 1), 1),
                "hit_max_gen_toks": sum(bool(hit_token_limit(row)) for row in rows),  # each task's own limit
                "headline": r["headline"],
                "headline_stderr": r["headline_stderr"],
                "types": r["types"],
                "target_min": TARGET_MIN.get(name),
            }
            if args.same_as:
                row["answers_differing_from_same_as"] = differing_answers(rows, Path(args.same_as) / name)
            summary["suites"][name] = row
            print(json.dumps({"suite": name, **{k: v for k, v in row.items() if k != "types"}}), flush=True)
            print(suites_table({"base": {name: {**r, "limit": r["limit"]}}}), flush=True)
    if not args.fast:
        total = sum(r["wall_s"] for r in summary["suites"].values())
        summary["total_min"] = round(total / 60, 1)
        print(
            f"\ntotal {total / 60:.1f} min for {', '.join(summary['suites'])} (target: the offline suites <= 10 min);"
            + "".join(
                f" {n} {r['wall_s'] / 60:.1f} min (target <= {r['target_min']})"
                for n, r in summary["suites"].items()
                if r["target_min"]
            )
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
