"""Give glibc's freed heap back to the OS while a CPU run trains, when enough of it has piled up.

    trimmer = install_heap_trimmer(model, growth_bytes=512 * 2**20)   # None where the C library is not glibc

Why: with gradient checkpointing every decoder layer's working set (5-25 MB tensors for the 135M at 4 x 1024) is
allocated and freed in forward, again in the recompute and again in backward. glibc keeps the freed blocks mapped
(its mmap threshold grows to the largest block freed, up to 32 MB, so these come from the heap), and the process's
RSS climbs well above the live bytes: at the modules recipe's untrimmed 4.1 GiB peak, `mallinfo2` counts <= 0.9 GB
in use.
`malloc_trim` returns the free pages; calling it costs the page faults of reusing them, so the trimmer calls it only
before a decoder layer runs (in forward, and in backward before its recompute) and only when the RSS has grown by
more than a threshold since the last trim: a bound on the RSS above what the step needs, paid for when reached.
Without checkpointing (the CPU recipes since issue 42) the same holds for the activations a step saves and frees:
trimming at 512 MiB kept the LoRA-only recipe at 4 x 1024 CPU-mix rows to 3.2 GiB peak RSS
(tests/performance/bench_cpu_speed.py, experiments/cpu_speed/README.md).
Figures: tests/performance/bench_train_memory.py (experiments/cpu_training_memory/).
"""

from __future__ import annotations

import ctypes
import os
import sys

import torch
from torch import nn

from cognitive.model.modules import _HOOKS_INSIDE_LAYER_CHECKPOINT, decoder_layers


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library is not glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class HeapTrimmer:
    """Checks before every decoder layer runs, in forward (a forward pre-hook) and in backward (a hook on the gradient
    of the layer's output, which fires just before the layer's recompute and backward; where transformers runs module
    hooks inside the layer's checkpoint, 5.17, the recompute's own pre-hook): malloc_trim when the process's RSS has
    grown by more than `growth_bytes` over its lowest level since the last trim."""

    def __init__(self, growth_bytes: int):
        self.growth_bytes = int(growth_bytes)
        self.floor = rss_bytes()
        self.calls = 0  # checks made (forward and backward)
        self.trims = 0  # malloc_trim calls made
        self.handles = []

    def check(self) -> None:
        self.calls += 1
        now = rss_bytes()
        if now - self.floor > self.growth_bytes:
            _MALLOC_TRIM(0)
            self.trims += 1
            self.floor = rss_bytes()
        else:
            self.floor = min(self.floor, now)

    def before_forward(self, module, args) -> None:
        self.check()

    def after_forward(self, module, args, output) -> None:
        if _HOOKS_INSIDE_LAYER_CHECKPOINT and getattr(module, "gradient_checkpointing", False) and module.training:
            return  # transformers 5.17: the hooks run inside the layer's checkpoint, the recompute's pre-hook checks
        hidden = output[0] if isinstance(output, tuple) else output
        if torch.is_tensor(hidden) and hidden.requires_grad:
            hidden.register_hook(self.before_backward)

    def before_backward(self, grad):
        self.check()  # returns None: the gradient is unchanged

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def install_heap_trimmer(model: nn.Module, growth_bytes: int) -> HeapTrimmer | None:
    """Hook a HeapTrimmer around every decoder layer of `model` (a base or its PEFT wrapper); None, and no hooks,
    where the C library is not glibc (returning freed memory is then the allocator's own business)."""
    if _MALLOC_TRIM is None:
        return None
    trimmer = HeapTrimmer(growth_bytes)
    for layer in decoder_layers(model):
        trimmer.handles += [
            layer.register_forward_pre_hook(trimmer.before_forward),
            layer.register_forward_hook(trimmer.after_forward),
        ]
    return trimmer
