"""Teacher backends: their answers pass the same verification as synthetic data, or are dropped."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from cognitive.data.generators import generate_example
from cognitive.data.schema import iter_jsonl
from cognitive.data.teacher import (
    CallableTeacher,
    HFTeacher,
    OpenAITeacher,
    response_steps,
    teacher_example,
    write_teacher_jsonl,
)
from cognitive.tasks import TASK_TYPES

TASKS = [t.name for t in TASK_TYPES]


def _oracle(task, difficulty, seed):
    """A 'teacher' that answers with the reference solution text (parsed back like any model output)."""
    reference = generate_example(task, difficulty, seed)
    return CallableTeacher(lambda messages: reference.response(), name="oracle")


@pytest.mark.parametrize("task", TASKS)
def test_a_correct_teacher_answer_is_verified(task):
    example, problems = teacher_example(_oracle(task, "intermediate", 21), task, "intermediate", 21)
    assert problems == [] and example.verified and example.quality_score >= 0.7
    assert example.generated_by == "teacher:oracle" and example.id.startswith("teacher-")


@pytest.mark.parametrize("task", TASKS)
def test_a_wrong_teacher_answer_is_flagged(task):
    liar = CallableTeacher(
        lambda m: "**Reasoning Process:**\n\n1. Guess\n   Reasoning: 2 + 2 = 4\n\n**Final Answer:** 5", "liar"
    )
    example, problems = teacher_example(liar, task, "basic", 3)
    assert problems and not example.verified and example.quality_score == 0.0


def test_tiny_local_hf_model_output_is_flagged_not_trusted(tiny_model_dir, tmp_path):
    teacher = HFTeacher(str(tiny_model_dir("llama")), max_new_tokens=24)
    example, problems = teacher_example(teacher, "chain_of_thought", "basic", 5)
    assert problems and not example.verified and example.quality_score < 0.7
    counts = write_teacher_jsonl(teacher, [("state_transition", "basic", 1)], tmp_path / "t.jsonl", keep_failed=True)
    assert counts == {"asked": 1, "verified": 0, "failed": 1}
    (kept,) = list(iter_jsonl(tmp_path / "t.jsonl"))
    assert kept.verified is False and kept.generated_by.startswith("teacher:")


def test_openai_compatible_endpoint(tmp_path):
    reference = generate_example("chain_of_thought", "basic", 8)
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen["path"] = self.path
            body = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": reference.response()}}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        teacher = OpenAITeacher(f"http://127.0.0.1:{server.server_port}/v1", model="mock-model")
        example, problems = teacher_example(teacher, "chain_of_thought", "basic", 8)
    finally:
        server.shutdown()
    assert seen["path"] == "/v1/chat/completions" and seen["body"]["model"] == "mock-model"
    assert [m["role"] for m in seen["body"]["messages"]] == ["system", "user"]
    assert problems == [] and example.verified


def test_response_steps_round_trips_the_training_layout():
    ex = generate_example("chain_of_thought", "advanced", 2)
    steps, final = response_steps(ex.response())
    assert final == ex.final_answer
    assert [(s.description, s.reasoning, s.memory_update) for s in steps] == [
        (s.description, s.reasoning, s.memory_update) for s in ex.reasoning_steps
    ]
    steps, final = response_steps("I think it is 12.\nSo 12")
    assert final == "So 12" and len(steps) == 1


def test_cli_with_a_local_hf_model_follows_the_config_mix(tiny_model_dir, tmp_path, capsys):
    """`python recipes/teacher.py --hf_model DIR --config ...`: the config's task mix, seeds apart from the
    synthetic data's, every answer through the checker (a random-init model's are all flagged)."""
    from cognitive.data.teacher import TEACHER_SEED_OFFSET, config_items
    from recipes.teacher import main

    items = config_items("data/configs/default.yaml", 8)
    assert all(seed >= TEACHER_SEED_OFFSET for _, _, seed, _ in items)
    assert len({task for task, *_ in items}) >= 4  # the default mix has all five task types
    main(
        [
            "--hf_model",
            str(tiny_model_dir("llama")),
            "--config",
            "data/configs/default.yaml",
            "-n",
            "3",
            "--max_new_tokens",
            "16",
            "--keep_failed",
            "--out",
            str(tmp_path / "t.jsonl"),
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"out": str(tmp_path / "t.jsonl"), "asked": 3, "verified": 0, "failed": 3}
    kept = list(iter_jsonl(tmp_path / "t.jsonl"))
    assert [(k.task_type.value, k.difficulty.value, k.domain) for k in kept] == [
        (task, difficulty, domain) for task, difficulty, _, domain in config_items("data/configs/default.yaml", 3)
    ]
    assert all(not k.verified for k in kept) and not (tmp_path / "t.jsonl.tmp").exists()
