"""Compare models on the cognitive evaluation suite (lm-evaluation-harness tasks in eval/tasks).

    python recipes/evaluate.py --base embedded:smollm2-135m-instruct --adapter runs/demo \
        --release release/demo --modules-run runs/cognitive-1.5b --out results/eval [--limit 3]

Every model runs through lm_eval's Python API (the equivalent `lm_eval` command is printed before it; a
modules run is the base with its cognitive modules and LoRA adapter loaded, which the CLI cannot do).
Writes (into <out>.partial, renamed to <out> when complete) <out>/results.json (scores, documents, wall time and
documents/s per model), <out>/table.md, <out>/scores.png (headline score per task and model) and
<out>/samples/<model>/<task>.jsonl (every output with its metrics). `--fast` is the in-training check
(cognitive.evaluation.harness.FAST_CHECK); `--limit 3` takes one document per difficulty of each task; `--difficulty
basic` keeps one difficulty.
"""

import json
import time
from pathlib import Path

from cognitive.atomic import output_dir
from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.evaluation.harness import FAST_CHECK, SUITE, ModelSpec, compare, headline_scores, score_table
from cognitive.evaluation.snapshots import parse_difficulties
from cognitive.plots import plot_score_comparison


@exit_on_user_error
def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a base: hub id, model dir or embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", action="append", default=[], help="a finished run dir (LoRA adapter)")
    parser.add_argument("--release", action="append", default=[], help="a merged release dir")
    parser.add_argument("--modules-run", action="append", default=[], help="a run dir with cognitive modules")
    parser.add_argument("--tasks", default=",".join(SUITE), help="tasks or groups (default: the whole suite)")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--difficulty", default=None, help="only these difficulties, e.g. basic or basic,advanced")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-gen-toks", type=int, default=None, help="override every task's max_gen_toks")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run a --release's shipped code even when this checkout did not write it (read it first)",
    )
    parser.add_argument("--fast", action="store_true", help="the in-training check (overrides the four above)")
    parser.add_argument("--out", default="results/eval", help="output directory")
    args = parser.parse_args(argv)

    specs = ([ModelSpec.base(args.base)] if args.base else []) + [ModelSpec.adapter(r) for r in args.adapter]
    specs += [ModelSpec.release(r, trust_remote_code=args.trust_remote_code) for r in args.release]
    specs += [ModelSpec.modules(r) for r in args.modules_run]
    if not specs:
        parser.error("give at least one model (--base, --adapter, --release or --modules-run)")
    if len({s.label for s in specs}) < len(specs):
        parser.error(f"two models share a label: {[s.label for s in specs]}")
    parse_difficulties(args.difficulty)  # an unknown difficulty: one line, before anything is written
    out = Path(args.out)
    started = time.time()

    if args.fast:
        args.tasks, args.limit = ",".join(FAST_CHECK["tasks"]), FAST_CHECK["limit"]
        args.difficulty, args.max_gen_toks = (
            FAST_CHECK["metadata"]["difficulty"],
            FAST_CHECK["gen_kwargs"]["max_gen_toks"],
        )
    with output_dir(out, overwrite=True) as tmp:  # the previous results stay until these are complete
        results = compare(
            specs,
            args.tasks.split(","),
            args.limit,
            args.batch_size,
            metadata={"difficulty": args.difficulty} if args.difficulty else None,
            gen_kwargs={"max_gen_toks": args.max_gen_toks} if args.max_gen_toks else None,
            samples_dir=tmp / "samples",
        )

        scores = {label: r["scores"] for label, r in results.items()}
        table = score_table(scores)
        settings = {k: getattr(args, k) for k in ("tasks", "limit", "difficulty", "batch_size", "max_gen_toks")}
        (tmp / "results.json").write_text(json.dumps({"settings": settings, "models": results}, indent=1) + "\n")
        (tmp / "table.md").write_text(table + "\n")
        plot_score_comparison(
            headline_scores(scores),
            tmp / "scores.png",
            title=f"cognitive suite: score per task ({args.limit or 'all'} documents per task)",
        )
    print(f"\n{table}\n\nWrote {out}/results.json, table.md, scores.png in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
