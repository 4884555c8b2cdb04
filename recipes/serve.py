"""Serve a release over the OpenAI-compatible API of `transformers serve`, also one with cognitive modules.

    python recipes/serve.py release/<name> [--host 127.0.0.1] [--port 8000] [other `transformers serve` options]

A plain release (no modules) needs nothing of this: `transformers serve release/<name>` works as is. A release
with cognitive modules ships its modeling code (auto_map), which transformers 5.24's serve cannot find (it
looks the class up by name inside the transformers package). This launcher loads that class from the release
(trusted when it is exactly what this checkout writes, else pass --trust-remote-code after reading it), makes
it findable, and hands over to transformers' own `serve` command unchanged.
"""

import sys
from pathlib import Path

from cognitive.errors import UserError, exit_on_user_error
from cognitive.release import has_remote_code
from cognitive.remote_code import expose_for_serve, remote_code_is_current


@exit_on_user_error
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise UserError("usage: python recipes/serve.py release/<name> [transformers serve options]")
    release = Path(argv[0])
    if not (release / "config.json").is_file():
        raise UserError(f"{release} is not a model directory (no config.json)")
    if has_remote_code(release):
        if "--trust-remote-code" not in argv and not remote_code_is_current(release):
            raise UserError(f"{release} ships modeling code that differs from this checkout's; read its *.py "
                            f"files, then pass --trust-remote-code")
        print(f"serving {release} with its shipped class {expose_for_serve(release)}", flush=True)
        argv += [] if "--trust-remote-code" in argv else ["--trust-remote-code"]
    from transformers.cli.transformers import app

    app(["serve", *argv], prog_name="transformers")


if __name__ == "__main__":
    main()
