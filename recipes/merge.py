"""Merge a finished run into a release: LoRA folded into a full-precision copy of the base, cognitive modules attached.

    python recipes/merge.py --run runs/demo --out release/demo [--overwrite] [--eval_results results/demo/results.json]
    python recipes/merge.py --run runs/demo --out release/demo --push_to_hub <user>/<repo>   # opt-in upload

The release is a model directory (safetensors shards, config, tokenizer, README.md model card). Without cognitive
modules it is a plain model of the base architecture; with them it ships its modeling code (`auto_map`), so
`AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)` needs only torch and transformers. Before it is
moved into place it is reloaded from disk and its logits are checked against base (+ modules) + adapter on a fixed
batch (fp32; fails above 1e-3, exit 1, nothing written). The model card's eval table comes from --eval_results or
the newest results file in results/<run name>/. --push_to_hub needs network and `hf auth login` (or HF_TOKEN);
it is checked before merging.
"""

import dataclasses
import json
import sys

from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.release.merge import MERGE_TOLERANCE, MergeCheckError, check_can_push, merge_run, push_release


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="finished run directory (holds the adapter)")
    parser.add_argument("--out", required=True, help="release directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--tolerance", type=float, default=MERGE_TOLERANCE, help="max abs logit diff (fp32)")
    parser.add_argument(
        "--eval_results",
        default=None,
        help="eval results JSON for the model card (default: newest in results/<run name>/)",
    )
    parser.add_argument("--push_to_hub", metavar="REPO_ID", default=None, help="upload the release to this Hub repo")
    parser.add_argument("--public", action="store_true", help="with --push_to_hub: create the repo public")
    return parser


@exit_on_user_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.push_to_hub:
        check_can_push(args.push_to_hub)  # offline / not logged in: fail now, not after the merge

    try:
        report = merge_run(
            args.run, args.out, overwrite=args.overwrite, tolerance=args.tolerance, eval_results=args.eval_results
        )
    except MergeCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"Release written to {report.out} (model card: {report.out}/README.md)")

    if args.push_to_hub:
        report.pushed_to = push_release(report.out, args.push_to_hub, private=not args.public)
        print(f"Pushed to {report.pushed_to}")
    print(json.dumps(dataclasses.asdict(report), indent=1))


if __name__ == "__main__":
    main()
