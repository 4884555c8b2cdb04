"""Serve a release over the OpenAI-compatible API of `transformers serve`, also one with cognitive modules.

    serve(["release/<name>", "--port", "8000"])      # what recipes/serve.py runs

A plain release (no modules) needs nothing of this: `transformers serve release/<name>` works as is. A release
with cognitive modules ships its modeling code (auto_map), which transformers 5.24's serve cannot find (it looks
the class up by name inside the transformers package). This loads that class from the release (trusted when it is
exactly what this checkout writes, else only with --trust-remote-code), makes it findable, and hands over to
transformers' own `serve` command unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.errors import UserError
from cognitive.model.remote_code import remote_code_is_current
from cognitive.release.merge import has_remote_code


def serve(argv: list[str]) -> None:
    """argv: the release dir, then `transformers serve` options."""
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


def expose_for_serve(release_dir: Path) -> str:
    """Make a modules release's model class findable by `transformers serve`; returns the class name.

    transformers 5.24's serve looks `config.architectures[0]` up inside the transformers package and never
    reads `auto_map`, so it cannot load remote code. This loads the release's class from its own shipped
    modeling code (as trust_remote_code would) and sets it on the transformers package under that name;
    serve then builds the model with `Class.from_pretrained(release, trust_remote_code=True)` as usual.
    """
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    config = json.loads((Path(release_dir) / "config.json").read_text())
    model_class = get_class_from_dynamic_module(config["auto_map"]["AutoModelForCausalLM"], str(release_dir))
    setattr(transformers, config["architectures"][0], model_class)
    return config["architectures"][0]
