"""Chat with a release: load it, stream a reply, read the reply's reasoning steps and final answer.

    model, tokenizer = load_for_chat("release/demo")
    text = "".join(stream_reply(model, tokenizer, [{"role": "user", "content": "..."}]))
    parse_response(text)   # cognitive.data.response: {"steps": [...], "planning_steps": [...], "final_answer": "...", "format_ok": True, "text": ...}

The reply is parsed with cognitive.data.response.parse_response (the trained layout is described there).

Remote code: a release with cognitive modules runs its shipped modeling code. It is trusted without asking only
when it is byte-for-byte what this checkout writes (cognitive/model/remote_code.py); otherwise --trust-remote-code.
"""

from __future__ import annotations

from cognitive.model.remote_code import remote_code_is_current
from pathlib import Path
from threading import Thread
from typing import Iterator

from cognitive.errors import UserError
from cognitive.data.response import FINAL_ANSWER_MARKER


# ------------------------------------------------------------------------------------------------ loading
def load_for_chat(release_dir: str | Path, trust_remote_code: bool = False):
    """(model, tokenizer) of a release dir, in eval mode; bf16 on a GPU, fp32 on the CPU."""
    import torch
    from transformers import AutoTokenizer

    from cognitive.release.merge import has_remote_code, load_release

    path = Path(release_dir)
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a model directory (no config.json); give a release dir, e.g. release/demo")
    remote = has_remote_code(path)
    if remote and not trust_remote_code and not remote_code_is_current(path):
        raise UserError(f"{path} ships modeling code that differs from this checkout's; read its *.py files, "
                        f"then pass --trust-remote-code to run it")
    cuda = torch.cuda.is_available()
    model = load_release(path, trust_remote_code=remote, dtype=torch.bfloat16 if cuda else torch.float32,
                         device_map="cuda" if cuda else None)
    return model.eval(), AutoTokenizer.from_pretrained(path, trust_remote_code=remote)  # reads config.json too


# ------------------------------------------------------------------------------------------------ generation
def stream_reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 512,
                 temperature: float = 0.0) -> Iterator[str]:
    """Yield the reply's text as it is generated (greedy when temperature is 0)."""
    from transformers import TextIteratorStreamer

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens, **sampling,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
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
