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


@pytest.fixture
def tiny(embedded_tokenizer):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(embedded_tokenizer)), dtype=torch.float32)
    return model.eval(), torch.randint(0, len(embedded_tokenizer), (2, 16))


def test_trims_once_the_rss_grew_past_the_threshold(tiny):
    model, ids = tiny
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


def test_checks_before_every_layer_in_forward_and_backward(tiny):
    model, ids = tiny
    trimmer = heap.install_heap_trimmer(model, growth_bytes=100 * 2**30)
    model(ids, labels=ids).loss.backward()
    assert trimmer.calls == 2 * 2 and trimmer.trims == 0  # 2 layers, forward and backward
    trimmer.remove()


def test_does_not_trim_below_the_threshold(tiny):
    model, ids = tiny
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


def test_checks_each_layer_twice_per_step_under_gradient_checkpointing(tiny):
    """Forward and backward (before the recompute), whichever way this transformers version runs module hooks."""
    model, ids = tiny
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trimmer = heap.install_heap_trimmer(model, growth_bytes=100 * 2**30)
    model(ids, labels=ids).loss.backward()
    assert trimmer.calls == 2 * 2
    trimmer.remove()
