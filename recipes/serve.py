"""Serve a release over the OpenAI-compatible API of `transformers serve`, also one with cognitive modules.

    python recipes/serve.py release/<name> [--host 127.0.0.1] [--port 8000] [other `transformers serve` options]

A plain release (no modules) needs nothing of this: `transformers serve release/<name>` works as is. For a release
with cognitive modules see cognitive/release/serve.py.
"""

from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.release.serve import serve

# Flags this parser does not know go to `transformers serve` as they are.
EXTRA_FLAGS = "transformers serve"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="release directory (python recipes/merge.py --out ...)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: transformers serve's)")
    parser.add_argument(
        "--trust_remote_code", action="store_true", help="run modeling code this checkout did not write"
    )
    return parser


@exit_on_user_error
def main(argv=None):
    args, options = build_parser().parse_known_args(argv)
    options = [*(["--host", args.host] if args.host else []), *(["--port", str(args.port)] if args.port else [])] + [
        *options,
        *(["--trust-remote-code"] if args.trust_remote_code else []),  # transformers serve's own spelling
    ]
    serve([args.release, *options])


if __name__ == "__main__":
    main()
