"""bf16 linear layers on a CPU with their weights pre-packed for oneDNN: the same outputs, bit for bit, in less time.

    from cognitive.model.packed_linear import pack_linear_weights
    pack_linear_weights(model)          # a bf16 model on a CPU, for inference: the number of layers packed

torch runs a bf16 `nn.Linear` on a CPU through oneDNN, which first reorders the weight into its blocked layout, at
every call. At generation's few rows per step that reorder is most of the work: on 2 Zen 4 cores a batch-16 step's
projections of the 135M take 1.3-2.2x longer than with the weight reordered once (`torch.ops.mkldnn.
_reorder_linear_weight`, the packing torch.compile's freezing pass does; tests/performance/bench_cpu_speed.py). The
packed call (`torch.ops.mkldnn._linear_pointwise`) runs the same oneDNN kernel and gives bit-identical outputs
(tests/unit/test_packed_linear.py), so greedy answers do not change.

`pack_linear_weights` gives each plain bf16 `nn.Linear` of the model a packed copy of its weight (the weights held
twice: the 135M's evaluation peaks 0.6 GiB higher) and a forward that uses it. A layer falls back to its own forward,
per call, when the packed copy could be stale or cannot serve the call: the weight was edited or replaced since
packing, a gradient is wanted (the packed op has no backward), the input is not bf16 on the CPU, or the PEFT layer
around it has merged its adapter into the weight. An edit through `.data` elsewhere goes unseen (no version counter
counts it): call `unpack_linear_weights` before one. Subclasses of `nn.Linear` (bitsandbytes' 4-bit layers) and
fp32 layers (oneDNN's fp32 result differs from MKL's in the last bits) are left as they are; PEFT's LoRA layers are
no `nn.Linear`, their plain base layer is packed. `unpack_linear_weights` undoes it.
"""

from __future__ import annotations

import types
import weakref

import torch
import torch.nn.functional as F
from torch import nn

PACKED = "_cognitive_packed"  # a packed layer's attribute: (packed weight, its _state when packed, PEFT layer or None)


def can_pack() -> bool:
    """Whether this torch has oneDNN's packed linear op and the CPU runs bf16 through it."""
    mkldnn = torch.ops.mkldnn
    try:
        ops = (mkldnn._reorder_linear_weight, mkldnn._linear_pointwise, mkldnn._is_mkldnn_bf16_supported)
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False
    return torch.backends.mkldnn.is_available() and bool(ops[2]())


def pack_linear_weights(model: nn.Module, rows_hint: int = 16) -> int:
    """Pack the weight of every plain bf16 `nn.Linear` of `model` that lives on the CPU (see the module docstring);
    `rows_hint`: the rows per call oneDNN picks its layout for (a generating batch). Returns how many were packed:
    0 where `can_pack()` is False."""
    if not can_pack():
        return 0
    count = 0
    # PEFT's tuner layers (LoRA ...) wrap a plain base layer and merge adapters into its weight through .data, which
    # no version counter sees: a packed base layer asks its tuner layer whether it is merged.
    tuner = {
        id(m.base_layer): weakref.ref(m)
        for m in model.modules()
        if isinstance(getattr(m, "base_layer", None), nn.Module)
    }
    for module in model.modules():
        if type(module) is not nn.Linear or hasattr(module, PACKED):
            continue
        weight, bias = module.weight, module.bias
        if weight.device.type != "cpu" or weight.dtype != torch.bfloat16:
            continue
        if bias is not None and bias.dtype != torch.bfloat16:
            continue
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows_hint)
        setattr(module, PACKED, (packed, _state(module), tuner.get(id(module))))
        module.forward = types.MethodType(_packed_forward, module)  # an instance attribute: nn.Module calls it
        count += 1
    return count


def unpack_linear_weights(model: nn.Module) -> int:
    """Undo pack_linear_weights: the layers' own forward, the packed copies freed. Returns how many were unpacked."""
    count = 0
    for module in model.modules():
        if hasattr(module, PACKED):
            delattr(module, PACKED)
            del module.forward
            count += 1
    return count


def _state(layer: nn.Linear) -> tuple:
    """What identifies the layer's weight and bias as they were packed: tensor, storage, version, dtype and device (a
    replaced, edited, cast or moved tensor changes one of them)."""
    state = []
    for tensor in (layer.weight, layer.bias):
        if tensor is None:
            state.append(None)
            continue
        try:
            version = tensor._version
        except RuntimeError:  # an inference tensor (created under torch.inference_mode) has no version counter
            version = None
        state.append((id(tensor), tensor.data_ptr(), version, tensor.dtype, tensor.device))
    return tuple(state)


def _packed_forward(self: nn.Linear, input: torch.Tensor) -> torch.Tensor:
    packed, state, tuner = getattr(self, PACKED)
    bias_grad = self.bias is not None and self.bias.requires_grad
    grad = torch.is_grad_enabled() and (input.requires_grad or self.weight.requires_grad or bias_grad)
    usable = not grad and input.dtype == torch.bfloat16 and input.device.type == "cpu"
    merged = tuner is not None and getattr(tuner(), "merged", False)
    if usable and not merged and _state(self) == state:
        return torch.ops.mkldnn._linear_pointwise(input, packed, self.bias, "none", [], "")
    return F.linear(input, self.weight, self.bias)
