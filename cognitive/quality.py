"""Quality stages every example passes before it is kept, in this order:

1. schema       the record parses as a CognitiveTrainingExample (curated input: errors name file:line)
2. verification the task's independent checker (cognitive.generators.check_example) finds nothing and
                quality_score >= quality_threshold; unverifiable records are flagged, not trusted
3. length       the chat-formatted example is at most max_tokens tokens of the target tokenizer
4. decontam     its normalized context+instruction hash is not in any eval/data/*.jsonl
5. exact dup    no earlier kept example has the same normalized context+instruction
6. near dup     no earlier kept example is a MinHash-LSH near duplicate (Jaccard of word 3-gram shingles
                of the normalized context+instruction >= near_duplicate_threshold)

quality_score (0..1), see QUALITY_SCORE_DOC (also copied into every report.json):
    0.0              the checker found an error (wrong answer, wrong step, broken problem_spec)
    0.3              unverifiable: nothing wrong found, but the answer could not be confirmed
                     (no problem_spec, or a text the checker cannot fully read) -- always below the
                     default threshold 0.7; lower the threshold below 0.3 only to keep curated data
                     deliberately
    0.7 + 0.3 * f    verified; f is the share of these form checks passed: every step has a description
                     and a reasoning text; every step records a memory update; the final answer is at
                     most 300 characters; the steps are numbered 1..n
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from cognitive.errors import UserError
from cognitive.schema import CognitiveTrainingExample, iter_jsonl

UNVERIFIABLE_SCORE = 0.3
QUALITY_SCORE_DOC = __doc__.split("(also copied into every report.json):\n")[1].strip()
NUM_PERM = 64
_PERMUTATIONS = None


# ------------------------------------------------------------------------------------ verification
def quality_score(example: CognitiveTrainingExample, problems: list[str]) -> float:
    """The documented score above, from the checker's findings."""
    if any(not p.startswith("unverifiable") for p in problems):
        return 0.0
    if problems:
        return UNVERIFIABLE_SCORE
    steps = example.reasoning_steps
    form = [
        bool(steps) and all(s.description.strip() and s.reasoning.strip() for s in steps),
        bool(steps) and all(s.memory_update.strip() for s in steps),
        len(example.final_answer) <= 300,
        [s.step for s in steps] == list(range(1, len(steps) + 1)),
    ]
    return round(0.7 + 0.3 * sum(form) / len(form), 4)


def verify(example: CognitiveTrainingExample) -> list[str]:
    """Re-check an example with its task's checker; sets verified and quality_score. Returns the findings."""
    from cognitive.generators import check_example

    problems = check_example(example)
    example.verified = not problems
    example.quality_score = quality_score(example, problems)
    return problems


# --------------------------------------------------------------------------- normalized text hashes
_NON_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation and whitespace runs collapsed to one space (numbers are kept)."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def problem_text(example: CognitiveTrainingExample) -> str:
    return normalize_text(f"{example.context}\n{example.instruction}")


def normalized_hash(example: CognitiveTrainingExample) -> str:
    """Hash of the normalized context + instruction: the key for exact dedup and decontamination."""
    return hashlib.blake2b(problem_text(example).encode(), digest_size=16).hexdigest()


def load_eval_hashes(directory: str | Path) -> set[str]:
    """normalized_hash of every record in <directory>/*.jsonl (empty set when there are none)."""
    hashes: set[str] = set()
    for path in sorted(Path(directory).glob("*.jsonl")):
        hashes.update(normalized_hash(ex) for ex in iter_jsonl(path))
    return hashes


# ------------------------------------------------------------------------------- near duplicates
def _permutations():
    global _PERMUTATIONS
    if _PERMUTATIONS is None:
        _PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=1).permutations
    return _PERMUTATIONS


def minhash_signature(text: str) -> np.ndarray:
    """MinHash (datasketch, 64 permutations, crc32 shingle hash) of the word 3-grams of a normalized text."""
    words = text.split()
    shingles = {" ".join(words[i:i + 3]).encode() for i in range(max(1, len(words) - 2))}
    m = MinHash(num_perm=NUM_PERM, permutations=_permutations(), hashfunc=zlib.crc32, scheme="affine32")
    m.update_batch(list(shingles))
    return m.hashvalues


class Deduplicator:
    """Exact (normalized hash) and near-duplicate (MinHash LSH) filter; first come, first kept."""

    def __init__(self, threshold: float = 0.7):
        self.exact: set[str] = set()
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._n = 0

    def check(self, text_hash: str, signature: np.ndarray) -> str | None:
        """'exact duplicate' / 'near duplicate' or None (then the example is recorded as kept)."""
        if text_hash in self.exact:
            return "exact duplicate"
        m = MinHash(num_perm=NUM_PERM, hashvalues=signature, permutations=_permutations(), scheme="affine32")
        if self.lsh.query(m):
            return "near duplicate"
        self.exact.add(text_hash)
        self.lsh.insert(str(self._n), m, check_duplication=False)
        self._n += 1
        return None


# ---------------------------------------------------------------------------------- token lengths
WHITESPACE = "whitespace"


class TokenCounter:
    """Length in tokens of an example's chat messages.

    spec: "whitespace" (an explicit approximation: whitespace-separated words, for tests and machines
    without the tokenizer), a local tokenizer directory, or anything cognitive.base.load_tokenizer
    accepts (default "embedded:smollm2-135m-instruct"). With a chat template, its per-message overhead
    is measured once and added."""

    def __init__(self, spec: str, tokenizer=None):
        self.spec = spec
        self.tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(spec)
        self.overhead = 0
        self._system: dict[str, int] = {}  # system prompt -> tokens
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            empty = [{"role": r, "content": ""} for r in ("system", "user", "assistant")]
            try:
                self.overhead = len(self.tokenizer.apply_chat_template(empty, tokenize=True))
            except Exception:  # a template that rejects empty turns: count contents only
                self.overhead = 0

    def count_many(self, examples: list[CognitiveTrainingExample]) -> list[int]:
        texts = [[m["content"] for m in ex.to_training_format()["messages"]] for ex in examples]
        if self.tokenizer is None:
            return [sum(len(t.split()) for t in ts) for ts in texts]
        if len(self._system) > 50_000:
            self._system.clear()
        for system, _, _ in texts:  # system prompts repeat (task x difficulty x domain): count each once
            if system not in self._system:
                self._system[system] = self._count([system])[0]
        counts = self._count([t for ts in texts for t in ts[1:]])
        return [self._system[ts[0]] + counts[2 * i] + counts[2 * i + 1] + self.overhead for i, ts in enumerate(texts)]

    def _count(self, texts: list[str]) -> list[int]:
        backend = getattr(self.tokenizer, "_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):  # Rust tokenizer, no offsets
            return [len(e.ids) for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        return [len(x) for x in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _load_tokenizer(spec: str):
    if spec == WHITESPACE:
        return None
    if Path(spec).is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(spec)
    try:
        from cognitive.base import load_tokenizer
    except ImportError:
        raise UserError(f"tokenizer '{spec}' needs cognitive.base.load_tokenizer, which is not available; "
                        f"pass --tokenizer <local tokenizer dir> or --tokenizer whitespace (approximate)") from None
    return load_tokenizer(spec)
