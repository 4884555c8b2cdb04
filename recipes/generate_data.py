"""Generate verified synthetic cognitive training data.

    python recipes/generate_data.py --config data/configs/default.yaml --out data/synthetic/default --num_proc 2
    python recipes/generate_data.py --config data/configs/demo.yaml --out data/synthetic/demo

Reads a DatasetConfiguration (data/configs/*.yaml), generates examples of every task type with their
solvers, re-checks each with its independent checker, filters (quality threshold, token length,
decontamination against eval/data/*.jsonl, exact and MinHash near-duplicates), splits by id hash and
writes <out>/{train,validation,test}.jsonl, <out>/dataset (DatasetDict), report.json, stats.json and
plots. An existing --out is refused unless --overwrite is given. See cognitive/data/build.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.data.build import build_dataset, load_config
from cognitive.errors import ArgumentParser, exit_on_user_error


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="data/configs/<name>.yaml (a DatasetConfiguration)")
    p.add_argument("--out", help="output directory (default: data/synthetic/<config name>)")
    p.add_argument("--num_proc", type=int, default=1, help="worker processes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--tokenizer", help="overrides the config's tokenizer; 'whitespace' = approximate word count")
    p.add_argument("--target_size", type=int, help="overrides the config's target_size")
    p.add_argument("--eval_dir", help="overrides the config's eval_dir (decontamination; default: eval/data)")
    p.add_argument(
        "--no_decontaminate",
        action="store_true",
        help="skip decontamination against the eval snapshots (recorded in report.json)",
    )
    p.add_argument("--curated", nargs="*", help="JSONL files of curated records (override curated_files)")
    p.add_argument("--no_progress", action="store_true")
    return p


@exit_on_user_error
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    config = load_config(args.config, target_size=args.target_size, curated_files=args.curated)
    out = Path(args.out or f"data/synthetic/{Path(args.config).stem}")
    report = build_dataset(
        config,
        out,
        num_proc=args.num_proc,
        overwrite=args.overwrite,
        tokenizer=args.tokenizer,
        eval_dir=args.eval_dir,
        decontaminate=not args.no_decontaminate,
        progress=not args.no_progress,
    )
    summary = {
        "out": str(out),
        "kept": report["kept"],
        "splits": report["splits"],
        "generated": report["generated"],
        "dropped": {s: v["dropped"] for s, v in report["stages"].items()},
        "seconds": report["seconds"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
