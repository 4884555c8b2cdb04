"""The shape of the library, checked on its source: layers only import downwards, no import cycles, function-level
imports only where they defer a heavy or optional dependency, and one hand-written list of the task types
(cognitive/tasks.py)."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from cognitive.tasks import TASK_TYPES

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cognitive"
# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = [
    {"cognitive", "cognitive.errors", "cognitive.atomic", "cognitive.plots", "cognitive.tasks"},
    {"cognitive.model"},  # base loading, the modules, injection, remote code, the memory estimate
    {"cognitive.data"},  # the record, generators, filters (the token counter loads the base's tokenizer)
    {"cognitive.train"},
    {"cognitive.evaluation"},  # reads finished runs (cognitive.train.run)
    {"cognitive.release"},
    {"cognitive.rl"},  # GRPO: rewards from the scorers, prompts from the generators, the policy from a finished run
]
# Inside a layer's package, the same rule, module by module (each module of the package is in one of these):
SUBLAYERS = {
    "cognitive.train": [
        {"cognitive.train", "cognitive.train.args", "cognitive.train.heap"},  # argument declarations, parsing
        {"cognitive.train.sft_data", "cognitive.train.aux_labels"},  # records -> rows, aux labels
        {"cognitive.train.run", "cognitive.train.preflight"},  # the run dir and finished runs; the no-model checks
        {"cognitive.train.sft_config"},  # recipes/sft.py's arguments resolved once (every check)
        {"cognitive.train.trainer"},  # the model loaded for training, TRL's SFTTrainer
    ],
    "cognitive.rl": [
        {"cognitive.rl", "cognitive.rl.rewards", "cognitive.rl.prompts"},
        {"cognitive.rl.grpo_config"},  # recipes/grpo.py's arguments resolved once (every check)
        {"cognitive.rl.grpo"},  # the policy loaded, TRL's GRPOTrainer
    ],
}
HEAVY = {
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "lm_eval",
    "deepspeed",
    "accelerate",
    "matplotlib",
    "bitsandbytes",
    "safetensors",
    "datasketch",
    "numpy",
    "reasoning_gym",
    "wandb",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@functools.cache  # parsed once per module: heavy_at_import walks the import graph many times
def imports(name: str) -> tuple[tuple[str, bool, int], ...]:
    """(imported module, at module level, line) for every import in a module; `from a import b` counts as a.b when
    a.b is a module of this package, else as a."""
    tree = ast.parse(MODULES[name].read_text())
    top = {id(node) for node in tree.body} | {
        id(n) for node in tree.body if isinstance(node, ast.Try) for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in MODULES else node.module, id(node) in top, node.lineno))
    return tuple(found)


def layer(name: str) -> int:
    for i, members in enumerate(LAYERS):
        if any(name == m or (m != "cognitive" and name.startswith(m + ".")) for m in members):
            return i
    raise AssertionError(f"{name} is in no layer of tests/unit/test_architecture.py")


def test_layers_import_only_downwards():
    upward = [
        f"{name}:{line} imports {target} (layer {layer(target)} > {layer(name)})"
        for name in MODULES
        for target, _, line in imports(name)
        if target in MODULES and layer(target) > layer(name)
    ]
    assert not upward, upward


@pytest.mark.parametrize("package", sorted(SUBLAYERS))
def test_modules_inside_a_package_import_only_downwards(package):
    order = SUBLAYERS[package]
    members = sorted(name for name in MODULES if name == package or name.startswith(package + "."))
    placed = {name: i for i, group in enumerate(order) for name in group}
    assert set(members) == set(placed), f"{package}: modules in no sublayer: {set(members) ^ set(placed)}"
    upward = [
        f"{name}:{line} imports {target} ({placed[target]} > {placed[name]})"
        for name in members
        for target, _, line in imports(name)
        if target in placed and placed[target] > placed[name]
    ]
    assert not upward, upward


def test_no_import_cycles():
    graph = {name: {t for t, _, _ in imports(name) if t in MODULES and t != name} for name in MODULES}
    # a package's __init__ is imported by its modules implicitly; that edge is no cycle
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def heavy_at_import(name: str, seen: frozenset = frozenset()) -> bool:
    """Whether importing a module of this package imports a heavy library (directly or through the package)."""
    for target, top, _ in imports(name):
        if not top:
            continue
        if target.split(".")[0] in HEAVY:
            return True
        if target in MODULES and target not in seen and heavy_at_import(target, seen | {name}):
            return True
    return False


def test_function_level_imports_only_defer_heavy_or_optional_dependencies():
    """An import inside a function is there to keep a heavy library (torch, transformers, ...) out of a light
    import, not to dodge a cycle: a deferred module of this package must itself pull in something heavy."""
    needless = [
        f"{name}:{line} imports {target} inside a function"
        for name in MODULES
        for target, top, line in imports(name)
        if not top and target in MODULES and not heavy_at_import(target) and not heavy_at_import(name)
    ]
    assert not needless, needless


def _sources():
    for base in ("cognitive", "recipes", "eval", "tests", "experiments"):
        for path in sorted((ROOT / base).rglob("*")):
            if path.suffix in (".py", ".yaml") or path.name == "_template_yaml":
                yield path


def _listed(path: Path, names: list[str]) -> list[set[str]]:
    """The groups of task-type names a file writes out together: the string items of one list, tuple, set or dict
    literal (or call), the quoted names inside one string of code, and the items of one YAML list."""
    text = path.read_text()
    if path.suffix != ".py":
        return [{n for n in names if re.search(rf"^\s*-\s*{re.escape(n)}\s*$", text, re.MULTILINE)}]
    groups, lines = [], text.splitlines()
    for node in ast.walk(ast.parse(text)):
        items = []
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Call):
            items = node.args
        if items and "# registry-ok:" in lines[node.lineno - 1]:  # a table of per-task facts, marked on its line
            continue
        strings = {n.value for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        groups.append(strings & set(names))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # code in a string: "['a', 'b', ...]"
            groups.append({n for n in names if re.search(rf"""["']{re.escape(n)}["']""", node.value)})
    return groups


@pytest.mark.parametrize("key", ["name", "short", "eval_task"])
def test_the_task_types_are_listed_only_in_the_registry(key):
    """A second hand-written list of the task types (three or more of their names of one kind in one literal)
    drifts from cognitive/tasks.py; every list reads the registry instead. Data configs (a mix is a choice, not a
    list of what exists) are not scanned; a table of facts about some task types (a benchmark's targets) is
    allowed when its line says why with `# registry-ok: <reason>`."""
    names = [getattr(t, key) for t in TASK_TYPES]
    offenders = [
        f"{path.relative_to(ROOT)}: {sorted(group)}"
        for path in _sources()
        if path != PACKAGE / "tasks.py"
        for group in _listed(path, names)
        if len(group) >= 3
    ]
    assert not offenders, offenders
