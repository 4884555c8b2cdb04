"""Compare models on the evaluation suites (lm-evaluation-harness tasks in eval/tasks).

    python recipes/evaluate.py --base embedded:smollm2-135m-instruct --adapter runs/demo --out results/eval
    python recipes/evaluate.py --release release/demo --suite transfer --limit all
    python recipes/evaluate.py --modules_run runs/cognitive-135m --suite all

Suites (cognitive.evaluation.harness.SUITES; default: the offline ones, cognitive,plain,transfer):
    cognitive  our generators' problems, our system prompt and answer format (in-distribution)
    plain      the same problems asked as a person would: no system prompt, other wording, any answer form
    transfer   third-party problems (reasoning-gym) asked and scored their own way
    standard   stock lm-eval benchmarks of the same skills (needs the Hugging Face Hub)
Each has CPU-sized default document counts (--limit N or --limit all to change them); every score comes with its
standard error. `--tasks` runs named tasks instead of suites; `--fast` is the in-training check. `--split validation`
asks the offline suites fresh problems instead of the eval snapshots (our generators' from other seeds, reasoning-gym's
from TRANSFER_VALIDATION_SEED): choose settings on it, report on the snapshots (cognitive/evaluation/snapshots.py,
cognitive/evaluation/transfer.py).

Every model runs through lm_eval's Python API (the equivalent `lm_eval` command is printed before it; a modules run
is the base with its cognitive modules and LoRA adapter loaded, which the CLI cannot do). Writes (into <out>.partial,
renamed to <out> when complete) results.json, table.md (per suite: headline and per task type; then every task's
metrics), suites.png and samples/<suite>/<model>/<task>.jsonl (every output with its metrics).

Is the tuned model better? With two or more models, every model after the first (the order of the flags: --base,
--adapter, --release, --modules_run) is compared with the first, or with `--compare_to <label>`, document by
document: per suite, task type and task, the difference with a 95% bootstrap interval over documents and the verdict
above / level / below, as scored and "worked" (a right answer stated before any working counted wrong); then every
model's shares of answers stated first, outputs cut off by the token limit and repeated-line loops (table.md,
results.json "paired", paired.png; docs/evaluation.md). Several training seeds of one model are one arm:

    python recipes/evaluate.py --base embedded:smollm2-135m-instruct --adapter demo=runs/demo-s0,runs/demo-s1

evaluates each seed and averages them per document (labels: demo, its seeds demo-s0, demo-s1).
"""

import time
from pathlib import Path

from cognitive.atomic import output_dir
from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.evaluation.harness import FAST_CHECK, OFFLINE_SUITES, SUITES, compare, evaluate_suites
from cognitive.evaluation.paired import evaluation_arms, evaluation_paired
from cognitive.evaluation.report import write_report
from cognitive.evaluation.snapshots import EVAL_SPLITS, doc_metadata, parse_difficulties


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    seeds = "; [NAME=]DIR,DIR,...: one model's training seeds, averaged per document"
    parser.add_argument("--base", help="a base: hub id, model dir or embedded:smollm2-135m-instruct")
    parser.add_argument("--adapter", action="append", default=[], help="a finished run dir (LoRA adapter)" + seeds)
    parser.add_argument("--release", action="append", default=[], help="a merged release dir" + seeds)
    parser.add_argument("--modules_run", action="append", default=[], help="a run dir with cognitive modules" + seeds)
    parser.add_argument(
        "--compare_to",
        metavar="LABEL",
        help="the model every other is compared with, document by document (default: the first: --base if given)",
    )
    parser.add_argument("--suite", default=",".join(OFFLINE_SUITES), help=f"{', '.join(SUITES)} or all")
    parser.add_argument("--tasks", help="run these tasks or groups instead of suites")
    parser.add_argument("--limit", default=None, help="documents per task: N or all (default: each suite's)")
    parser.add_argument("--difficulty", default=None, help="only these difficulties, e.g. basic or basic,advanced")
    parser.add_argument(
        "--split",
        choices=EVAL_SPLITS,
        default="test",
        help="the offline suites' documents: test (the eval snapshots; report on these) or validation "
        "(fresh problems; choose settings on these)",
    )
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_gen_toks", type=int, default=None, help="override every task's max_gen_toks")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="run a --release's shipped code even when this checkout did not write it (read it first)",
    )
    parser.add_argument("--fast", action="store_true", help="the in-training check (overrides --tasks and --limit)")
    parser.add_argument(
        "--out", default="results/eval", help="output directory (an earlier evaluation there is replaced, nothing else)"
    )
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)

    arms, reference = evaluation_arms(args, args.compare_to)
    specs = [s for arm in arms for s in arm.specs]
    suites = list(SUITES) if args.suite == "all" else args.suite.split(",")
    if unknown := [s for s in suites if s not in SUITES]:
        parser.error(f"unknown suite {unknown[0]!r} (known: {', '.join(SUITES)}, all)")
    if args.limit not in (None, "all") and not args.limit.isdigit():
        parser.error(f"--limit {args.limit!r}: a number of documents per task, or all")
    limit = int(args.limit) if args.limit not in (None, "all") else args.limit
    parse_difficulties(args.difficulty)  # an unknown difficulty: one line, before anything is written
    started = time.time()

    # the previous results stay until these are complete; only an evaluation output is ever replaced
    with output_dir(Path(args.out), kind="evaluation", overwrite=True) as tmp:
        if args.fast or args.tasks:
            tasks = FAST_CHECK["tasks"] if args.fast else args.tasks.split(",")
            difficulty = FAST_CHECK["metadata"]["difficulty"] if args.fast else args.difficulty
            max_gen_toks = FAST_CHECK["gen_kwargs"]["max_gen_toks"] if args.fast else args.max_gen_toks
            tasks_results = compare(
                specs,
                tasks,
                FAST_CHECK["limit"] if args.fast else limit,
                args.batch_size,
                metadata=doc_metadata(difficulty, None if args.fast else args.split),
                gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks else None,
                samples_dir=tmp / "samples",
            )
            suite_results = None
        else:
            suite_results = evaluate_suites(
                specs,
                suites,
                limit,
                args.batch_size,
                args.difficulty,
                args.max_gen_toks,
                samples_dir=tmp / "samples",
                split=args.split,
            )
            tasks_results = None
        settings = {
            k: getattr(args, k)
            for k in ("suite", "tasks", "limit", "difficulty", "split", "batch_size", "max_gen_toks", "fast")
        }
        settings["compare_to"] = reference
        paired = evaluation_paired(tmp / "samples", None if args.fast or args.tasks else suites, arms, reference)
        table = write_report(tmp, settings, suite_results, tasks_results, paired)
    print(f"\n{table}\n\nWrote {args.out}/results.json, table.md, plots in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
