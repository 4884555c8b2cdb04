"""Interpolate a finished run with its base in weight space (WiSE-FT): keep a share alpha of what training changed.

    python recipes/interpolate.py --run runs/demo --alpha 0.5 --out runs/demo-wise0.5 [--overwrite]
    python recipes/evaluate.py --base embedded:smollm2-135m-instruct --adapter runs/demo-wise0.5 --split validation

LoRA's B factors are scaled by alpha and each cognitive module's contribution tanh(gate) * f(h) by alpha
(cognitive/release/interpolate.py); alpha 1 is the run, 0 the base. The output is a run directory that
`recipes/evaluate.py --adapter` / `--modules-run` and `recipes/merge.py --run` take. Choose alpha on the validation
split (`recipes/evaluate.py --split validation`), never on the test snapshots.
"""

from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.release.interpolate import interpolate_run


@exit_on_user_error
def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="finished run directory (LoRA adapter and/or cognitive modules)")
    parser.add_argument("--alpha", type=float, required=True, help="share of the run's change kept: 0 (base) to 1")
    parser.add_argument("--out", required=True, help="run directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    out = interpolate_run(args.run, args.alpha, args.out, overwrite=args.overwrite)
    print(f"Interpolated run written to {out} (alpha {args.alpha} of {args.run})")


if __name__ == "__main__":
    main()
