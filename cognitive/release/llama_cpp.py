"""llama.cpp's own GGUF converter and quantizer, pinned to one llama.cpp commit: the one vendored by the
llama-cpp-python release LLAMA_CPP_PYTHON.

    folder = converter_dir()                       # convert_hf_to_gguf.py + conversion/ + gguf-py/, fetched once
    convert(model_dir, out / "x-f16.gguf", "f16")   # llama.cpp's convert_hf_to_gguf.py, in a subprocess
    quantize(f16_file, out / "x-q4_k_m.gguf", "q4_k_m")   # llama.cpp's llama_model_quantize (llama-cpp-python)

Where the code comes from. llama.cpp publishes its converter only in its repository; on PyPI the one packaged form
that carries the converter, its `conversion/` package and the `gguf-py` it was written against, all at one commit,
is the llama-cpp-python sdist (vendor/llama.cpp/). The `gguf` wheel on PyPI is gguf-py alone (no converter), and the
converter must match it: the script imports its own vendored `gguf-py` (it puts it first on sys.path), so the pair
always matches. On first use the sdist is downloaded with pip (`pip download --no-binary :all:`), its sha256 checked
against SDIST_SHA256, and those three pieces (plus llama.cpp's LICENSE and its models/templates/) extracted into
`<cache>/llama.cpp/llama-cpp-python-<version>/` (cognitive.model.base.cache_dir); nothing downloaded is committed.
Offline: point $COGNITIVE_SLM_LLAMA_CPP_SDIST at a copy of that sdist (its sha256 is checked too).

The quantizer is C++: the llama-cpp-python bindings built from the same sdist (`pip install -r
requirements-export.txt`; a build from source: 9.3 CPU-minutes, 30 min wall on 2 shared cores). They are optional:
f16 and q8_0 come from the converter alone (`--outtype`, pure Python); q4_k_m needs llama.cpp's k-quant code
(llama_model_quantize), which only the compiled library has.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from cognitive.atomic import make_shareable, publish_dir, staging_dir
from cognitive.errors import UserError
from cognitive.model.base import cache_dir

LLAMA_CPP_PYTHON = (
    "0.3.36"  # pins the converter (from its sdist) and names the bindings requirements-export.txt installs
)
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST_ENV = "COGNITIVE_SLM_LLAMA_CPP_SDIST"
VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
# the converter, its package, its gguf-py, the license; and llama.cpp's collection of real chat templates, which the
# tests read (Qwen2.5's, Llama 3.1's) rather than copies committed here
CONVERTER_PIECES = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE", "models/templates/")
TEMPLATES = "models/templates"
CONVERTER_SCRIPT = "convert_hf_to_gguf.py"

CONVERTER_TYPES = ("f16", "q8_0")  # written by the converter itself (--outtype)
QUANTIZER_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}  # written by llama_model_quantize from the f16 file
INSTALL_BINDINGS = "pip install -r requirements-export.txt (builds llama-cpp-python from source: 5-30 min on 2 cores)"


# ------------------------------------------------------------------------------------------------ the converter
def converter_dir() -> Path:
    """The pinned converter's folder, fetched and extracted on first use."""
    target = cache_dir() / "llama.cpp" / f"llama-cpp-python-{LLAMA_CPP_PYTHON}"
    if (target / CONVERTER_SCRIPT).is_file():
        return target
    print(
        f"Fetching llama.cpp's converter (llama-cpp-python {LLAMA_CPP_PYTHON} sdist, once) into {target} ...",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as download:
        sdist = fetch_sdist(Path(download))
        tmp = staging_dir(target, unique=True)  # two processes may fetch at once; the first to finish wins
        try:
            extract_converter(sdist, tmp)
            make_shareable(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return publish_dir(tmp, target, replace=False)


def fetch_sdist(folder: Path) -> Path:
    """The pinned sdist: $COGNITIVE_SLM_LLAMA_CPP_SDIST, else `pip download` into `folder`; sha256 checked."""
    local = os.environ.get(SDIST_ENV)
    if local:
        path = Path(local)
        if not path.is_file():
            raise UserError(f"${SDIST_ENV}={local}: no such file (the {SDIST_NAME} sdist from PyPI)")
    else:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            str(folder),
            f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        path = folder / SDIST_NAME
        if result.returncode != 0 or not path.is_file():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"cannot download llama.cpp's converter (pip download llama-cpp-python=={LLAMA_CPP_PYTHON}:"
                f" {last}); offline, set ${SDIST_ENV} to a copy of {SDIST_NAME}"
            )
    digest = sha256_file(path)
    if digest != SDIST_SHA256:
        raise UserError(f"{path}: sha256 {digest} is not the pinned {SDIST_NAME}'s ({SDIST_SHA256})")
    return path


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def extract_converter(sdist: Path, out: Path) -> None:
    """The converter's pieces of vendor/llama.cpp/ into `out` (regular files and folders only, no links)."""
    wanted = tuple(VENDORED + piece for piece in CONVERTER_PIECES)
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.name.startswith(wanted) or not (member.isfile() or member.isdir()):
                continue
            relative = Path(member.name[len(VENDORED) :])
            if relative.is_absolute() or ".." in relative.parts:
                continue
            target = out / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if not (out / CONVERTER_SCRIPT).is_file():
        raise UserError(f"{sdist} holds no {VENDORED}{CONVERTER_SCRIPT}")


def converter_architectures(folder: Path | None = None) -> set[str]:
    """The HF architectures (config.json `architectures[0]`) the pinned converter writes: the keys of its
    TEXT_MODEL_MAP, read from its source (no import: importing it loads torch and its gguf-py)."""
    source = ((folder or converter_dir()) / "conversion" / "__init__.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "TEXT_MODEL_MAP":
            return set(ast.literal_eval(node.value))
    raise UserError("the pinned converter has no TEXT_MODEL_MAP in conversion/__init__.py (a changed layout?)")


def convert(model_dir: Path, outfile: Path, outtype: str, model_name: str, log: Path) -> None:
    """llama.cpp's convert_hf_to_gguf.py on a model directory, output to `outfile` (its log appended to `log`)."""
    script = converter_dir() / CONVERTER_SCRIPT
    command = [
        sys.executable,
        str(script),
        str(model_dir),
        "--outtype",
        outtype,
        "--outfile",
        str(outfile),
        "--model-name",
        model_name,
    ]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # the script's own gguf-py, always
    with open(log, "a") as f:
        f.write(f"$ {' '.join(command)}\n")
        f.flush()
        code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise UserError(f"llama.cpp's converter failed on {model_dir} (exit {code}): {last_error_line(log)}")


def last_error_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or line.startswith(("ERROR", "error")):
            return line
    return lines[-1] if lines else "no output"


# ------------------------------------------------------------------------------------------------ the bindings
def bindings_version() -> str | None:
    """The installed llama-cpp-python's version, None when it is not installed."""
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def require_bindings(what: str) -> None:
    if bindings_version() is None:
        raise UserError(
            f"{what} needs llama.cpp's quantizer (the llama-cpp-python bindings): {INSTALL_BINDINGS}; "
            f"f16 and q8_0 need only the converter"
        )


def quantize(source: Path, out: Path, quant: str, threads: int | None = None) -> None:
    """llama.cpp's llama_model_quantize: the GGUF `source` (f16) to `quant` (a key of QUANTIZER_TYPES)."""
    require_bindings(f"--quant {quant}")
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[quant])
    params.nthread = threads or os.cpu_count() or 1
    log = logging.getLogger("llama-cpp-python")  # the bindings print llama.cpp's log at this logger's level
    level = log.level
    log.setLevel(logging.ERROR)  # not a line per tensor; docs/export.md says which tensors fall back to other types
    try:
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    finally:
        log.setLevel(level)
    if code != 0:
        raise UserError(f"llama.cpp's quantizer failed on {source} -> {quant} (return code {code})")


def load_gguf(path: Path, n_ctx: int = 1024, logits_all: bool = False):
    """llama.cpp (llama-cpp-python) loaded on a GGUF file, quiet, CPU (logits_all: keep every position's logits)."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(path), n_ctx=n_ctx, n_threads=os.cpu_count() or 1, verbose=False, seed=0, logits_all=logits_all
    )


def greedy_tokens(llm, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """llama.cpp's greedy continuation of token ids (temperature 0, no repeat penalty), up to and including its EOS
    (as transformers' generate returns it)."""
    out: list[int] = []
    eos = llm.token_eos()
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        out.append(int(token))
        if token == eos or len(out) >= max_new_tokens:
            break
    return out
