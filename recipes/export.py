"""Export a release without cognitive modules to GGUF for llama.cpp, Ollama and LM Studio.

    python recipes/export.py --release release/<name> --quant q8_0 [--overwrite]
    python recipes/export.py --release release/<name> --quant q8_0,q4_k_m,f16

Writes release/<name>/gguf/<name>-<quant>.gguf per quant, an Ollama Modelfile (FROM, the chat template as Ollama's Go
template, stop tokens, greedy PARAMETERs; Modelfile.<quant> for each further quant), export.json (sizes, sha256,
tool versions), and adds "Run it in llama.cpp / Ollama" to the release's model card. llama.cpp's own converter
(pinned, fetched once) writes f16 and q8_0; q4_k_m needs its quantizer: pip install -r requirements-export.txt.
Pre-checks fail in one line (exit 2) before anything is written; the output is staged and renamed when complete.
See docs/export.md.
"""

from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.release.export import QUANTS, export_gguf, parse_quants, run_commands


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="release dir (python recipes/merge.py --out ...)")
    parser.add_argument("--quant", default="q8_0", help=f"{', '.join(QUANTS)}; comma-separated for several")
    parser.add_argument("--out", default=None, help="output dir (default: <release>/gguf)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output dir")
    parser.add_argument(
        "--no_modelfile",
        action="store_true",
        help="GGUF only: for a chat template Ollama's cannot express (llama.cpp runs the template inside the GGUF)",
    )
    return parser


@exit_on_user_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    report = export_gguf(
        args.release,
        parse_quants(args.quant),
        out=args.out,
        overwrite=args.overwrite,
        with_modelfile=not args.no_modelfile,
    )
    for quant, entry in report.files.items():
        print(f"{quant}: {report.out}/{entry['file']} ({entry['bytes'] / 1e6:.1f} MB, {entry['seconds']} s)")
    if report.llama_cpp_check:
        print(f"read back: {report.llama_cpp_check}")
    print(f"model card: {report.model_card}" if report.model_card else "model card: none updated")
    print("\nRun it:\n" + "\n".join(f"  {line}" for line in run_commands(report)))


if __name__ == "__main__":
    main()
