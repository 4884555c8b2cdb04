"""Chat with a release: load it, stream a reply, read the reply's reasoning steps and final answer.

    model, tokenizer = load_for_chat("release/demo")
    text = "".join(stream_reply(model, tokenizer, [{"role": "user", "content": "..."}]))
    parse_response(text)   # cognitive.data.response: {"steps": [...], "planning_steps": [...],
                           #   "final_answer": "...", "format_ok": True, "text": ...}

The reply is parsed with cognitive.data.response.parse_response (the trained layout is described there).

Remote code: a release with cognitive modules runs its shipped modeling code. It runs without asking only when it is
exactly what this checkout writes (cognitive.model.remote_code.foreign_code); otherwise only with
--trust_remote_code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from threading import Thread

from cognitive.data.response import FINAL_ANSWER_MARKER
from cognitive.errors import UserError
from cognitive.model.remote_code import trust_release_code


# ------------------------------------------------------------------------------------------------ loading
def load_for_chat(release_dir: str | Path, trust_remote_code: bool = False):
    """(model, tokenizer) of a release dir, in eval mode; bf16 on a GPU, fp32 on the CPU. Shipped code runs only
    when it is exactly this checkout's or `trust_remote_code` (the user's --trust_remote_code) is set."""
    import torch
    from transformers import AutoTokenizer

    from cognitive.release.merge import load_release

    path = Path(release_dir)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json); give a release dir, e.g. release/demo")
    trust = trust_release_code(path, trust_remote_code)
    cuda = torch.cuda.is_available()
    model = load_release(
        path,
        trust_remote_code=trust,
        dtype=torch.bfloat16 if cuda else torch.float32,
        device_map="cuda" if cuda else None,
    )
    return model.eval(), AutoTokenizer.from_pretrained(path, trust_remote_code=trust)  # reads config.json too


# ------------------------------------------------------------------------------------------------ generation
def stream_reply(
    model, tokenizer, messages: list[dict], max_new_tokens: int = 512, temperature: float = 0.0
) -> Iterator[str]:
    """Yield the reply's text as it is generated (greedy when temperature is 0)."""
    from transformers import TextIteratorStreamer

    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    kwargs = dict(
        **inputs,
        streamer=streamer,
        max_new_tokens=max_new_tokens,
        **sampling,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    errors: list[BaseException] = []

    def generate():
        try:
            model.generate(**kwargs)
        except BaseException as e:  # re-raised below; end the stream so the reader does not wait forever
            errors.append(e)
            streamer.end()

    thread = Thread(target=generate, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if errors:
        raise errors[0]


# ------------------------------------------------------------------------------------------------ parsing
def summary_line(parsed: dict) -> str:
    """One line after a streamed reply: how many steps were read, and the final answer."""
    counts = f"{len(parsed['steps'])} reasoning steps, {len(parsed['planning_steps'])} planning steps"
    if not parsed["format_ok"]:
        return f"-- {counts}; no {FINAL_ANSWER_MARKER} in the reply (not in the trained format)"
    return f"-- {counts}; final answer: {parsed['final_answer']}"
