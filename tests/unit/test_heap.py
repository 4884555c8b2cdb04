"""cognitive/train/heap.py: the trimmer returns freed heap pages to the OS once the RSS has grown past its threshold,
and only then; it never changes what the model computes."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from cognitive.train import heap
from tests.conftest import tiny_config

MB = 2**20
pytestmark = pytest.mark.skipif(heap._MALLOC_TRIM is None, reason="the trimmer needs glibc")


def fragmented_garbage(megabytes: int) -> list:
    """Free `megabytes` of 64 KB heap blocks that glibc keeps mapped: each is pinned by a small live block after it,
    so none of them is at the top of the heap (which free() would return by itself). Returns the pins.
    The tests trim the heap first (earlier tests leave plenty free), so these blocks fault in fresh pages."""
    blocks, pins = [], []
    for _ in range(megabytes * 16):
        block = bytearray(64 * 1024)  # above pymalloc's 512 bytes and below glibc's mmap threshold: the heap
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
        blocks.append(block)
        pins.append(bytearray(1024))
    del blocks
    return pins


def in_a_fresh_process(body, *args) -> None:
    """Run `body(*args)` in a fresh interpreter (multiprocessing spawn); its assertion errors come back here. The RSS
    tests measure glibc's heap, which is process state: in a test worker that already ran other files (pytest-xdist)
    the freed blocks of earlier tests can hide the growth they need."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(body, args)


def tiny_model(vocab: int):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", vocab), dtype=torch.float32)
    return model.eval(), torch.randint(0, vocab, (2, 16))


@pytest.fixture
def tiny(embedded_tokenizer):
    return tiny_model(len(embedded_tokenizer))


def trims_once_the_rss_grew_past_the_threshold(vocab: int) -> None:
    model, ids = tiny_model(vocab)
    with torch.no_grad():
        expected = model(ids).logits
    heap._MALLOC_TRIM(0)  # start from a heap with nothing free: the garbage below grows the RSS
    trimmer = heap.install_heap_trimmer(model, growth_bytes=64 * MB)
    pins = fragmented_garbage(200)
    before = heap.rss_bytes()
    assert before - trimmer.floor > 150 * MB, "precondition: glibc kept the freed blocks mapped"
    with torch.no_grad():
        logits = model(ids).logits
    after = heap.rss_bytes()
    assert trimmer.calls == 2 and trimmer.trims == 1  # two layers; the first trim brings the RSS back
    assert after < before - 150 * MB, (before / MB, after / MB)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    trimmer.remove()
    with torch.no_grad():
        model(ids)
    assert trimmer.calls == 2  # the hooks are gone
    del pins


def test_trims_once_the_rss_grew_past_the_threshold(embedded_tokenizer):
    in_a_fresh_process(trims_once_the_rss_grew_past_the_threshold, len(embedded_tokenizer))


def test_checks_before_every_layer_in_forward_and_backward(tiny):
    model, ids = tiny
    trimmer = heap.install_heap_trimmer(model, growth_bytes=100 * 2**30)
    model(ids, labels=ids).loss.backward()
    assert trimmer.calls == 2 * 2 and trimmer.trims == 0  # 2 layers, forward and backward
    trimmer.remove()


def does_not_trim_below_the_threshold(vocab: int) -> None:
    model, ids = tiny_model(vocab)
    heap._MALLOC_TRIM(0)  # start from a heap with nothing free: the garbage below grows the RSS
    trimmer = heap.install_heap_trimmer(model, growth_bytes=100 * 2**30)
    pins = fragmented_garbage(100)
    before = heap.rss_bytes()
    with torch.no_grad():
        model(ids)
    assert trimmer.calls == 2 and trimmer.trims == 0
    assert heap.rss_bytes() > before - 50 * MB  # the freed blocks are still mapped
    trimmer.remove()
    del pins


def test_does_not_trim_below_the_threshold(embedded_tokenizer):
    in_a_fresh_process(does_not_trim_below_the_threshold, len(embedded_tokenizer))


def test_checks_each_layer_twice_per_step_under_gradient_checkpointing(tiny):
    """Forward and backward (before the recompute), whichever way this transformers version runs module hooks."""
    model, ids = tiny
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trimmer = heap.install_heap_trimmer(model, growth_bytes=100 * 2**30)
    model(ids, labels=ids).loss.backward()
    assert trimmer.calls == 2 * 2
    trimmer.remove()
