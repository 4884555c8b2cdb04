"""Quality stages every example passes before it is kept, in this order:

1. schema       the record parses as a CognitiveTrainingExample (curated input: errors name file:line)
2. verification the task's independent checker finds nothing and quality_score >= quality_threshold
                (cognitive.data.verify); unverifiable records are flagged, not trusted
3. length       the chat-formatted example is at most max_tokens tokens of the target tokenizer
4. decontam     its normalized context+instruction hash is not in any eval/data/*.jsonl
5. exact dup    no earlier kept example has the same normalized context+instruction
6. near dup     no earlier kept example is a MinHash-LSH near duplicate (Jaccard of word 3-gram shingles
                of the normalized context+instruction >= near_duplicate_threshold)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from cognitive.data.response import render_response
from cognitive.data.schema import CognitiveTrainingExample, iter_jsonl
from cognitive.errors import UserError

NUM_PERM = 64
_PERMUTATIONS = None


# --------------------------------------------------------------------------- normalized text hashes
_NON_WORD = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation and whitespace runs collapsed to one space (numbers are kept)."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def problem_text(example: CognitiveTrainingExample) -> str:
    return normalize_text(f"{example.context}\n{example.instruction}")


def text_hash(normalized_text: str) -> str:
    return hashlib.blake2b(normalized_text.encode(), digest_size=16).hexdigest()


def normalized_hash(example: CognitiveTrainingExample) -> str:
    """Hash of the normalized context + instruction: the key for exact dedup and decontamination."""
    return text_hash(problem_text(example))


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
    shingles = {" ".join(words[i : i + 3]).encode() for i in range(max(1, len(words) - 2))}
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
    without the tokenizer), a local tokenizer directory, or anything cognitive.model.base.load_tokenizer
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
                ids = self.tokenizer.apply_chat_template(empty, tokenize=True, return_dict=False)
                self.overhead = len(ids)  # (return_dict=False: a BatchEncoding's len is its number of keys)
            except Exception:  # a template that rejects empty turns: count contents only
                self.overhead = 0

    def count_many(self, examples: list[CognitiveTrainingExample], response_style: str = "guide") -> list[int]:
        """Tokens of each example's system + user prompt (the guide's) and its response in `response_style`."""
        texts = [[ex.system_prompt(), ex.user_prompt(), render_response(ex, response_style)] for ex in examples]
        if self.tokenizer is None:
            return [sum(len(t.split()) for t in ts) for ts in texts]
        if len(self._system) > 50_000:
            self._system.clear()
        for system, _, _ in texts:  # system prompts repeat (task x difficulty x domain): count each once
            if system not in self._system:
                self._system[system] = self.count_texts([system])[0]
        counts = self.count_texts([t for ts in texts for t in ts[1:]])
        return [self._system[ts[0]] + counts[2 * i] + counts[2 * i + 1] + self.overhead for i, ts in enumerate(texts)]

    def count_texts(self, texts: list[str]) -> list[int]:
        """Tokens of each text (no special tokens, no chat template)."""
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
        from cognitive.model.base import load_tokenizer
    except ImportError:
        raise UserError(
            f"tokenizer '{spec}' needs cognitive.model.base.load_tokenizer, which is not available; "
            f"pass --tokenizer <local tokenizer dir> or --tokenizer whitespace (approximate)"
        ) from None
    return load_tokenizer(spec)
