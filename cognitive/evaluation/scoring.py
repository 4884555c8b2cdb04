"""Scoring the evaluation documents (eval/tasks/cognitive/utils.py calls `score_document`).

Each task type's scorer lives in its generator module (`score(output, problem_spec)`, named by the registry,
cognitive/tasks.py); the answer readers they share (final-answer markers, numbers, entity mentions) are in
cognitive/data/answers.py. Per task (every scorer returns floats in [0, 1] and `answered`: a final answer could be
read at all):
    cognitive_reasoning  exact_match   the final number equals the answer exactly (chain_of_thought.score)
    cognitive_planning   valid         the plan read from the answer, simulated against the problem: every task once
                                       with its duration, after its dependencies, the shared resource never used
                                       twice at a time, everything done by the deadline -- any valid plan scores
                         optimal       valid and as short as the best possible plan (planning.score)
    cognitive_state      exact_match   normalised entity match; lists must match completely (state_transition.score)
    cognitive_logic      cell_accuracy share of (person, category) cells right; grid_accuracy: all cells right
                                       (problem_solving.score)
    cognitive_memory     exact_match   normalised entity match, the right room or person (memory_recall.score)
`score` is each task's headline metric (the first of its metrics in cognitive/tasks.py); the
group `cognitive` averages it. `score_<difficulty>` is `score` on that difficulty's documents only.

Every document also gets `step_accuracy` (when its output writes arithmetic): the share of its "a op b = c" steps
that hold (cognitive.data.arith.step_share).

Empty, truncated, unparseable or other-format outputs score 0; nothing here raises on model output
(`score_output` also guards against a scorer bug: it logs it and scores the document 0).
"""

from __future__ import annotations

import json
import logging

from cognitive import tasks
from cognitive.data import arith

log = logging.getLogger(__name__)


def score_output(task: tasks.TaskType, output: str | None, spec: dict, doc_id=None) -> dict[str, float]:
    """The task type's metrics of one output (its scorer); a scorer bug must not lose a whole run (an evaluation, or
    an RL step that scores with it): it is logged and the output scores 0."""
    try:
        return task.scorer_function()(output, spec)
    except Exception:
        log.exception("scoring %s document %s failed; scored 0", task.eval_task, doc_id)
        return task.zero_metrics()


def score_document(doc: dict, output: str | None) -> dict[str, float]:
    """lm-eval process_results of a cognitive_* document (doc["task"] names its eval task): the task type's
    metrics (cognitive.tasks), `score` (its headline metric) and `score_<difficulty>` (present only for
    documents of that difficulty)."""
    task = tasks.get(doc["task"])
    metrics = score_output(task, output, json.loads(doc["problem_spec"]), doc.get("id"))
    score = metrics[task.headline]
    return {**metrics, "score": score, f"score_{doc['difficulty']}": score, **step_metrics(output)}


def step_metrics(output: str | None) -> dict[str, float]:
    """{"step_accuracy": the share of the arithmetic steps ("a op b = c") the output writes that hold}, read with the
    checkers' arithmetic reader (cognitive.data.arith); {} when it writes none. A model can reach a
    right answer through false steps, or write true steps to a wrong one: this separates reasoning from imitation
    of the answer format."""
    share = arith.step_share(output)
    return {} if share is None else {"step_accuracy": share}
