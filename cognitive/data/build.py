"""Build a dataset directory from a DatasetConfiguration: plan the mix, generate in parallel, run the
quality stages (cognitive.data.filters), split by id hash, write JSONL + a datasets DatasetDict + reports.

    build_dataset(DatasetConfiguration.from_yaml("data/configs/demo.yaml"), "data/synthetic/demo")

Determinism: slot i of the plan (a task, difficulty and domain) tries seeds config.seed + i,
config.seed + N + i, config.seed + 2N + i, ... (N = number of synthetic slots) until one example passes
every stage; results are consumed in slot order whatever --num_proc is, so the output is byte-identical
for the same config. All seeds lie in cognitive.data.TRAIN_SEEDS (a config that would step outside
it is refused).

Output (written to <out>.partial, then renamed; an existing --out is replaced only when it is a dataset this project
wrote, cognitive/atomic.py):
    train.jsonl validation.jsonl test.jsonl   (or train-00000-of-0000N.jsonl ... when sharded)
    dataset/                                  datasets.DatasetDict.save_to_disk
    report.json                               kept / dropped per stage and why
    .cognitive-slm.json                       the marker: a dataset this project wrote (--overwrite may replace it)
    stats.json, token_lengths.png, steps.png  counts per task, difficulty, domain; diversity; lengths
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import shutil
import time
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from cognitive import PROJECT_ROOT, tasks
from cognitive.atomic import check_replaceable, output_dir
from cognitive.data import filters
from cognitive.data.generators import TRAIN_SEEDS, generate_checked
from cognitive.data.schema import CognitiveTrainingExample, DatasetConfiguration, iter_jsonl
from cognitive.data.verify import QUALITY_SCORE_DOC, verify
from cognitive.errors import UserError
from cognitive.plots import plot_histograms

SPLITS = ("train", "validation", "test")
DEFAULT_EVAL_DIR = PROJECT_ROOT / "eval" / "data"  # the eval snapshots, wherever the command runs from
STAGES = ("schema", "verification", "length", "decontamination", "exact_dedup", "near_dedup")
CHUNK = 256
TRIGRAM_SAMPLE = 5000


# ----------------------------------------------------------------------------------------- planning
def load_config(path: str | Path, **overrides) -> DatasetConfiguration:
    """DatasetConfiguration.from_yaml plus the checks that need the generators (domains, seed range);
    every error names the file. `overrides` (None values ignored) replace keys before the checks."""
    config = DatasetConfiguration.from_yaml(path)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        try:
            config = DatasetConfiguration.model_validate({**config.model_dump(), **overrides})
        except ValidationError as e:
            err = e.errors()[0]
            raise UserError(f"{path} with --{'.'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}") from None
    try:
        check_domains(config)
        check_seed_range(config, config.target_size)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    return config


def allocate(total: int, shares: dict) -> list:
    """Exact counts for `total` items by largest remainder, as a flat list of keys."""
    raw = {k: total * v for k, v in shares.items()}
    counts = {k: int(r) for k, r in raw.items()}
    for k in sorted(raw, key=lambda k: (counts[k] - raw[k], str(k)))[: total - sum(counts.values())]:
        counts[k] += 1
    return [k for k in shares for _ in range(counts[k])]


def check_domains(config: DatasetConfiguration) -> None:
    """Every domain of the config's domain_distribution is one the generators know (a one-line UserError)."""
    unknown = sorted(set(config.domain_distribution) - set(tasks.DOMAINS))
    if unknown:
        raise UserError(f"key 'domain_distribution.{unknown[0]}': unknown domain (known: {', '.join(tasks.DOMAINS)})")


def plan_slots(config: DatasetConfiguration, n: int) -> list[tuple[str, str, str]]:
    """n (task, difficulty, domain) slots whose marginals match the config exactly (up to rounding);
    the three lists are shuffled independently so the joint is close to the product of the marginals."""
    check_domains(config)
    rng = random.Random(config.seed)
    columns = []
    for shares in (config.task_distribution, config.difficulty_distribution, config.domain_distribution):
        col = [getattr(k, "value", k) for k in allocate(n, shares)]
        rng.shuffle(col)
        columns.append(col)
    return list(zip(*columns))


def slot_seed(config: DatasetConfiguration, n_slots: int, slot: int, attempt: int) -> int:
    return config.seed + attempt * n_slots + slot


def check_seed_range(config: DatasetConfiguration, n_slots: int) -> None:
    first, last = config.seed, slot_seed(config, n_slots, n_slots - 1, config.max_attempts - 1)
    if first not in TRAIN_SEEDS or last not in TRAIN_SEEDS:
        raise UserError(
            f"key 'seed': {config.seed} with {n_slots} slots x {config.max_attempts} attempts uses seeds "
            f"{first}..{last}, outside the training seeds {TRAIN_SEEDS}"
        )


# ------------------------------------------------------------------------------- per-example work
_COUNTER: filters.TokenCounter | None = None


_LENGTH_STYLE = "guide"


def _load_counter(tokenizer_spec: str, length_style: str = "guide") -> None:
    global _COUNTER, _LENGTH_STYLE
    _COUNTER, _LENGTH_STYLE = filters.TokenCounter(tokenizer_spec), length_style


def _measure(examples: list[CognitiveTrainingExample], problems: list[list[str]]) -> list[dict]:
    """What the main process needs to run the stages, without re-parsing the example."""
    lengths = _COUNTER.count_many(examples, _LENGTH_STYLE)
    out = []
    for ex, probs, n_tokens in zip(examples, problems, lengths):
        text = filters.problem_text(ex)
        out.append(
            dict(
                id=ex.id,
                line=ex.model_dump_json(exclude_none=True),
                verified=ex.verified,
                score=ex.quality_score,
                problems=probs,
                tokens=n_tokens,
                hash=filters.text_hash(text),
                signature=filters.minhash_signature(text),
                task=ex.task_type.value,
                difficulty=ex.difficulty.value,
                domain=ex.domain,
                template=(ex.problem_spec or {}).get("template"),
                steps=len(ex.reasoning_steps),
                text=text,
            )
        )
    return out


def _generate_chunk(items: list[tuple[int, int, str, str, str]]) -> list[dict]:
    examples, problems = [], []
    for _slot, seed, task, difficulty, domain in items:
        ex, found = generate_checked(task, difficulty, seed, domain=domain)
        examples.append(ex)
        problems.append(found)
    return _measure(examples, problems)


def _curated_chunk(examples: list[CognitiveTrainingExample]) -> list[dict]:
    return _measure(examples, [verify(ex) for ex in examples])


# ------------------------------------------------------------------------------------ the stages
class Report:
    """Counts per stage: how many went in, how many were dropped and why."""

    def __init__(self):
        self.stages = {s: {"in": 0, "dropped": 0, "reasons": Counter()} for s in STAGES}

    def drop(self, stage: str, reason: str, task: str) -> None:
        self.stages[stage]["dropped"] += 1
        self.stages[stage]["reasons"][f"{task}: {reason}"] += 1

    def to_dict(self) -> dict:
        return {
            s: {
                "in": v["in"],
                "kept": v["in"] - v["dropped"],
                "dropped": v["dropped"],
                "reasons": dict(v["reasons"].most_common(20)),
            }
            for s, v in self.stages.items()
        }


class Filter:
    """Runs the quality stages (after schema) on measured examples, in the order they arrive."""

    def __init__(self, config: DatasetConfiguration, eval_hashes: set[str], report: Report):
        self.config, self.eval_hashes, self.report = config, eval_hashes, report
        self.dedup = filters.Deduplicator(config.near_duplicate_threshold)

    def passes(self, r: dict) -> bool:
        st = self.report
        st.stages["verification"]["in"] += 1
        if r["problems"] or not r["verified"] or r["score"] < self.config.quality_threshold:
            reason = (r["problems"] or ["quality_score below threshold"])[0]
            st.drop(
                "verification", "unverifiable" if reason.startswith("unverifiable") else _reason_kind(reason), r["task"]
            )
            return False
        st.stages["length"]["in"] += 1
        if r["tokens"] > self.config.max_tokens:
            st.drop("length", f"over {self.config.max_tokens} tokens", f"{r['task']}/{r['difficulty']}")
            return False
        st.stages["decontamination"]["in"] += 1
        if r["hash"] in self.eval_hashes:
            st.drop("decontamination", "matches an eval record", r["task"])
            return False
        st.stages["exact_dedup"]["in"] += 1
        verdict = self.dedup.check(r["hash"], r["signature"])
        if verdict == "exact duplicate":
            st.drop("exact_dedup", verdict, r["task"])
            return False
        st.stages["near_dedup"]["in"] += 1
        if verdict == "near duplicate":
            st.drop("near_dedup", verdict, f"{r['task']}/{r['difficulty']}")
            return False
        return True


def _reason_kind(problem: str) -> str:
    """'step 3: result 12 but ...' -> 'step N: result N but ...' so the report groups findings."""
    return re.sub(r"\d+", "N", problem)[:120]


# ------------------------------------------------------------------------------------- the build
def build_dataset(
    config: DatasetConfiguration,
    out: str | Path,
    *,
    num_proc: int = 1,
    overwrite: bool = False,
    tokenizer: str | None = None,
    eval_dir: str | None = None,
    decontaminate: bool = True,
    progress: bool = True,
) -> dict:
    """Generate, verify, filter, split and save; returns the report (also written to report.json)."""
    out = Path(out)
    exists = UserError(f"{out} exists; pass --overwrite to replace it")
    check_replaceable(out, "dataset", overwrite=overwrite, exists_error=exists)  # before any work
    tokenizer = tokenizer or config.tokenizer
    eval_dir = Path(eval_dir or config.eval_dir or DEFAULT_EVAL_DIR)
    start = time.time()
    n_curated_target = round(config.target_size * (1 - config.synthetic_ratio)) if config.curated_files else 0
    check_domains(config)  # before any work (a config built in code has not been through load_config)
    check_seed_range(config, config.target_size)
    eval_hashes = load_decontamination_hashes(eval_dir) if decontaminate else set()
    _load_counter(tokenizer, config.length_style)  # before the workers fork; fails early (one line) on a bad tokenizer
    curated = _load_curated(config.curated_files)
    with output_dir(out, kind="dataset", overwrite=overwrite, exists_error=exists) as tmp:
        report, writer = Report(), SplitWriter(tmp, config)
        filt = Filter(config, eval_hashes, report)
        report.stages["schema"]["in"] += len(curated)
        with _pool(num_proc) as pool:
            for r in _run(pool, _curated_chunk, _chunks(curated), len(curated), "curated", progress):
                if writer.count < n_curated_target and filt.passes(r):
                    writer.add(r)
            n_curated = writer.count
            slots = plan_slots(config, config.target_size - n_curated)  # synthetic data fills what curated did not
            pending, attempts = list(range(len(slots))), Counter()
            for attempt in range(config.max_attempts):
                if not pending:
                    break
                items = [(i, slot_seed(config, len(slots), i, attempt), *slots[i]) for i in pending]
                failed = []
                desc = "generate" if attempt == 0 else f"refill {attempt}"
                for item, r in zip(items, _run(pool, _generate_chunk, _chunks(items), len(items), desc, progress)):
                    attempts[attempt] += 1
                    report.stages["schema"]["in"] += 1  # synthetic records are validated when they are built
                    if filt.passes(r):
                        writer.add(r)
                    else:
                        failed.append(item[0])
                pending = failed
        check_shortfall(config, slots, pending, report)
        timings = {"generate_and_filter": round(time.time() - start, 2)}
        t = time.time()
        files = writer.finish(config.shard_size)
        save_dataset_dict(files, tmp, tmp / "dataset", num_proc)
        timings["jsonl_and_dataset_dict"] = round(time.time() - t, 2)
        t = time.time()
        stats = write_stats(writer.kept, tmp)
        timings["stats_and_plots"] = round(time.time() - t, 2)
        result = {
            "config": config.model_dump(mode="json"),
            "tokenizer": tokenizer + (" (approximate: whitespace words)" if tokenizer == filters.WHITESPACE else ""),
            "eval_dir": str(eval_dir) if decontaminate else "skipped (--no_decontaminate)",
            "eval_records_hashed": len(eval_hashes),
            "generated": sum(attempts.values()),
            "attempts_by_round": dict(attempts),
            "curated_read": len(curated),
            "curated_kept": n_curated,
            "synthetic_slots": len(slots),
            "unfilled_slots": len(pending),
            "stages": report.to_dict(),
            "kept": writer.count,
            "splits": stats["splits"],
            "files": sorted(f for fs in files.values() for f in fs),
            "quality_score": QUALITY_SCORE_DOC,
            "seconds": round(time.time() - start, 2),
            "timings": timings,
            "stats": "stats.json",
            "distinct_templates": stats["distinct_templates"],
        }
        (tmp / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def check_shortfall(config: DatasetConfiguration, slots: list[tuple], pending: list[int], report: Report) -> None:
    """Slots still empty after max_attempts refills are an error, never a smaller dataset written silently: first
    any task type / difficulty whose slots all stayed empty (typically: its examples do not fit max_tokens), then
    the shortfall itself, each with the reasons its examples were dropped."""
    if not pending:
        return
    wanted = Counter((task, difficulty) for task, difficulty, _ in slots)
    empty = Counter((slots[i][0], slots[i][1]) for i in pending)
    reasons = Counter()
    for stage in report.stages.values():
        reasons.update(stage["reasons"])

    def why(task: str, difficulty: str | None = None) -> str:
        def about(key: str) -> bool:  # report keys read "task: reason" or "task/difficulty: reason"
            if difficulty is None:
                return key == task or key.startswith(f"{task}/")
            return key in (task, f"{task}/{difficulty}")

        top = Counter({r: n for r, n in reasons.items() if about(r.split(":")[0])}).most_common(2)
        return "; ".join(f"{r.split(': ', 1)[1]} x{n}" for r, n in top) or "no reason recorded"

    gone = sorted(pair for pair, n in wanted.items() if empty[pair] == n)
    task_names = sorted({task for task, _ in wanted})
    tasks_gone = [t for t in task_names if all(pair in gone for pair in wanted if pair[0] == t)]
    if tasks_gone:
        raise UserError(
            f"task type {', '.join(tasks_gone)}: every example was dropped ({why(tasks_gone[0])}); "
            f"raise max_tokens (now {config.max_tokens}) or remove it from task_distribution"
        )
    if gone:
        names = ", ".join(f"{t}/{d}" for t, d in gone)
        raise UserError(
            f"{names}: every example was dropped ({why(*gone[0])}); raise max_tokens (now "
            f"{config.max_tokens}) or remove that difficulty from difficulty_distribution"
        )
    worst = empty.most_common(1)[0][0]
    raise UserError(
        f"{len(pending)} of {len(slots)} slots still empty after {config.max_attempts} attempts (most: "
        f"{worst[0]}/{worst[1]} x{empty[worst]}: {why(*worst)}); raise max_attempts or max_tokens, or lower target_size"
    )


def load_decontamination_hashes(eval_dir: Path) -> set[str]:
    """The normalized hashes of every eval record under eval_dir; a directory that is missing or holds no eval
    records is an error (decontamination must not be skipped by a mistyped path)."""
    hint = "; pass --no_decontaminate to build without it (recorded in report.json)"
    if not eval_dir.is_dir():
        raise UserError(f"eval_dir {eval_dir} does not exist: decontamination needs the eval snapshots{hint}")
    hashes = filters.load_eval_hashes(eval_dir)
    if not hashes:
        raise UserError(f"eval_dir {eval_dir} holds no *.jsonl eval records{hint}")
    return hashes


def split_of(example_id: str, config: DatasetConfiguration) -> str:
    """Stable split from the id alone: an example lands in the same split in every dataset that holds it."""
    u = int.from_bytes(hashlib.blake2b(example_id.encode(), digest_size=8).digest(), "big") / 2**64
    if u < config.split.train_ratio:
        return "train"
    return "validation" if u < config.split.train_ratio + config.split.val_ratio else "test"


class SplitWriter:
    """Streams kept records to <dir>/<split>.jsonl as they are accepted (memory stays flat); keeps only
    the small metadata the statistics need (problem texts for the first TRIGRAM_SAMPLE of each task)."""

    def __init__(self, directory: Path, config: DatasetConfiguration):
        self.directory, self.config = directory, config
        self.handles = {s: open(directory / f"{s}.jsonl.part", "w") for s in SPLITS}
        self.counts = Counter()
        self.kept: list[dict] = []
        self._texts = Counter()

    @property
    def count(self) -> int:
        return len(self.kept)

    def add(self, r: dict) -> None:
        split = split_of(r["id"], self.config)
        self.handles[split].write(r["line"] + "\n")
        self.counts[split] += 1
        self._texts[r["task"]] += 1
        keep_text = self._texts[r["task"]] <= TRIGRAM_SAMPLE
        self.kept.append(
            {k: r[k] for k in ("task", "difficulty", "domain", "template", "tokens", "steps")}
            | {"split": split, "text": r["text"] if keep_text else None}
        )

    def finish(self, shard_size: int) -> dict[str, list[str]]:
        """Close the files; split any split over shard_size rows into <split>-0000k-of-0000n.jsonl."""
        files = {}
        for split, handle in self.handles.items():
            handle.close()
            part = self.directory / f"{split}.jsonl.part"
            n_shards = max(1, -(-self.counts[split] // shard_size))
            if n_shards == 1:
                part.rename(self.directory / f"{split}.jsonl")
                files[split] = [f"{split}.jsonl"]
                continue
            names = [f"{split}-{k:05d}-of-{n_shards:05d}.jsonl" for k in range(n_shards)]
            with open(part) as src:
                for _k, name in enumerate(names):
                    with open(self.directory / name, "w") as dst:
                        dst.writelines(itertools.islice(src, shard_size))
            part.unlink()
            files[split] = names
        return files


def _load_curated(paths: list[str]) -> list[CognitiveTrainingExample]:
    """Schema stage for curated JSONL: a malformed line is a UserError naming file and line, a file without a
    record one naming the file (a curated file that adds nothing is a mistake, not a choice)."""
    examples = []
    for path in paths:
        found = list(iter_jsonl(path))
        if not found:
            raise UserError(f"{path}: no records (an empty curated file)")
        examples += found
    return examples


def _chunks(items: list) -> list[list]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


class _InProcess:
    def imap(self, fn, chunks):
        return map(fn, chunks)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _pool(num_proc: int):
    if num_proc <= 1:
        return _InProcess()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return get_context("fork").Pool(num_proc)  # workers inherit the loaded token counter


def _run(pool, fn, chunks, total, desc, progress):
    with tqdm(total=total, desc=desc, unit="ex", disable=not progress or total == 0) as bar:
        for results in pool.imap(fn, chunks):
            bar.update(len(results))
            yield from results


# ---------------------------------------------------------------------------------------- output
def dataset_features():
    """The DatasetDict columns: the schema's fields (problem_spec as a JSON string) plus chat `messages`."""
    import datasets

    string, integer = datasets.Value("string"), datasets.Value("int64")
    step = {"step": integer, "description": string, "reasoning": string, "memory_update": string}
    transition = {
        "step": integer,
        **dict.fromkeys(("from_state", "to_state", "action", "rationale", "estimated_time"), string),
    }
    return datasets.Features(
        {
            "id": string,
            "task_type": string,
            "difficulty": string,
            "domain": string,
            "context": string,
            "instruction": string,
            "constraints": datasets.List(string),
            "reasoning_steps": datasets.List(step),
            "state_transitions": datasets.List(transition),
            "memory_usage": datasets.List(string),
            "final_answer": string,
            "confidence_score": datasets.Value("float64"),
            "generated_by": string,
            "verified": datasets.Value("bool"),
            "quality_score": datasets.Value("float64"),
            "problem_spec": string,
            "messages": datasets.List({"role": string, "content": string}),
        }
    )


def save_dataset_dict(files: dict[str, list[str]], directory: Path, path: Path, num_proc: int = 1) -> None:
    """Stream the split JSONL files into Arrow (rows built by the workers), then DatasetDict.save_to_disk."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    features = dataset_features()
    scratch = directory / "_arrow"
    scratch.mkdir()
    parts = {}
    with _pool(num_proc) as pool:
        for split, names in files.items():
            arrow = scratch / f"{split}.arrow"
            writer = ArrowWriter(features=features, path=str(arrow))
            n = 0
            for rows in pool.imap(_dataset_rows, _line_chunks([directory / name for name in names])):
                writer.write_batch({k: [r[k] for r in rows] for k in features})
                n += len(rows)
            writer.finalize()
            parts[split] = (
                datasets.Dataset.from_file(str(arrow))
                if n
                else datasets.Dataset.from_dict({k: [] for k in features}, features=features)
            )
    datasets.DatasetDict(parts).save_to_disk(str(path))
    shutil.rmtree(scratch)


def _line_chunks(paths: list[Path]):
    for path in paths:
        with open(path) as f:
            while chunk := list(itertools.islice(f, CHUNK)):
                yield chunk


def _dataset_rows(lines: list[str]) -> list[dict]:
    rows = []
    for line in lines:
        ex = CognitiveTrainingExample.model_validate_json(line)
        row = ex.model_dump(mode="json")
        row["problem_spec"] = json.dumps(row["problem_spec"]) if row["problem_spec"] is not None else None
        row["messages"] = ex.to_training_format()["messages"]
        rows.append(row)
    return rows


def write_stats(kept: list[dict], out: Path) -> dict:
    """Counts, diversity (distinct templates, distinct word-trigram ratio) and token-length plots."""
    by_task: dict[str, list[dict]] = {}
    for r in kept:
        by_task.setdefault(r["task"], []).append(r)
    stats = {
        "total": len(kept),
        "splits": {s: sum(r["split"] == s for r in kept) for s in SPLITS},
        "task_type": dict(Counter(r["task"] for r in kept)),
        "difficulty": dict(Counter(r["difficulty"] for r in kept)),
        "domain": dict(Counter(r["domain"] for r in kept)),
        "distinct_templates": {
            t: {
                "sequences": len({r["template"] for r in rs}),
                "sentence_variants": len({v for r in rs for v in (r["template"] or "").split()}),
            }
            for t, rs in by_task.items()
        },
        "distinct_trigram_ratio": {
            t: distinct_trigram_ratio([r["text"] for r in rs if r["text"]][:TRIGRAM_SAMPLE])
            for t, rs in by_task.items()
        },
        "distinct_trigram_ratio_note": f"distinct / total word trigrams of normalized context+instruction, "
        f"first {TRIGRAM_SAMPLE} kept per task",
        "tokens": {t: _summary([r["tokens"] for r in rs]) for t, rs in by_task.items()},
        "reasoning_steps": {t: _summary([r["steps"] for r in rs]) for t, rs in by_task.items()},
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    plot_histograms(
        {t: [r["tokens"] for r in rs] for t, rs in by_task.items()},
        out / "token_lengths.png",
        "tokens per example (chat format)",
    )
    plot_histograms({t: [r["steps"] for r in rs] for t, rs in by_task.items()}, out / "steps.png", "reasoning steps")
    return stats


def distinct_trigram_ratio(texts: list[str]) -> float:
    seen, total = set(), 0
    for text in texts:
        w = text.split()
        for i in range(len(w) - 2):
            seen.add((w[i], w[i + 1], w[i + 2]))
            total += 1
    return round(len(seen) / total, 4) if total else 0.0


def _summary(values: list[int]) -> dict:
    v = sorted(values)
    if not v:
        return {}
    return {
        "min": v[0],
        "p50": v[len(v) // 2],
        "p95": v[int(len(v) * 0.95)],
        "max": v[-1],
        "mean": round(sum(v) / len(v), 1),
    }
