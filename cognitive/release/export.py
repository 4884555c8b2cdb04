"""Export a module-free release to GGUF for llama.cpp, Ollama and LM Studio, with llama.cpp's own converter and
quantizer (cognitive/release/llama_cpp.py).

    report = export_gguf("release/demo", ["q8_0", "q4_k_m"])
    # release/demo/gguf/demo-q8_0.gguf, demo-q4_k_m.gguf, Modelfile (+ Modelfile.q4_k_m), export.json;
    # release/demo/README.md gains a "Run it in llama.cpp / Ollama" section

Pre-checks, each a one-line UserError before anything is written: the release exists and is a plain model (cognitive
modules are layers llama.cpp does not have), the pinned converter writes its architecture, the tokenizer's token ids
all have an embedding row, the tokenizer has a chat template that converts to Ollama's (unless modelfile=False),
q4_k_m has the llama-cpp-python bindings, the output does not exist (unless overwrite), and the disk holds the
estimated output (DISK_BYTES_PER_PARAM).

How each quant is made: f16 and q8_0 by the converter (`--outtype`); q4_k_m by llama_model_quantize from the f16
file, llama.cpp's documented path (convert to f16, then quantize). Everything is written in `<out>.partial` and
renamed into place when complete, so a failure leaves nothing behind. Every file is read back before that: the GGUF
header (architecture, tensors, vocabulary size, chat template) with the gguf package and, when the bindings are
installed, by llama.cpp itself, which must tokenize the check prompts exactly as the release's tokenizer does.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cognitive.atomic import check_replaceable, make_shareable, output_dir, write_text
from cognitive.errors import UserError
from cognitive.release import llama_cpp
from cognitive.release.merge import CHECK_PROMPTS
from cognitive.release.ollama import OllamaChat, modelfile, ollama_chat

QUANTS = ("f16", "q8_0", "q4_k_m")
GGUF_DIR = "gguf"  # <release>/gguf
EXPORT_REPORT = "export.json"
CONVERTER_LOG = "convert.log"
# bytes per parameter for the disk estimate: f16 2; q8_0 34 bytes per 32 weights; q4_k_m ~4.9 bits per weight, with
# q6_K tensors and the q5_0/q8_0 fallback for rows that are not a multiple of 256 (SmolLM2's 576) taken as 6 bits
DISK_BYTES_PER_PARAM = {"f16": 2.0, "q8_0": 34 / 32, "q4_k_m": 0.75}
DISK_MARGIN = 1.05
MAX_NUM_CTX = 4096  # the Modelfile's num_ctx: the model's context, capped (Ollama allocates the KV cache for all of it)

MODULES_REFUSAL = (
    "{release} has cognitive modules (config.json model_type {model_type}): llama.cpp and Ollama have no such layers, "
    "so a GGUF of it would silently drop them. Export a LoRA-only release instead (train without cognitive_modules, "
    "then recipes/merge.py), or run this one with transformers (trust_remote_code=True) or python recipes/serve.py"
)


@dataclass
class ExportPlan:
    release: Path
    out: Path
    name: str
    quants: list[str]
    architecture: str
    vocab_rows: int
    parameters: int
    estimate_bytes: int
    chat: OllamaChat | None
    num_ctx: int


@dataclass
class ExportReport:
    release: str
    name: str
    out: str
    quants: list[str]
    files: dict = field(default_factory=dict)  # quant -> {file, bytes, sha256, seconds, tensors}
    modelfiles: dict = field(default_factory=dict)  # quant -> Modelfile name
    estimate_bytes: int = 0
    converter: str = f"llama.cpp convert_hf_to_gguf.py from llama-cpp-python {llama_cpp.LLAMA_CPP_PYTHON} (sdist)"
    quantizer: str | None = None  # llama-cpp-python <version> when q4_k_m was made
    llama_cpp_check: str | None = None  # what the bindings' read-back checked, None without the bindings
    model_card: str | None = None


# ------------------------------------------------------------------------------------------------ pre-checks
def parse_quants(text: str) -> list[str]:
    """`q8_0` or `q8_0,q4_k_m` (comma-separated, as the project's other list options): the quants, in order."""
    quants = [q.strip().lower() for q in text.split(",") if q.strip()]
    unknown = [q for q in quants if q not in QUANTS]
    if not quants or unknown:
        raise UserError(f"--quant {text!r}: choose from {', '.join(QUANTS)} (comma-separated for several)")
    return list(dict.fromkeys(quants))


def _exists(out: Path) -> UserError:
    return UserError(f"{out} exists (pass --overwrite to replace it)")


def plan_export(
    release: str | Path,
    quants: list[str],
    out: str | Path | None = None,
    overwrite: bool = False,
    with_modelfile: bool = True,
) -> ExportPlan:
    """Every pre-check, nothing written; returns what export_gguf will do."""
    release = Path(release)
    config_path = release / "config.json"
    if not config_path.is_file():
        raise UserError(f"{release} is not a model directory (no config.json); give a release dir, e.g. release/demo")
    config = json.loads(config_path.read_text())
    model_type = str(config.get("model_type", ""))
    if model_type.startswith("cognitive_") or config.get("cognitive_modules") or config.get("auto_map"):
        raise UserError(MODULES_REFUSAL.format(release=release, model_type=model_type or "?"))
    out = Path(out) if out is not None else release / GGUF_DIR
    # an earlier export there is replaced with --overwrite; anything else (a user's files, a link) is refused
    check_replaceable(out, "export", overwrite=overwrite, exists_error=_exists(out))
    architecture = (config.get("architectures") or ["?"])[0]
    supported = llama_cpp.converter_architectures()
    if architecture not in supported:
        raise UserError(
            f"{config_path}: architecture {architecture} is not one llama.cpp's converter (llama-cpp-python "
            f"{llama_cpp.LLAMA_CPP_PYTHON}) writes; it writes {len(supported)} others, e.g. "
            "LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM"
        )
    parameters, vocab_rows = weight_shapes(release)
    tokenizer = load_release_tokenizer(release)
    check_vocabulary(release, tokenizer, vocab_rows, config.get("vocab_size"))
    chat = ollama_chat(tokenizer, where=f"{release}'s tokenizer") if with_modelfile else None
    if not with_modelfile and not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{release}'s tokenizer has no chat template: llama.cpp would not know how to lay out a chat")
    for quant in quants:
        if quant in llama_cpp.QUANTIZER_TYPES:
            llama_cpp.require_bindings(f"--quant {quant}")
    estimate = estimate_bytes(parameters, quants, extra=tokenizer_bytes(release))
    check_free_disk(out, estimate)
    num_ctx = min(int(config.get("max_position_embeddings") or MAX_NUM_CTX), MAX_NUM_CTX)
    return ExportPlan(
        release, out, release.resolve().name, quants, architecture, vocab_rows, parameters, estimate, chat, num_ctx
    )


def weight_shapes(release: Path) -> tuple[int, int]:
    """(parameters, embedding rows) from the safetensors headers (no weights read)."""
    files = sorted(release.glob("*.safetensors"))
    if not files:
        raise UserError(f"{release} has no *.safetensors weights (a release holds model*.safetensors)")
    parameters, rows = 0, None
    for path in files:
        for name, info in read_safetensors_header(path).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= dim
            parameters += count
            if name.endswith("embed_tokens.weight") or name.endswith("wte.weight"):
                rows = info["shape"][0]
    if rows is None:
        raise UserError(f"{release}: no token embedding (*embed_tokens.weight) in its safetensors files")
    return parameters, rows


def read_safetensors_header(path: Path) -> dict:
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise UserError(f"{path}: not a safetensors file (truncated)")
        (length,) = struct.unpack("<Q", prefix)
        try:
            return json.loads(f.read(length))
        except ValueError:
            raise UserError(f"{path}: not a safetensors file (unreadable header)") from None


def load_release_tokenizer(release: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(release)
    except (OSError, ValueError) as e:
        raise UserError(f"{release}: cannot load its tokenizer ({str(e).splitlines()[0]})") from None


def check_vocabulary(release: Path, tokenizer, rows: int, config_vocab: int | None) -> None:
    """Every token id has an embedding row, and config.json's vocab_size is the embedding's row count (the converter
    pads a vocabulary shorter than the embedding; a longer one has tokens the model cannot read)."""
    vocab = tokenizer.get_vocab()
    top = max(vocab.values()) if vocab else -1
    if top >= rows:
        raise UserError(
            f"{release}: the tokenizer's vocabulary ({len(vocab)} tokens, ids up to {top}) does not fit the "
            f"model's embedding ({rows} rows): tokens without an embedding row; save the tokenizer the "
            "model was trained with, or resize the embeddings (model.resize_token_embeddings)"
        )
    if config_vocab is not None and int(config_vocab) != rows:
        raise UserError(f"{release}/config.json: vocab_size {config_vocab} is not the embedding's {rows} rows")


def tokenizer_bytes(release: Path) -> int:
    return sum(p.stat().st_size for p in release.glob("tokenizer*") if p.is_file())


def estimate_bytes(parameters: int, quants: list[str], extra: int = 0) -> int:
    """The output's size on disk, slightly over: each quant's weights plus the vocabulary, and the f16 file that
    q4_k_m is quantized from when f16 itself is not asked for (removed when done, but on disk meanwhile)."""
    files = list(quants)
    if any(q in llama_cpp.QUANTIZER_TYPES for q in quants) and "f16" not in quants:
        files.append("f16")
    return int(sum(DISK_BYTES_PER_PARAM[q] * parameters + extra for q in files) * DISK_MARGIN)


def check_free_disk(out: Path, needed: int) -> None:
    folder = out.parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(
            f"not enough free disk for the export: about {needed / 1e9:.2f} GB needed in {folder}, "
            f"{free / 1e9:.2f} GB free"
        )


# ------------------------------------------------------------------------------------------------ export
def gguf_name(name: str, quant: str) -> str:
    return f"{name}-{quant}.gguf"


def export_gguf(
    release: str | Path,
    quants: list[str],
    out: str | Path | None = None,
    overwrite: bool = False,
    with_modelfile: bool = True,
    progress=print,
) -> ExportReport:
    """Write the GGUF files (+ Modelfiles, export.json) of a module-free release; see the module docstring."""
    plan = plan_export(release, quants, out, overwrite, with_modelfile)
    report = ExportReport(
        release=str(plan.release),
        name=plan.name,
        out=str(plan.out),
        quants=plan.quants,
        estimate_bytes=plan.estimate_bytes,
    )
    with output_dir(plan.out, kind="export", overwrite=overwrite, exists_error=_exists(plan.out)) as tmp:
        write_gguf_files(plan, tmp, report, progress)
        if plan.chat is not None:
            for i, quant in enumerate(plan.quants):
                name = "Modelfile" if i == 0 else f"Modelfile.{quant}"
                write_text(tmp / name, modelfile(gguf_name(plan.name, quant), plan.chat, plan.num_ctx))
                report.modelfiles[quant] = name
        read_back(plan, tmp, report)
        write_text(tmp / EXPORT_REPORT, json.dumps(asdict(report), indent=1) + "\n")
        make_shareable(tmp)
    card = plan.release / "README.md"
    if card.is_file() and plan.out.resolve().parent == plan.release.resolve():
        from cognitive.release.model_card import with_gguf_section

        write_text(card, with_gguf_section(card.read_text(), report))
        report.model_card = str(card)
    return report


def write_gguf_files(plan: ExportPlan, tmp: Path, report: ExportReport, progress) -> None:
    log = tmp / CONVERTER_LOG
    f16 = tmp / gguf_name(plan.name, "f16")
    needs_f16 = "f16" in plan.quants or any(q in llama_cpp.QUANTIZER_TYPES for q in plan.quants)
    steps = (["f16"] if needs_f16 else []) + [q for q in plan.quants if q != "f16"]
    for quant in steps:
        started = time.time()
        path = tmp / gguf_name(plan.name, quant)
        if quant in llama_cpp.CONVERTER_TYPES:
            progress(f"[{quant}] llama.cpp convert_hf_to_gguf.py --outtype {quant} -> {path.name}")
            llama_cpp.convert(plan.release, path, quant, plan.name, log)
        else:
            progress(f"[{quant}] llama.cpp llama_model_quantize {f16.name} -> {path.name}")
            llama_cpp.quantize(f16, path, quant)
            report.quantizer = f"llama-cpp-python {llama_cpp.bindings_version()} (llama_model_quantize)"
        seconds = time.time() - started
        if quant in plan.quants:
            report.files[quant] = {"file": path.name, "bytes": path.stat().st_size, "seconds": round(seconds, 1)}
        progress(f"[{quant}] {path.stat().st_size / 1e6:.1f} MB in {seconds:.1f} s")
    if "f16" not in plan.quants and f16.exists():
        f16.unlink()  # only the source of the quantizer
    log.unlink(missing_ok=True)


def read_back(plan: ExportPlan, tmp: Path, report: ExportReport) -> None:
    """Each file read back: its GGUF header, and (with the bindings) llama.cpp's own load and tokenization."""
    from gguf import GGUFReader

    for entry in report.files.values():
        path = tmp / entry["file"]
        reader = GGUFReader(path)
        fields = reader.fields
        arch = fields["general.architecture"].contents() if "general.architecture" in fields else None
        tokens = len(fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in fields else 0
        if not arch or not reader.tensors or tokens != plan.vocab_rows or "tokenizer.chat_template" not in fields:
            raise UserError(
                f"{path.name}: the written GGUF does not read back as this release (architecture {arch}, "
                f"{len(reader.tensors)} tensors, {tokens} tokens for {plan.vocab_rows} embedding rows)"
            )
        entry["tensors"] = len(reader.tensors)
        entry["sha256"] = llama_cpp.sha256_file(path)
    if llama_cpp.bindings_version() is None:
        return
    tokenizer = load_release_tokenizer(plan.release)
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in CHECK_PROMPTS]
    expected = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for entry in report.files.values():
        llm = llama_cpp.load_gguf(tmp / entry["file"])
        got = [llm.tokenize(p.encode(), add_bos=False, special=True) for p in prompts]
        if got != expected:
            raise UserError(
                f"{entry['file']}: llama.cpp tokenizes the chat prompt differently from the release's "
                "tokenizer (a vocabulary or pre-tokenizer the converter does not carry over)"
            )
        del llm
    report.llama_cpp_check = (
        f"llama-cpp-python {llama_cpp.bindings_version()} loaded every file and tokenized "
        f"{len(prompts)} chat prompts exactly as the release's tokenizer"
    )


def run_commands(report: ExportReport) -> list[str]:
    """The commands that run the export (printed by the recipe, shown in the model card)."""
    out = Path(report.out)
    first = report.quants[0]
    gguf = out / report.files[first]["file"]
    lines = [
        f"llama-cli -m {gguf} --temp 0                 # chat in the terminal (llama.cpp)",
        f"llama-server -m {gguf} --port 8080           # OpenAI-compatible API on :8080 (llama.cpp)",
    ]
    for quant, modelfile_name in report.modelfiles.items():
        tag = report.name if quant == first else f"{report.name}:{quant}"
        lines.append(f"ollama create {tag} -f {out / modelfile_name} && ollama run {tag}")
    return lines
