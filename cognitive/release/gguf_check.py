"""A GGUF export checked against the model it was converted from, by loading it (tests/integration/test_export.py,
tests/performance/bench_gguf.py).

    diff = gguf_logit_diff("release/demo", "release/demo/gguf/demo-f16.gguf")     # transformers reads the GGUF back
    agree = greedy_agreement("release/demo", "release/demo/gguf/demo-q8_0.gguf", n_tokens=16)   # llama.cpp

gguf_logit_diff: transformers dequantizes the GGUF into its own model class (`gguf_file=`); the max abs logit
difference to the source model over the real positions of the merge check batch, fp32.
greedy_agreement: for each of AGREEMENT_PROMPTS (10 fixed chat prompts), the number of leading tokens of llama.cpp's
greedy continuation (the GGUF, via llama-cpp-python) that equal transformers' greedy continuation on the source model
(fp32), up to n_tokens; the prompt token ids are the source tokenizer's, the same for both. One flipped near-tie
sends the rest of a continuation elsewhere, so next_token_agreement also counts, position by position along
transformers' continuation (the same context on both sides), how often llama.cpp's top token is transformers'.
"""

from __future__ import annotations

from pathlib import Path

from cognitive.release import llama_cpp
from cognitive.release.merge import check_batch

AGREEMENT_PROMPTS = [
    "What is 17 + 25?",
    "Name three primary colors.",
    "Sarah has 3 boxes of 12 apples and gives away 8. How many are left?",
    "Write one sentence about the sea.",
    "If all cats are animals and Tom is a cat, is Tom an animal?",
    "List the days of the week.",
    "A train leaves at 9:00 and arrives at 11:30. How long is the trip?",
    "What is the capital of France?",
    "Plan: bake bread (40 min, oven), make salad (10 min). One oven. Total time?",
    "Reverse the word 'planet'.",
]


def load_source(model_dir: str | Path):
    """(model fp32 eval, tokenizer) of a plain model directory (a release or a base)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def gguf_logit_diff(model_dir: str | Path, gguf_file: str | Path, source=None) -> float:
    """Max |logit(GGUF read by transformers) - logit(source)| on the merge check batch (fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer = source or load_source(model_dir)
    gguf_file = Path(gguf_file)
    read_back = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    ).eval()
    batch = check_batch(tokenizer)
    with torch.no_grad():
        reference, logits = model(**batch).logits, read_back(**batch).logits
    keep = batch["attention_mask"].bool()
    return (logits[keep] - reference[keep]).abs().max().item()


def prompt_ids(tokenizer, prompts: list[str] = AGREEMENT_PROMPTS) -> list[list[int]]:
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def transformers_greedy(model, ids: list[list[int]], n_tokens: int) -> list[list[int]]:
    """Greedy continuations, one prompt at a time (no padding), stopping at the model's EOS."""
    import torch

    out = []
    for prompt in ids:
        with torch.no_grad():
            generated = model.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=n_tokens,
                do_sample=False,
            )
        out.append(generated[0, len(prompt) :].tolist())
    return out


def leading_agreement(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def greedy_agreement(
    model_dir: str | Path,
    gguf_file: str | Path,
    n_tokens: int = 16,
    source=None,
    reference: list[list[int]] | None = None,
) -> list[int]:
    """Per prompt of AGREEMENT_PROMPTS: leading tokens where llama.cpp on the GGUF matches transformers on the source
    (transformers' continuation ending early at EOS, matched up to it, counts as agreeing to n_tokens)."""
    model, tokenizer = source or load_source(model_dir)
    ids = prompt_ids(tokenizer)
    reference = reference if reference is not None else transformers_greedy(model, ids, n_tokens)
    llm = llama_cpp.load_gguf(Path(gguf_file))
    agreement = []
    for prompt, expected in zip(ids, reference):
        same = leading_agreement(llama_cpp.greedy_tokens(llm, prompt, n_tokens), expected)
        agreement.append(n_tokens if same == len(expected) else same)  # all of it, also when it ended at EOS
    return agreement


def next_token_agreement(gguf_file: str | Path, ids: list[list[int]], reference: list[list[int]]) -> float:
    """The share of positions of transformers' greedy continuations where llama.cpp's top token, given the same
    prompt and continuation so far, is transformers' token."""
    import numpy as np

    llm = llama_cpp.load_gguf(Path(gguf_file), logits_all=True)
    same = total = 0
    for prompt, continuation in zip(ids, reference):
        llm.reset()
        llm.eval(prompt + continuation)
        scores = np.asarray(llm.scores[len(prompt) - 1 : len(prompt) - 1 + len(continuation)])
        same += int((scores.argmax(axis=1) == np.asarray(continuation)).sum())
        total += len(continuation)
    return same / total
