"""A task type is three places (docs/adding-a-task-type.md): a toy type added to a copy of the project as a newcomer
would add one -- its generator module, an entry in the registry, its snapshot built by the recipe -- goes through the
whole pipeline: data (recipes/generate_data.py on a config of that type), the scorer, the rewards, the auxiliary
labels and one eval document (lm-eval on a tiny random-init model, through the task YAML the recipe generated).

The copy (cognitive/, recipes/, eval/, data/configs/) runs in subprocesses with the copy first on the path, so the
registry, its ReasoningType enum and every module that reads them see the new type; the checkout is not touched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from lm_eval.tasks._yaml_loader import load_yaml

from tests.conftest import run_lm_eval, run_python

ROOT = Path(__file__).resolve().parents[2]

# 1. the generator module: generate, an independent check, the scorer and (optional) a step-level reward hook
GENERATOR = '''\
"""toy_sum: how many things in two containers (a toy task type, written by tests/integration/test_toy_task_type.py)."""

from __future__ import annotations

from cognitive.data import answers, arith
from cognitive.data.schema import CognitiveTrainingExample, ReasoningStep

THINGS = {"shopping": "apples", "cooking": "eggs", "physics": "springs", "finance": "coins"}
TOP = {"basic": 9, "intermediate": 99, "advanced": 999, "expert": 9999}


def generate(rng, difficulty: str, domain: str) -> dict:
    a, b, thing = rng.randint(1, TOP[difficulty]), rng.randint(1, TOP[difficulty]), THINGS[domain]
    step = ReasoningStep(
        step=1,
        description=f"Add the two counts: {a} + {b} = {a + b}",
        reasoning="Everything in the box and the bag together.",
        memory_update=f"total: {a + b}",
    )
    return dict(
        domain=domain,
        context=f"A box holds {a} {thing} and a bag holds {b} {thing}.",
        instruction=f"How many {thing} are there in all?",
        reasoning_steps=[step],
        final_answer=str(a + b),
        problem_spec={"a": a, "b": b, "answer": str(a + b)},
    )


def check(example: CognitiveTrainingExample, strict: bool = True) -> list[str]:
    spec = example.problem_spec or {}
    total = int(spec["a"]) + int(spec["b"])  # its own way to the answer
    problems = [] if spec["answer"] == example.final_answer == str(total) else [f"the total is {total}"]
    steps = [c for s in example.reasoning_steps for c in arith.chains(s.description)]
    return problems + (["a false step"] if not all(c.ok for c in steps) else [])


def score(output, spec: dict) -> dict:
    return answers.score_numeric(output, spec["answer"])


def step_validity(text, spec: dict) -> float:
    """1 when the work writes the sum itself, else 0."""
    return float(f"{spec['a']} + {spec['b']} = {spec['answer']}" in (text if isinstance(text, str) else ""))
'''

# 2. the registry entry
ENTRY = """\
    TaskType(
        name="toy_sum",
        short="toy",
        eval_task="cognitive_toy",
        generator=f"{_GENERATORS}.toy_sum",
        metrics=("exact_match",),
        max_gen_toks=64,
        train_requests=("{question}", "Can you count? {question}"),
        plain_requests=("{question} I keep losing count.",),
    ),
"""

# 3. the snapshot (and its YAMLs) by the recipe; then data, scoring, rewards, aux labels and one eval document
DRIVER = """\
import json
import sys
from pathlib import Path

from cognitive import tasks
from cognitive.data.schema import iter_jsonl
from cognitive.evaluation.scoring import score_document
from cognitive.evaluation.snapshots import snapshot_path, to_doc
from cognitive.rl.rewards import correctness_reward, format_reward, state_steps_reward, step_validity_reward
from cognitive.train.aux_labels import plan_actions
from recipes import generate_data, snapshots

snapshots.main(["--task", "cognitive_toy", "--per_difficulty", "2"])
generate_data.main(["--config", "toy.yaml", "--out", "out", "--num_proc", "1", "--no_progress"])
records = [r for split in ("train", "validation", "test") for r in iter_jsonl(f"out/{split}.jsonl")]
record = records[0]
doc = to_doc(record)
spec = json.dumps(record.problem_spec)
completions = [record.response(), "Final Answer: 0", "I do not know."]
rewards = {
    f.__name__: f(completions, ["toy_sum"] * 3, [spec] * 3)
    for f in (correctness_reward, format_reward, step_validity_reward, state_steps_reward)
}
print(json.dumps({
    "registered": [t.name for t in tasks.TASK_TYPES],
    "snapshot": [r.id for r in iter_jsonl(snapshot_path("cognitive_toy"))],
    "records": [(r.task_type.value, r.verified) for r in records],
    "right": score_document(doc, record.response()),
    "wrong": score_document(doc, "Final Answer: 0"),
    "rewards": rewards,
    "plan_actions": plan_actions(record, 16),
}))
"""


@pytest.fixture(scope="module")
def toy_tree(tmp_path_factory) -> Path:
    """A copy of the project with the toy type added in its three places (the snapshot is built by the driver)."""
    tree = tmp_path_factory.mktemp("toy") / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    for part in ("cognitive", "recipes", "eval", "data/configs"):
        shutil.copytree(ROOT / part, tree / part, ignore=ignore)
    (tree / "cognitive/data/generators/toy_sum.py").write_text(GENERATOR)
    registry = tree / "cognitive/tasks.py"
    text = registry.read_text()
    end = "\n)\n\n# The guide's enum"
    assert text.count(end) == 1, "the registry's TASK_TYPES tuple moved: update this test"
    registry.write_text(text.replace(end, "\n" + ENTRY.rstrip("\n") + end))
    config = yaml.safe_load((ROOT / "data/configs/demo.yaml").read_text())
    config.update(
        target_size=12,
        task_distribution={"toy_sum": 1.0},
        difficulty_distribution={"intermediate": 1.0},
        tokenizer="whitespace",
    )
    (tree / "toy.yaml").write_text(yaml.safe_dump(config))
    (tree / "driver.py").write_text(DRIVER)
    return tree


@pytest.mark.slow
def test_a_toy_task_type_goes_through_the_pipeline_from_three_places(toy_tree, tiny_model_dir):
    env = {"PYTHONPATH": os.pathsep.join([str(toy_tree), os.environ.get("PYTHONPATH", "")])}
    result = run_python(["driver.py"], cwd=toy_tree, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["registered"][-1] == "toy_sum"
    # the snapshot and the task YAMLs the recipe wrote from the registry entry
    assert len(out["snapshot"]) == 6 and all(i.startswith("toy-") for i in out["snapshot"])
    task_yaml = load_yaml(toy_tree / "eval/tasks/cognitive/cognitive_toy.yaml", resolve_func=False)
    assert [m["metric"] for m in task_yaml["metric_list"]][:3] == ["score", "exact_match", "answered"]
    assert task_yaml["generation_kwargs"]["max_gen_toks"] == 64
    assert (toy_tree / "eval/tasks/cognitive/cognitive_toy_plain.yaml").is_file()
    # data: every record of the new type, verified by its own checker
    assert len(out["records"]) == 12 and all(r == ["toy_sum", True] for r in out["records"])
    # scoring through the registry: the reference answer scores 1, another 0
    assert out["right"]["score"] == 1.0 and out["right"]["exact_match"] == 1.0
    assert out["wrong"]["score"] == 0.0 and out["wrong"]["answered"] == 1.0
    # rewards: the scorer's correctness, the format, the type's own step hook, no state hook
    rewards = out["rewards"]
    assert rewards["correctness_reward"] == [1.0, 0.0, 0.0]
    assert rewards["format_reward"] == [1.0, 1.0, 0.0]
    assert rewards["step_validity_reward"] == [1.0, 0.0, 0.0]
    assert rewards["state_steps_reward"] == [None, None, None]
    assert out["plan_actions"] is None  # no plan_actions hook: no action labels

    # one eval document through the generated task YAML, on a tiny random-init model
    lm_eval_out = toy_tree / "lm_eval"
    model_args = f"pretrained={tiny_model_dir('llama')}"
    result = run_lm_eval(model_args, "cognitive_toy", out=lm_eval_out, max_gen_toks=8, cwd=toy_tree, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = lm_eval_out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["n-samples"]["cognitive_toy"]["effective"] == 1
    assert results["results"]["cognitive_toy"]["score,none"] == 0.0  # random weights: garbage, scored 0
    [samples_file] = lm_eval_out.rglob("samples_cognitive_toy_*.jsonl")
    [sample] = map(json.loads, samples_file.read_text().splitlines())
    assert (
        sample["doc"]["task"] == "cognitive_toy" and "Task Type: toy_sum" in sample["arguments"]["gen_args_0"]["arg_0"]
    )
