"""GGUF export of a model directory, verified by loading it: how big, how long, how close to the source.

    python tests/performance/bench_gguf.py                          # the embedded base SmolLM2-135M-Instruct
    python tests/performance/bench_gguf.py --model release/demo --tokens 16,32 --out results/gguf

1. recipes/export.py's library call writes f16, q8_0 (llama.cpp's converter) and q4_k_m (llama.cpp's quantizer,
   needs the bindings: pip install -r requirements-export.txt) into <out>/gguf: size and wall time per quant.
2. transformers reads the f16 file back (`gguf_file=`): max abs logit difference to the source model on the merge
   check batch (fp32).
3. llama.cpp (llama-cpp-python) loads q8_0 and q4_k_m: for each of the 10 fixed chat prompts of
   cognitive.release.gguf_check.AGREEMENT_PROMPTS, how many leading tokens of its greedy continuation equal
   transformers' greedy continuation on the source model (fp32), for each --tokens N; printed as "k of 10 prompts
   agree on all N tokens" and the per-prompt counts; and, position by position along transformers' continuations
   (same context on both sides), the share where llama.cpp's top token is transformers' (a flipped near-tie does
   not carry over).
Writes <out>/gguf_bench.json. Without the bindings, steps for q4_k_m and llama.cpp are skipped, saying so.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cognitive.atomic import write_text  # noqa: E402
from cognitive.errors import ArgumentParser  # noqa: E402
from cognitive.model.base import DEFAULT_EMBEDDED, resolve_base  # noqa: E402
from cognitive.release import llama_cpp  # noqa: E402
from cognitive.release.export import export_gguf  # noqa: E402
from cognitive.release.gguf_check import (  # noqa: E402
    AGREEMENT_PROMPTS,
    gguf_logit_diff,
    greedy_agreement,
    load_source,
    next_token_agreement,
    prompt_ids,
    transformers_greedy,
)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_EMBEDDED, help="a release dir, or a base (default: the embedded)")
    parser.add_argument("--tokens", default="16,32", help="greedy tokens compared (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("results/gguf"))
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    model_dir = Path(resolve_base(args.model))
    lengths = sorted(int(n) for n in args.tokens.split(","))
    bindings = llama_cpp.bindings_version()
    quants = ["f16", "q8_0"] + (["q4_k_m"] if bindings else [])
    if not bindings:
        print(f"llama-cpp-python is not installed: no q4_k_m, no llama.cpp agreement ({llama_cpp.INSTALL_BINDINGS})")

    started = time.time()
    report = export_gguf(model_dir, quants, out=args.out / "gguf", overwrite=True)
    result = {"model": args.model, "export_seconds": round(time.time() - started, 1), "files": report.files}
    print(f"\nexport of {args.model}: {result['export_seconds']} s in all (converter start-up included)")
    for quant, entry in report.files.items():
        print(f"  {quant:7s} {entry['bytes'] / 1e6:8.1f} MB  {entry['seconds']:6.1f} s  {entry['file']}")

    source = load_source(model_dir)
    diff = gguf_logit_diff(model_dir, args.out / "gguf" / report.files["f16"]["file"], source=source)
    result["f16_transformers_max_abs_logit_diff"] = diff
    print(f"\ntransformers reads f16 back: max |logit diff| = {diff:.2e} (fp32, merge check batch)")

    if bindings:
        result["llama_cpp"] = {"bindings": bindings, "prompts": len(AGREEMENT_PROMPTS)}
        model, tokenizer = source
        longest = max(lengths)
        reference = transformers_greedy(model, prompt_ids(tokenizer), longest)
        for quant in ("f16", "q8_0", "q4_k_m"):
            path = args.out / "gguf" / report.files[quant]["file"]
            agreement = greedy_agreement(model_dir, path, n_tokens=longest, source=source, reference=reference)
            per_length = {n: sum(min(a, n) == n for a in agreement) for n in lengths}
            following = next_token_agreement(path, prompt_ids(tokenizer), reference)
            result["llama_cpp"][quant] = {
                "leading_tokens_agreeing": agreement,
                "prompts_agreeing_on_all": per_length,
                "first_token_agreeing": sum(a >= 1 for a in agreement),
                "next_token_agreement": following,
            }
            summary = ", ".join(
                f"{k} of {len(agreement)} prompts agree on all {n} tokens" for n, k in per_length.items()
            )
            print(
                f"llama.cpp {quant}: {summary}; first token {sum(a >= 1 for a in agreement)} of 10; next-token "
                f"agreement along transformers' continuations {following:.3f}; leading tokens per prompt: {agreement}"
            )
    write_text(args.out / "gguf_bench.json", json.dumps(result, indent=1) + "\n")
    print(f"\nWrote {args.out / 'gguf_bench.json'}")


if __name__ == "__main__":
    main()
