"""Serve a release over the OpenAI-compatible API of `transformers serve`, also one with cognitive modules.

    python recipes/serve.py release/<name> [--host 127.0.0.1] [--port 8000] [other `transformers serve` options]

A plain release (no modules) needs nothing of this: `transformers serve release/<name>` works as is. For a release
with cognitive modules see cognitive/release/serve.py.
"""

import sys

from cognitive.errors import exit_on_user_error
from cognitive.release.serve import serve


@exit_on_user_error
def main(argv=None):
    serve(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
