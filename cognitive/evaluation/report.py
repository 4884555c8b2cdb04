"""What an evaluation writes: results.json, table.md and its plots (recipes/evaluate.py, the ablation, the demo).

table = write_report(out_dir, settings, suite_results=evaluate_suites(...))   # or tasks_results=compare(...)
table = write_report(out_dir, settings, suite_results, paired=paired_report(...))   # + the paired verdict

With `paired` (cognitive.evaluation.paired.paired_report), the table ends with every model minus the reference
(per suite: headline and task types, then every task; as scored and worked) and the output shares of every model,
results.json holds it under "paired", and paired.png is its forest plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.evaluation.harness import headline_scores, score_table, suite_headlines, suites_table
from cognitive.plots import plot_paired_suites, plot_score_comparison, plot_suites
from cognitive.tasks import TASK_TYPES


def write_report(
    out: Path,
    settings: dict,
    suite_results: dict | None = None,
    tasks_results: dict | None = None,
    paired: dict | None = None,
) -> str:
    """Write results.json, table.md and the plots (suites.png, or scores.png for named tasks; paired.png with
    `paired`); returns the table."""
    out = Path(out)
    if suite_results is not None:
        parts = [suites_table(suite_results)]
        for suite in dict.fromkeys(s for r in suite_results.values() for s in r):
            scores = {label: r[suite]["scores"] for label, r in suite_results.items() if suite in r}
            parts.append(f"### {suite}: every task\n\n{score_table(scores)}")
        table = "\n\n".join(parts)
        plot_suites(suite_results, out / "suites.png", [t.name for t in TASK_TYPES])
        payload = {"settings": settings, "suites": suite_results, "headlines": suite_headlines(suite_results)}
    else:
        scores = {label: r["scores"] for label, r in tasks_results.items()}
        table = score_table(scores)
        limit = settings.get("limit") or "all"
        plot_score_comparison(headline_scores(scores), out / "scores.png", title=f"score per task ({limit} documents)")
        payload = {"settings": settings, "models": tasks_results}
    if paired is not None:
        table += "\n\n" + paired_tables(paired)
        payload["paired"] = paired
        if paired["comparisons"]:
            plot_paired_suites(paired["comparisons"], paired["reference"], out / "paired.png")
    (out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / "table.md").write_text(table + "\n")
    return table


def interval(entry: dict) -> str:
    """'+0.050 [+0.010, +0.090]': a paired difference and its interval."""
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def _share(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def paired_rows(comparisons: dict, parts: str = "types") -> list[str]:
    """Markdown rows `| model | suite | part | documents | minus ref | verdict | worked | verdict |`: per arm and
    suite the headline then each task type (parts="types"), or every task (parts="tasks")."""
    rows = []
    for arm, per_suite in comparisons.items():
        for suite, both in per_suite.items():
            scored, worked = both["scored"], both["worked"]
            names = ["headline", *scored["types"]] if parts == "types" else list(scored["tasks"])
            for name in names:
                if name == "headline":
                    s, w = scored["headline"], worked["headline"]
                else:
                    s, w = scored[parts][name], worked[parts][name]
                cells = [arm, suite, name, str(s["documents"]), interval(s), s["verdict"], interval(w), w["verdict"]]
                rows.append("| " + " | ".join(cells) + " |")
    return rows


def shares_rows(shares: dict) -> list[str]:
    """Markdown rows `| model | suite | documents | answers first | hit token limit | repeated-line loop |`."""
    return [
        f"| {arm} | {suite} | {s['documents']} | {_share(s['answers_first'])} | {_share(s['token_limit'])} "
        f"| {_share(s['loop'])} |"
        for arm, per_suite in shares.items()
        for suite, s in per_suite.items()
    ]


def paired_tables(paired: dict, every_task: bool = True) -> str:
    """The paired section of table.md: every model minus the reference (headline and task types, then every
    task unless `every_task` is False), as scored and worked, and every model's output shares."""
    ref, level = paired["reference"], paired["level"]
    header = f"| model | suite | part | documents | minus {ref} | verdict | worked: minus {ref} | verdict |"
    rule = "|---|---|---|---:|---:|---|---:|---|"
    lines = []
    if paired["comparisons"]:
        lines += [
            f"## Paired with {ref}: is the model better?",
            "",
            f"Per document, the model's score minus {ref}'s on the same document (training seeds averaged first);",
            f"a part's difference is the mean over its documents, with a {level:.0%} bootstrap interval over documents",
            "(redrawn within each task). Verdict: above / below when the interval lies wholly on that side of zero,",
            "else level. Worked: the same with a right answer stated on its first line, before any working, counted",
            "wrong (a guess, as far as one can tell).",
            "",
            header,
            rule,
            *paired_rows(paired["comparisons"], "types"),
            "",
        ]
        if every_task:
            lines += [
                f"### Paired with {ref}: every task",
                "",
                header.replace("| part |", "| task |"),
                rule,
                *paired_rows(paired["comparisons"], "tasks"),
                "",
            ]
    lines += [
        "### How the outputs went",
        "",
        "Shares of each model's outputs (all seeds): the answer stated on the first line before any working; cut",
        "off by the token limit (max_gen_toks); holding a repeated-line loop (a block of lines, or a stretch of",
        "8-200 characters, three times in a row).",
        "",
        "| model | suite | documents | answers first | hit token limit | repeated-line loop |",
        "|---|---|---:|---:|---:|---:|",
        *shares_rows(paired["shares"]),
    ]
    return "\n".join(lines)


def _overall_share(per_suite: dict, key: str) -> float | None:
    """A share over all the suites' documents (weighted by each suite's count); None when no suite knows it."""
    known = [(s[key], s["documents"]) for s in per_suite.values() if s.get(key) is not None and s["documents"]]
    return sum(v * n for v, n in known) / sum(n for _, n in known) if known else None


def paired_in_words(paired: dict) -> str:
    """Two plain sentences per compared model: what improved (the worked verdict above, per suite and task type; a
    gain as scored that does not hold worked is named as answers stated first) and what did not (below, level, and
    the shares of answers stated first and of repeated-line loops beside the reference's)."""
    ref, lines = paired["reference"], []
    for arm, per_suite in paired["comparisons"].items():
        up, scored_only, down = [], [], []
        for suite, both in per_suite.items():
            for name in ["headline", *both["worked"]["types"]]:
                s = both["scored"]["headline"] if name == "headline" else both["scored"]["types"][name]
                w = both["worked"]["headline"] if name == "headline" else both["worked"]["types"][name]
                part = f"{suite} ({'overall' if name == 'headline' else name}, {w['difference']:+.2f})"
                if w["verdict"] == "above":
                    up.append(part)
                elif s["verdict"] == "above":
                    scored_only.append(f"{suite} ({'overall' if name == 'headline' else name})")
                if w["verdict"] == "below":
                    down.append(part)
        improved = (
            f"What improved: with the answers worked out, {arm} is above {ref} on {', '.join(up)}"
            if up
            else f"What improved: nothing beyond the interval: with the answers worked out, {arm} is above {ref} "
            "on no suite and no task type"
        )
        if scored_only:
            improved += f"; as scored also on {', '.join(scored_only)}, but those gains are answers stated first"
        shares = paired["shares"]
        moved = []
        for key, what in (("answers_first", "answers stated first"), ("loop", "repeated-line loops")):
            before, after = _overall_share(shares.get(ref, {}), key), _overall_share(shares.get(arm, {}), key)
            if before is not None and after is not None:
                moved.append(f"{what} {before:.0%} -> {after:.0%}")
        not_improved = (
            f"What did not: below {ref} on {', '.join(down)}" if down else f"What did not: it is below {ref} nowhere"
        )
        not_improved += ", level (within the interval) everywhere else"
        not_improved += f"; {', '.join(moved)} (all suites)." if moved else "."
        lines.append(f"{improved}. {not_improved}")
    return "\n".join(lines)
