"""Chat with a release: streamed replies, parsed into reasoning steps and a final answer.

    python recipes/chat.py release/demo                                     # interactive; /reset, /quit or Ctrl-D
    python recipes/chat.py release/demo --json --prompt "Context: ... Instruction: ..."   # one JSON line per prompt
    printf '%s\n' "prompt one" "prompt two" | python recipes/chat.py release/demo --json  # prompts from stdin

--json prints, per prompt, {"prompt", "steps", "planning_steps", "final_answer", "format_ok", "text"} (single-turn,
greedy unless --temperature). The system prompt is the one the training data used (--system "" for none).
A release with cognitive modules runs its shipped code; it is trusted automatically only when it is exactly what
this checkout writes, otherwise pass --trust_remote_code after reading it.
"""

import json
import sys

from cognitive.data.response import DEFAULT_SYSTEM_PROMPT, parse_response
from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.release.chat import load_for_chat, stream_reply, summary_line


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="release directory (python recipes/merge.py --out ...)")
    parser.add_argument("--json", action="store_true", help="no conversation: one JSON line per prompt")
    parser.add_argument(
        "--prompt", action="append", default=[], help="with --json: a prompt (repeatable; default: stdin lines)"
    )
    parser.add_argument("--system", default=DEFAULT_SYSTEM_PROMPT, help="system prompt ('' for none)")
    parser.add_argument("--max_new_tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument(
        "--trust_remote_code", action="store_true", help="run modeling code this checkout did not write"
    )
    return parser


@exit_on_user_error
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    model, tokenizer = load_for_chat(args.release, args.trust_remote_code)
    system = [{"role": "system", "content": args.system}] if args.system else []
    settings = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}

    if args.json:
        prompts = args.prompt or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        for prompt in prompts:
            text = "".join(stream_reply(model, tokenizer, system + [{"role": "user", "content": prompt}], **settings))
            print(json.dumps({"prompt": prompt, **parse_response(text)}, ensure_ascii=False), flush=True)
        return

    print(f"Chatting with {args.release}. /reset starts over, /quit or Ctrl-D ends.")
    history = []
    while True:
        try:
            prompt = input("\nyou> ").strip()
        except EOFError:
            break
        if prompt in ("/quit", "/exit"):
            break
        if prompt == "/reset":
            history = []
            continue
        if not prompt:
            continue
        history.append({"role": "user", "content": prompt})
        print("model> ", end="", flush=True)
        reply = ""
        for piece in stream_reply(model, tokenizer, system + history, **settings):
            print(piece, end="", flush=True)
            reply += piece
        history.append({"role": "assistant", "content": reply})
        print(f"\n{summary_line(parse_response(reply))}")
    print()


if __name__ == "__main__":
    main()
