"""Merge a finished run's LoRA adapter into a full-precision copy of its base and save a release.

    python recipes/merge.py --run runs/demo --out release/demo [--overwrite]

The release is a standard model directory (safetensors + config + tokenizer) that
`AutoModelForCausalLM.from_pretrained(out)` loads. Before it is moved into place, its logits are checked
against the base + adapter on a fixed batch (fp32; fails above 1e-3).
"""

import argparse
import json
import sys

from cognitive.errors import exit_on_user_error
from cognitive.release import MERGE_TOLERANCE, MergeCheckError, merge_run


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="finished run directory (holds the adapter)")
    parser.add_argument("--out", required=True, help="release directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--tolerance", type=float, default=MERGE_TOLERANCE, help="max abs logit diff")
    args = parser.parse_args(argv)
    try:
        report = merge_run(args.run, args.out, overwrite=args.overwrite, tolerance=args.tolerance)
    except MergeCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
