"""Serve one release over the OpenAI-compatible API of `transformers serve`, also one with cognitive modules.

    serve(["release/<name>", "--port", "8000"])      # what recipes/serve.py runs

This runs transformers' own `serve` command pinned to the release (its `force_model`), with three additions:

* a release with cognitive modules ships its modeling code (auto_map), which transformers 5.24's serve cannot find
  (it looks the class up by name inside the transformers package): the shipped class is loaded from the release
  and made findable. That code runs only when it is exactly what this checkout writes, or with
  --trust_remote_code (cognitive.model.remote_code.trust_release_code).
* the server serves exactly that release: a request naming another model is refused (403), `POST /load_model` of
  anything else included, so a client cannot make the server import code from another directory; routes that are
  not part of the chat API are refused too.
* a schema-invalid chat request (messages not a list of role/content objects, a max_tokens that is not a positive
  integer, ...) gets 400 with a message instead of a bare 500.

It listens on 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

from cognitive.errors import UserError
from cognitive.model.remote_code import trust_release_code

DEFAULT_HOST = "127.0.0.1"
MODEL_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/load_model")  # body names a model
OPEN_POST_ROUTES = ("/reset",)  # unloads the model; the next request loads the release again
ROLES = ("system", "developer", "user", "assistant", "tool")


def serve(argv: list[str]) -> None:
    """argv: the release dir, then `transformers serve` options (--host defaults to 127.0.0.1)."""
    if not argv or argv[0].startswith("-"):
        raise UserError(
            "usage: python recipes/serve.py release/<name> [--host H] [--port P] [--trust_remote_code] "
            "[transformers serve options]"
        )
    release, options = Path(argv[0]), list(argv[1:])
    if not (release / "config.json").is_file():
        raise UserError(f"{release} is not a model directory (no config.json)")
    opted_in = "--trust-remote-code" in options  # recipes/serve.py's --trust_remote_code, in serve's own spelling
    options = [o for o in options if o != "--trust-remote-code"]
    if trust_release_code(release, opted_in):
        print(f"serving {release} with its shipped class {expose_for_serve(release)}", flush=True)
        options.append("--trust-remote-code")
    if not any(o == "--host" or o.startswith("--host=") for o in options):
        options += ["--host", DEFAULT_HOST]
    import transformers.cli.serving.server as server_module
    from transformers.cli.transformers import app

    build_server = server_module.build_server

    def build_pinned_server(*args, **kwargs):
        return pin_to_release(build_server(*args, **kwargs), str(release))

    server_module.build_server = build_pinned_server  # transformers' Serve imports it when it starts
    try:
        app(["serve", str(release), *options], prog_name="transformers")
    finally:
        server_module.build_server = build_server


def pin_to_release(app, release: str):
    """Add the request checks above to transformers' FastAPI app; returns it."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def only_this_release(request: Request, call_next):
        if request.method != "POST":
            return await call_next(request)
        path = request.url.path
        if path in OPEN_POST_ROUTES:
            return await call_next(request)
        if path not in MODEL_ROUTES:
            return _error(JSONResponse, 403, f"{path} is not served: this server serves only {release}")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(JSONResponse, 400, "the request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(JSONResponse, 400, "the request body must be a JSON object")
        model = body.get("model")
        if model is not None and not _same_model(model, release):
            return _error(JSONResponse, 403, f"this server serves only {release}; it loads no other model ({model!r})")
        if path == "/v1/chat/completions":
            problem = chat_request_problem(body)
            if problem:
                return _error(JSONResponse, 400, problem)
        return await call_next(request)

    return app


def chat_request_problem(body: dict) -> str | None:
    """What is wrong with a chat completion request body (None: nothing the server would choke on)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list of {role, content} objects"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object with 'role' and 'content'"
        if message.get("role") not in ROLES:
            return f"messages[{i}].role must be one of {', '.join(ROLES)}"
        content = message.get("content")
        if not isinstance(content, (str, list)) and not (content is None and message["role"] == "assistant"):
            return f"messages[{i}].content must be a string or a list of content parts"
    for key in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            return f"'{key}' must be a positive integer, got {value!r}"
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high
        ):
            return f"'{key}' must be a number from {low:g} to {high:g}, got {value!r}"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "'stream' must be true or false"
    return None


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


def _same_model(requested, release: str) -> bool:
    if not isinstance(requested, str):
        return False
    if requested == release:
        return True
    return Path(requested).expanduser().resolve() == Path(release).expanduser().resolve()


def _error(response_class, status: int, message: str):
    """An OpenAI-style error body."""
    kind = "invalid_request_error" if status == 400 else "permission_error"
    return response_class({"error": {"message": message, "type": kind}}, status_code=status)
