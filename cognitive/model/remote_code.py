"""The modeling code a release with cognitive modules ships, so plain transformers loads it (`auto_map`).

    auto_map = write_remote_code(release_dir, base_model_type="llama")

writes three files next to the weights:

    configuration_cognitive.py  CognitiveConfig: the base architecture's config class (looked up by
                                BASE_MODEL_TYPE) plus the `cognitive_modules` block; model_type "cognitive_<base>"
    modeling_cognitive.py       CognitiveForCausalLM: the base's *ForCausalLM with the modules attached to its
                                decoder layers in __init__ (so from_pretrained loads their weights like any other)
    cognitive_modules.py        cognitive/model/modules.py as it is in this checkout, with its optional import of this
                                package replaced by the fallback it already has

and returns the `auto_map` for config.json. The release then needs only torch and transformers:
`AutoModelForCausalLM.from_pretrained(release_dir, trust_remote_code=True)`.

Why a model_type of its own: config.json names "cognitive_llama" (not "llama") and only `auto_map` says how to
build it, so loading without trust_remote_code fails with transformers' own "contains custom code ... pass
trust_remote_code=True" error instead of quietly building a plain Llama that drops the modules' weights.

The shipped cognitive_modules.py is checked when it is written: every import must be the standard library,
torch or transformers (a change to cognitive/model/modules.py that breaks this fails the merge, not the user's load).
"""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from pathlib import Path

from cognitive.errors import UserError

CONFIG_FILE = "configuration_cognitive.py"
MODELING_FILE = "modeling_cognitive.py"
MODULES_FILE = "cognitive_modules.py"
REMOTE_CODE_FILES = (CONFIG_FILE, MODELING_FILE, MODULES_FILE)
CONFIG_CLASS = "CognitiveConfig"
MODEL_CLASS = "CognitiveForCausalLM"
ALLOWED_IMPORTS = {"torch", "transformers"}  # besides the standard library

CONFIGURATION_TEMPLATE = '''\
"""Configuration of a cognitive-slm release: the base model's config plus the `cognitive_modules` block.

Written by cognitive-slm (cognitive/model/remote_code.py); loaded through `auto_map` with trust_remote_code=True.
"""

from transformers.models.auto.configuration_auto import CONFIG_MAPPING

BASE_MODEL_TYPE = "__BASE_MODEL_TYPE__"  # the architecture the modules were trained on
BaseConfig = CONFIG_MAPPING[BASE_MODEL_TYPE]  # e.g. LlamaConfig


class CognitiveConfig(BaseConfig):
    """The base's config class (every base key keeps its meaning) + the modules' sizes and placement."""

    model_type = "cognitive_" + BASE_MODEL_TYPE
    cognitive_modules: dict | None = None  # the recipe's cognitive_modules block, as cognitive_modules.py parses it
'''

MODELING_TEMPLATE = '''\
"""A cognitive-slm release: the base causal LM with its trained cognitive modules on the decoder layers.

Written by cognitive-slm (cognitive/model/remote_code.py); loaded through `auto_map` with trust_remote_code=True.
The base's weights keep their names (model.layers.3.mlp.up_proj.weight); the modules' weights sit beside them
(model.layers.3.cognitive.reasoning.reasoning_qkv.weight). See cognitive_modules.py for what they compute.
"""

from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from .cognitive_modules import CognitiveModulesConfig, attach_cognitive_modules
from .configuration_cognitive import BaseConfig, CognitiveConfig

BaseForCausalLM = MODEL_FOR_CAUSAL_LM_MAPPING[BaseConfig]  # e.g. LlamaForCausalLM


class CognitiveForCausalLM(BaseForCausalLM):
    config_class = CognitiveConfig

    def __init__(self, config: CognitiveConfig):
        super().__init__(config)
        modules = CognitiveModulesConfig.from_dict(config.cognitive_modules)
        modules.validate(config.num_hidden_layers)
        attach_cognitive_modules(self, modules, dtype=self.dtype)
'''

_HEADER = (
    "# Shipped with a cognitive-slm release: a copy of cognitive/model/modules.py made by\n"
    "# cognitive/model/remote_code.py (imports only torch and transformers). Edit the original, not this copy.\n"
)


def write_remote_code(out: str | Path, base_model_type: str) -> dict[str, str]:
    """Write the three remote-code files into `out`; returns the `auto_map` entry for config.json."""
    out = Path(out)
    (out / CONFIG_FILE).write_text(CONFIGURATION_TEMPLATE.replace("__BASE_MODEL_TYPE__", base_model_type))
    (out / MODELING_FILE).write_text(MODELING_TEMPLATE)
    (out / MODULES_FILE).write_text(shipped_modules_source())
    return {
        "AutoConfig": f"{Path(CONFIG_FILE).stem}.{CONFIG_CLASS}",
        "AutoModelForCausalLM": f"{Path(MODELING_FILE).stem}.{MODEL_CLASS}",
    }


def remote_code_config(base_config: dict, cognitive_modules: dict, auto_map: dict[str, str]) -> dict:
    """config.json of a modules release: the base's keys + model_type cognitive_<base>, the modules, auto_map."""
    base_type = base_config["model_type"]
    return {
        **base_config,
        "model_type": f"cognitive_{base_type}",
        "architectures": [MODEL_CLASS],
        "auto_map": auto_map,
        "cognitive_modules": cognitive_modules,
    }


def shipped_modules_source() -> str:
    """cognitive/model/modules.py with each `try: from cognitive... except ImportError: <fallback>` reduced to the
    fallback; raises RuntimeError if the result imports anything beyond the standard library, torch, transformers."""
    from cognitive.model import modules

    source = Path(modules.__file__).read_text()
    lines = source.splitlines(keepends=True)
    for node in reversed(ast.parse(source).body):  # bottom-up, so earlier line numbers stay valid
        if isinstance(node, ast.Try) and _imports_this_package(node.body):
            [handler] = node.handlers
            fallback = "".join(lines[handler.body[0].lineno - 1 : handler.body[-1].end_lineno])
            note = "# (in cognitive-slm: a try-import of the package; shipped alone, its fallback)\n"
            lines[node.lineno - 1 : node.end_lineno] = [note, textwrap.dedent(fallback)]
    shipped = _HEADER + "".join(lines)
    check_self_contained(shipped, MODULES_FILE)
    return shipped


def _imports_this_package(body: list[ast.stmt]) -> bool:
    return all(isinstance(s, ast.ImportFrom) and (s.module or "").split(".")[0] == "cognitive" for s in body)


def check_self_contained(source: str, name: str) -> None:
    """Every absolute import in `source` must be the standard library, torch or transformers."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        for root in roots:
            if root not in ALLOWED_IMPORTS and root not in sys.stdlib_module_names and root != "__future__":
                raise RuntimeError(
                    f"{name} (shipped with releases) imports '{root}' at line {node.lineno}; "
                    f"remote code may import only the standard library, torch and transformers"
                )


def ships_code(release_dir: str | Path) -> bool:
    """Whether loading the directory could run code from it: some JSON file names classes to import (`auto_map`)."""
    return bool(_auto_maps(Path(release_dir)))


def foreign_code(release_dir: str | Path) -> str | None:
    """None when every piece of code the directory could run is exactly what this checkout writes for a release:
    config.json's `auto_map` is ours (our two classes in our two shipped modules), no other JSON file has one (a
    tokenizer's or processor's `auto_map` would import code too), the directory holds no Python file but the three
    shipped ones, and those are byte-identical to what this checkout would ship for its base. Otherwise the reason,
    in a few words."""
    release_dir = Path(release_dir)
    maps = _auto_maps(release_dir)
    if not maps:
        return None
    config = json.loads((release_dir / "config.json").read_text()) if (release_dir / "config.json").is_file() else {}
    expected_map = {
        "AutoConfig": f"{Path(CONFIG_FILE).stem}.{CONFIG_CLASS}",
        "AutoModelForCausalLM": f"{Path(MODELING_FILE).stem}.{MODEL_CLASS}",
    }
    for name, auto_map in maps.items():
        if name != "config.json":
            return f"{name} has an auto_map ({', '.join(map(str, auto_map.values()))})"
        if auto_map != expected_map:
            return f"config.json's auto_map {auto_map} is not {expected_map}"
    python_files = sorted(str(p.relative_to(release_dir)) for p in release_dir.rglob("*.py"))
    extra = [p for p in python_files if p not in REMOTE_CODE_FILES]
    if extra:
        return f"it holds Python files this project does not ship: {', '.join(extra)}"
    base_type = config.get("model_type", "").removeprefix("cognitive_")
    expected = {
        CONFIG_FILE: CONFIGURATION_TEMPLATE.replace("__BASE_MODEL_TYPE__", base_type),
        MODELING_FILE: MODELING_TEMPLATE,
        MODULES_FILE: shipped_modules_source(),
    }
    for name, text in expected.items():
        path = release_dir / name
        if not path.is_file() or path.read_text() != text:
            return f"{name} differs from the code this checkout ships"
    return None


def trust_release_code(release_dir: str | Path, opted_in: bool) -> bool:
    """Whether to load the directory with trust_remote_code=True. True when it ships code and the user opted in
    (--trust_remote_code) or the code is exactly this checkout's (foreign_code is None); False when it ships none.
    Shipped code that is neither is a one-line UserError telling the user to read it and opt in."""
    if not ships_code(release_dir):
        return False
    if opted_in:
        return True
    reason = foreign_code(release_dir)
    if reason is not None:
        raise UserError(
            f"{release_dir} ships code that this checkout did not write ({reason}); read its *.py files, then pass "
            "--trust_remote_code to run it"
        )
    return True


def _auto_maps(release_dir: Path) -> dict[str, dict]:
    """{file name: auto_map} for every top-level JSON file of the directory that has one."""
    maps = {}
    for path in sorted(release_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            maps[path.name] = data["auto_map"]
    return maps
