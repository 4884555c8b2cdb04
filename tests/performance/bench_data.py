"""Data pipeline benchmark: generator throughput per core, and 100k mixed examples end to end.

    python tests/performance/bench_data.py                       # both parts (about 5 minutes on 2 cores)
    python tests/performance/bench_data.py --skip_end_to_end     # generators only
    python tests/performance/bench_data.py --end_to_end_size 20000 --tokenizer whitespace

Part 1 runs in this process on one core (rates per CPU-second of this process): generate_example (solver +
independent checker + schema) for each task type over the four difficulties, and reports verified examples/s
(targets: >= 2000/s for chain_of_thought and state_transition, >= 200/s for problem_solving logic grids).
Part 2 runs build_dataset on data/configs/default.yaml (generate, verify, length, decontaminate, dedup,
split, save JSONL + DatasetDict + stats) with --num_proc workers and reports wall time and the peak
resident memory of the whole process tree (targets: 100k in < 300 s on 2 cores, < 4 GB).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cognitive.data.generators import generate_example  # noqa: E402
from cognitive.data.schema import DifficultyLevel, ReasoningType  # noqa: E402
from cognitive.errors import ArgumentParser  # noqa: E402

TARGETS = {  # registry-ok: the benchmark's targets
    "chain_of_thought": 2000,
    "state_transition": 2000,
    "problem_solving": 200,
}


def bench_generators(seconds: float) -> dict:
    """Verified examples per second on one core, per task type (difficulties round-robin) and per difficulty."""
    results = {}
    levels = [d.value for d in DifficultyLevel]
    for task in ReasoningType:
        generate_example(task, "basic", 0)  # warm up imports
        per_level = {}
        for level in levels:  # CPU time of this process: a per-core rate even when other jobs share the cores
            n, verified, start = 0, 0, time.process_time()
            while time.process_time() - start < seconds / len(levels):
                verified += generate_example(task, level, 1000 + n).verified
                n += 1
            per_level[level] = verified / (time.process_time() - start)
        mixed = len(levels) / sum(1 / r for r in per_level.values())  # equal numbers of each difficulty
        results[task.value] = {"mixed": round(mixed), **{k: round(v) for k, v in per_level.items()}}
        target = TARGETS.get(task.value)
        verdict = f"(target >= {target}: {'ok' if mixed >= target else 'MISSED'})" if target else ""
        print(
            f"{task.value:18s} {mixed:8.0f} verified ex/s/core  "
            + "  ".join(f"{k} {v:.0f}" for k, v in per_level.items())
            + f"  {verdict}",
            flush=True,
        )
    return results


class PeakMemory:
    """Samples the memory of this process and its children (psutil, PSS) every 0.2 s."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()

    def __enter__(self):
        import psutil

        me = psutil.Process()

        def loop():
            while not self._stop.is_set():
                try:  # proportional set size: shared (forked, copy-on-write) pages are not counted twice
                    total = sum(p.memory_full_info().pss for p in [me, *me.children(recursive=True)])
                except psutil.Error:
                    continue
                self.peak = max(self.peak, total)
                self._stop.wait(0.2)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def bench_end_to_end(size: int, num_proc: int, tokenizer: str | None) -> dict:
    from cognitive.data.build import build_dataset
    from cognitive.data.schema import DatasetConfiguration

    config = DatasetConfiguration.from_yaml(ROOT / "data/configs/default.yaml")
    config = config.model_copy(update={"target_size": size})
    import resource

    def cpu(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    cpu0 = (cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN))
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        start = time.perf_counter()
        report = build_dataset(config, Path(tmp) / "out", num_proc=num_proc, tokenizer=tokenizer, progress=True)
        seconds = time.perf_counter() - start
    main_cpu = cpu(resource.RUSAGE_SELF) - cpu0[0]
    workers_cpu = cpu(resource.RUSAGE_CHILDREN) - cpu0[1]
    # what the same work needs on num_proc otherwise idle cores (the main process overlaps the workers)
    idle_estimate = max(main_cpu, (main_cpu + workers_cpu) / num_proc)
    load = os.getloadavg()[0]
    result = {
        "examples": report["kept"],
        "generated": report["generated"],
        "seconds": round(seconds, 1),
        "load_average_1min_at_end": round(load, 2),
        "timings": report["timings"],
        "cpu_seconds": {"main": round(main_cpu, 1), "workers": round(workers_cpu, 1)},
        "idle_machine_estimate_s": round(idle_estimate, 1),
        "examples_per_s": round(report["kept"] / seconds),
        "peak_rss_gb": round(mem.peak / 2**30, 2),
        "num_proc": num_proc,
        "tokenizer": report["tokenizer"],
        "dropped": {k: v["dropped"] for k, v in report["stages"].items()},
        "unfilled_slots": report["unfilled_slots"],
    }
    ok = seconds < 300 * size / 100_000 and mem.peak < 4 * 2**30
    print(
        f"end to end: {report['kept']} kept ({report['generated']} generated) in {seconds:.1f} s "
        f"with {num_proc} workers, "
        f"peak memory (PSS) {mem.peak / 2**30:.2f} GB, load average {load:.1f}, CPU {main_cpu + workers_cpu:.0f} s "
        f"(~{idle_estimate:.0f} s on {num_proc} idle cores)  "
        f"(targets for 100k: < 300 s, < 4 GB: {'ok' if ok else 'MISSED'})",
        flush=True,
    )
    return result


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=4.0, help="time per task type for part 1")
    p.add_argument("--end_to_end_size", type=int, default=100_000)
    p.add_argument("--num_proc", type=int, default=os.cpu_count() or 2)
    p.add_argument("--tokenizer", help="default: the config's (embedded:smollm2-135m-instruct)")
    p.add_argument("--skip_end_to_end", action="store_true")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main() -> None:
    p = build_parser()
    args = p.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    figures = {"cpu_count": os.cpu_count(), "generators_per_core": bench_generators(args.seconds)}
    if not args.skip_end_to_end:
        figures["end_to_end"] = bench_end_to_end(args.end_to_end_size, args.num_proc, args.tokenizer)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
