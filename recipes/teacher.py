"""Ask a teacher model to solve generated problems; keep the answers its checker verifies (cognitive/data/teacher.py).

    python recipes/teacher.py --hf_model path/to/model --config data/configs/default.yaml -n 200 \
        --out data/teacher/t.jsonl
    python recipes/teacher.py --endpoint http://localhost:8000/v1 --model Qwen/Qwen2.5-7B-Instruct \
        --config data/configs/default.yaml --out data/teacher/t.jsonl
    python recipes/generate_data.py --config data/configs/default.yaml --curated data/teacher/t.jsonl

The problems follow the data config's task / difficulty / domain mix, with seeds apart from its synthetic data's.
"""

import json

from cognitive.data.teacher import HFTeacher, OpenAITeacher, config_items, write_teacher_jsonl
from cognitive.errors import ArgumentParser, exit_on_user_error


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Ask a teacher model to solve generated problems; keep the verified answers.")
    backend = parser.add_mutually_exclusive_group(required=True)
    backend.add_argument("--hf_model", help="a local transformers model directory (or hub id)")
    backend.add_argument("--endpoint", help="an OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    parser.add_argument("--model", help="model name for --endpoint")
    parser.add_argument("--config", required=True, help="data/configs/<name>.yaml: the task / difficulty / domain mix")
    parser.add_argument("-n", type=int, default=100, help="problems to ask")
    parser.add_argument("--max_new_tokens", type=int, default=1024)
    parser.add_argument("--keep_failed", action="store_true", help="also write flagged answers (verified=false)")
    parser.add_argument("--out", required=True, help="JSONL for recipes/generate_data.py --curated")
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.endpoint and not args.model:
        parser.error("--endpoint needs --model")
    teacher = (
        HFTeacher(args.hf_model, max_new_tokens=args.max_new_tokens)
        if args.hf_model
        else OpenAITeacher(args.endpoint, args.model, max_tokens=args.max_new_tokens)
    )
    counts = write_teacher_jsonl(teacher, config_items(args.config, args.n), args.out, keep_failed=args.keep_failed)
    print(json.dumps({"out": args.out, **counts}))


if __name__ == "__main__":
    main()
