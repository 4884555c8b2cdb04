"""The docs cannot rot silently: README.md, docs/*.md and the studies' reports (experiments/**/README.md) are read
as a newcomer would follow them.

* Every relative link resolves to a file or folder of the checkout, and every `#anchor` to a heading of its target.
* Every command they show for this project's scripts (`python recipes/x.py ...`, `python -m cognitive.x ...`,
  `deepspeed recipes/x.py ...`, `accelerate launch ...`, `bash x.sh ...`, in fenced shell blocks and in inline code)
  names a script that exists, and passes only flags its parser accepts. Nothing is run: the script's module is
  imported and its `build_parser()` (every command in recipes/ and every `python -m` entry point has one) parses
  the command's arguments; a training recipe's `--config` must name a file, `--ds` is its alias of `--deepspeed`.
  Flags are written one way, TRL's underscores: the old dashed spelling of a flag (`--max-gen-toks` for
  `--max_gen_toks`), which the parsers still accept for one release, is a problem here.
  A module's `EXTRA_FLAGS` says where flags its parser does not know go: "recipe" (the preflight: they are keys of
  the recipe named by --config) or another program's name (passed through unchecked).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIRS = ("recipes/", "tests/", "experiments/", "cognitive/", "eval/", "data/")
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
LAUNCHERS = {"deepspeed": 1, "torchrun": 1, "accelerate": 2}  # words before the launcher's own options
PREFIXES = ("python ", "python3 ", ".venv/bin/python ", "deepspeed ", "accelerate launch ", "torchrun ", "bash ")


def doc_files(root: Path = ROOT) -> list[Path]:
    return [
        root / "README.md",
        *sorted((root / "docs").glob("*.md")),
        *sorted((root / "experiments").rglob("README.md")),
    ]


# ------------------------------------------------------------------------------------------------ markdown
def split_code(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the text outside fenced code blocks, [(fence language, block text)])."""
    prose, blocks, block, lang = [], [], None, ""
    for line in text.splitlines():
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence and block is None:
            block, lang = [], fence.group(2).lower()
        elif fence and block is not None:
            blocks.append((lang, "\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
        else:
            prose.append(line)
    return "\n".join(prose), blocks


# inline code: one backtick pair, which Markdown lets wrap onto the next line of its paragraph (not past a blank line)
INLINE_CODE = re.compile(r"`((?:[^`\n]|\n(?![ \t]*\n))+)`")


def inline_code(prose: str) -> list[str]:
    """The inline code spans of prose, a span wrapped across lines joined with one space (as Markdown renders it)."""
    return [re.sub(r"\s*\n\s*", " ", code) for code in INLINE_CODE.findall(prose)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> set[str]:
    prose, _ = split_code(path.read_text())
    found, seen = set(), {}
    for match in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", prose, re.M):
        base = slug(match.group(1))
        n = seen.get(base, 0)
        found.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return found


def link_problems(doc: Path, root: Path = ROOT) -> list[str]:
    prose, _ = split_code(doc.read_text())
    prose = INLINE_CODE.sub("", prose)  # a link written inside inline code is code, not a link
    problems = []
    for target in re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        where = f"{doc.relative_to(root)}: link ({target})"
        if not dest.exists():
            problems.append(f"{where}: {path_part} does not exist")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(root)}")
        elif dest.is_file() and root not in dest.parents:
            problems.append(f"{where}: points outside the checkout")
    return problems


# ------------------------------------------------------------------------------------------------ commands
def command_lines(doc: Path) -> list[str]:
    """The shell command lines a doc shows: fenced shell blocks (continuations joined) and inline code that starts
    like one of this project's commands."""
    prose, blocks = split_code(doc.read_text())
    lines = []
    for lang, block in blocks:
        if lang in SHELL_FENCES:
            lines += [line.strip() for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip()]
    lines += [code.strip() for code in inline_code(prose) if code.strip().startswith(PREFIXES)]
    return lines


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: split on ; && || |, comments dropped, VAR=value prefixes dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: not a command line (prose in a code span)
        return []
    out, current = [], []
    for token in tokens:
        if set(token) <= set("|&;"):
            out.append(current)
            current = []
        else:
            current.append(token)
    out.append(current)
    cleaned = []
    for words in out:
        while words and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]) or words[0] in ("time", "/usr/bin/time")):
            words = words[2:] if words[0] == "/usr/bin/time" and words[1:2] == ["-v"] else words[1:]
        if words:
            cleaned.append(words)
    return cleaned


def project_command(words: list[str]) -> tuple[str, str, list[str]] | None:
    """(kind, script path or module, its arguments) of a command that runs this project's code, else None."""
    program = words[0].rsplit("/", 1)[-1]
    if program in ("python", "python3"):
        rest = [w for w in words[1:] if w not in ("-u", "-X")]
        if rest[:1] == ["-m"] and len(rest) > 1 and rest[1].split(".")[0] == "cognitive":
            return "module", rest[1], rest[2:]
        if rest and rest[0].endswith(".py") and rest[0].startswith(PROJECT_DIRS):
            return "script", rest[0], rest[1:]
        return None
    if program in LAUNCHERS:
        for i, word in enumerate(words[LAUNCHERS[program] :], LAUNCHERS[program]):
            if word.endswith(".py"):
                return ("script", word, words[i + 1 :]) if word.startswith(PROJECT_DIRS) else None
        return None
    if program == "bash" and len(words) > 1 and words[1].endswith(".sh") and words[1].startswith(PROJECT_DIRS):
        return "shell", words[1], words[2:]
    return None


class _ParseError(Exception):
    pass


def _raise(message):
    raise _ParseError(message)


@cache
def load_module(kind: str, target: str):
    if kind == "module":
        return importlib.import_module(target)
    name = "_docs_" + re.sub(r"\W", "_", target)
    spec = importlib.util.spec_from_file_location(name, ROOT / target)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str((ROOT / target).parent))  # a script imports its siblings as `python <script>` would
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str((ROOT / target).parent))
    return module


def parse_problems(parser: argparse.ArgumentParser, args: list[str]) -> tuple[list[str], list[str]]:
    """(problems, the arguments the parser does not know) of parsing `args`; nothing runs. A deprecated dashed
    spelling of a flag the parser knows with underscores is a problem."""
    from cognitive.errors import deprecated_spelling

    deprecated = [
        f"deprecated flag {arg.split('=', 1)[0]} (write {new})"
        for arg in args
        if (new := deprecated_spelling(arg, {o for o in parser._option_string_actions if "_" in o}))
    ]
    if deprecated:
        return deprecated, []
    parser.error = _raise
    parser.allow_abbrev = False  # a stale flag that is a prefix of a real one is still stale
    try:
        _, unknown = parser.parse_known_args(args)
    except _ParseError as e:
        message = str(e)
        if message.startswith("the following arguments are required") or re.search(r"'[^']*<[^>']*>[^']*'", message):
            return [], []  # a doc may name a script without its required arguments, or show a <placeholder>
        return [message], []
    return [], unknown


def command_problems(words: list[str]) -> list[str]:
    found = project_command(words)
    if found is None:
        return []
    kind, target, args = found
    if "<" in target:
        return []  # a placeholder (experiments/<study>/<driver>.py), not a script
    if kind == "module":
        if importlib.util.find_spec(target) is None:
            return [f"module {target} does not exist"]
    elif not (ROOT / target).is_file():
        return [f"{target} does not exist"]
    if kind == "shell":
        script = (ROOT / target).read_text()
        forwarded = re.search(r"python\S*\s+(\S+\.py)\s+\"\$@\"", script)
        if not forwarded:
            return []  # a shell script that passes no arguments to a script of ours (tests/run.sh: pytest's)
        kind, target = "script", forwarded.group(1)
    module = load_module(kind, target)
    build = getattr(module, "build_parser", None)
    if build is None:
        required = kind == "module" or target.startswith("recipes/")
        return [f"{target} has no build_parser() to check its flags against"] if required else []
    parser = build()
    from trl import TrlParser

    from cognitive.train.args import normalise_argv, parse_grpo_args, parser_for

    config = None
    if isinstance(parser, TrlParser) or getattr(module, "EXTRA_FLAGS", None) == "recipe":
        args = normalise_argv(args)
        if "--config" in args[:-1]:
            config = args[args.index("--config") + 1]
            if not (ROOT / config).is_file():
                return [f"--config {config} does not exist"]
            if isinstance(parser, TrlParser):  # TrlParser reads --config itself, before argparse
                i = args.index("--config")
                args = args[:i] + args[i + 2 :]
    problems, unknown = parse_problems(parser, args)
    extra = getattr(module, "EXTRA_FLAGS", None)
    if unknown and extra == "recipe" and config:  # the preflight: the rest are keys of the recipe it estimates
        from cognitive.train.args import grpo_parser, sft_parser

        recipe = grpo_parser() if parser_for(ROOT / config) is parse_grpo_args else sft_parser()
        more, unknown = parse_problems(recipe, unknown)
        problems += more
    elif extra and extra != "recipe":
        unknown = []  # passed through to another program
    return problems + [f"unknown flag {u}" for u in unknown if u.startswith("-")]


def doc_command_problems(doc: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for line in command_lines(doc):
        for words in commands(line):
            problems += [f"{doc.relative_to(root)}: `{' '.join(words)}`: {p}" for p in command_problems(words)]
    return problems


# ------------------------------------------------------------------------------------------------ the tests
DOCS = doc_files()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(doc):
    assert not link_problems(doc)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_name_real_scripts_and_flags(doc):
    assert not doc_command_problems(doc)


def test_the_docs_show_the_commands_a_user_needs():
    shown = {" ".join(w[:2]) for doc in DOCS for line in command_lines(doc) for w in commands(line)}
    for command in ("bash recipes/demo.sh", "bash tests/run.sh", "deepspeed recipes/sft.py", "python recipes/merge.py"):
        assert command in shown or any(s.startswith(command) for s in shown), command


def test_a_planted_stale_flag_or_link_fails(tmp_path):
    """The checks above catch what rots: a renamed flag, a removed script, a moved page, a renamed heading."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "README.md").write_text(
        "# Title\n\n## A section\n\n[ok](docs/a.md#usage) [moved](docs/gone.md) [heading](#no-such-heading)\n"
        "[self](#a-section) `python recipes/evaluate.py --max-gen-tokens 8`, and one wrapped onto the next line:\n"
        "`python recipes/evaluate.py --base x\n  --limitt 2` (Markdown joins it)\n\n"
        "```bash\n"
        "python recipes/sft.py --config recipes/configs/demo_cpu.yaml --max_stepz 3   # a typo of max_steps\n"
        "deepspeed --num_gpus 2 recipes/sft.py --ds ds_configs/zero2_3090ti.json --max_steps 3\n"
        "python recipes/merge.py --run runs/x --out release/x \\\n    --overwritee\n"
        "python recipes/no_such_recipe.py --x 1 && bash recipes/demo.sh --steps 3 --eval-limmit 2\n"
        "python recipes/preflight.py --config recipes/configs/demo_cpu.yaml --max_length 1024 --gpu 3090ti\n"
        "python recipes/preflight.py --config recipes/configs/demo_cpu.yaml --max_lenght 1024\n"
        "python recipes/evaluate.py --limit 6 --max-gen  # an abbreviation of a real flag\n"
        "python recipes/generate_data.py --config data/configs/default.yaml --num-proc 2  # the old spelling\n"
        "python recipes/sft.py --config recipes/configs/demo_cpu.yaml --max-steps 3  # TRL accepts it; we do not\n"
        "```\n"
    )
    (tmp_path / "docs" / "a.md").write_text("# Usage\n")
    links = link_problems(tmp_path / "README.md", tmp_path)
    assert [p.split(": ", 2)[2] for p in links] == [
        "docs/gone.md does not exist",
        "no heading #no-such-heading in README.md",
    ]
    found = doc_command_problems(tmp_path / "README.md", tmp_path)
    assert len(found) == 10, found
    for fragment in (
        "unknown flag --max-gen-tokens",
        "unknown flag --limitt",
        "unknown flag --max_stepz",
        "unknown flag --overwritee",
        "recipes/no_such_recipe.py does not exist",
        "unknown flag --eval-limmit",
        "unknown flag --max_lenght",
        "unknown flag --max-gen",
        "deprecated flag --num-proc (write --num_proc)",
        "deprecated flag --max-steps (write --max_steps)",
    ):
        assert any(fragment in p for p in found), (fragment, found)


def test_old_dashed_flags_still_work_for_one_release_with_a_note(capsys):
    """Every parser of this project (cognitive.errors.ArgumentParser) takes the old dashed spelling of a flag as an
    alias of its underscore one, with a one-line deprecation note on stderr, and keeps it out of --help."""
    import recipes.evaluate

    parser = recipes.evaluate.build_parser()
    args = parser.parse_args(["--base", "x", "--max-gen-toks", "8", "--modules-run=runs/y", "--max_gen_toks", "9"])
    assert args.max_gen_toks == 9 and args.modules_run == ["runs/y"]
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        "note: --max-gen-toks is deprecated and goes in the next release; write --max_gen_toks",
        "note: --modules-run is deprecated and goes in the next release; write --modules_run",
    ]
    assert "--max-gen-toks" not in parser.format_help() and "--max_gen_toks" in parser.format_help()


def test_every_command_is_a_recipe_script():
    """No `python -m cognitive...` entry point: the library keeps the functions, recipes/ the commands."""
    entry_points = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "cognitive").rglob("*.py"))
        if re.search(r"^if __name__ == .__main__.:", path.read_text(), re.M)
    ]
    assert not entry_points, entry_points
