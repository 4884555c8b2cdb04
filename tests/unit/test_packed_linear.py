"""Linear weights packed for oneDNN (cognitive/model/packed_linear.py): bit-identical outputs, and the layer's own
forward wherever the packed copy could be stale or cannot serve the call."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cognitive.model.packed_linear import PACKED, can_pack, pack_linear_weights, unpack_linear_weights
from tests.conftest import varied_tiny

pytestmark = pytest.mark.skipif(not can_pack(), reason="this torch or CPU has no oneDNN bf16 linear")


def _varied_bf16(family: str, vocab: int = 512, modules: bool = False):
    """A tiny bf16 model whose greedy answers vary (weights larger than a fresh init's), every module on if asked."""
    return varied_tiny(family, vocab, seed=3, modules=modules, biases=True).to(torch.bfloat16)


def _plain_linears(model) -> int:
    return sum(type(m) is nn.Linear for m in model.modules())


@pytest.mark.parametrize("family, modules", [("llama", False), ("qwen2", True)])  # qwen2: q/k/v with biases
def test_packed_model_gives_the_same_logits_and_tokens_bit_for_bit(family, modules):
    model = _varied_bf16(family, modules=modules)
    reference = copy.deepcopy(model)
    ids = torch.randint(0, 512, (5, 23), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :7] = 0  # left padding in one row
    assert pack_linear_weights(model) == _plain_linears(model) > 0
    with torch.no_grad():
        assert torch.equal(
            model(input_ids=ids, attention_mask=mask).logits, reference(input_ids=ids, attention_mask=mask).logits
        )
        kwargs = dict(attention_mask=mask, max_new_tokens=24, do_sample=False, pad_token_id=0)
        tokens = model.generate(ids, **kwargs)
        assert torch.equal(tokens, reference.generate(ids, **kwargs))
    assert len(set(tokens[:, 23:].flatten().tolist())) > 5  # answers that vary, not one repeated token


def test_the_packed_copy_is_what_runs():
    """Under no_grad the layer computes with its packed copy: a copy packed from other weights changes the output."""
    layer = nn.Linear(64, 96).to(torch.bfloat16)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    pack_linear_weights(layer)
    with torch.no_grad():
        before = layer(x)
        other = torch.ops.mkldnn._reorder_linear_weight(torch.randn(96, 64, dtype=torch.bfloat16), 16)
        setattr(layer, PACKED, (other, *getattr(layer, PACKED)[1:]))
        assert not torch.equal(layer(x), before)


def test_an_edited_replaced_or_cast_weight_falls_back_to_the_layers_own_forward():
    layer = nn.Linear(64, 96).to(torch.bfloat16)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    pack_linear_weights(layer)
    with torch.no_grad():
        layer.weight.mul_(2)  # edited in place
        assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
        layer.bias.add_(1)
        assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
        layer.weight = nn.Parameter(torch.randn(96, 64, dtype=torch.bfloat16))  # replaced
        assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
        layer.float()  # cast: an fp32 input now
        assert torch.equal(layer(x.float()), nn.functional.linear(x.float(), layer.weight, layer.bias))


def test_gradients_flow_through_a_packed_layer_as_through_a_plain_one():
    layer = nn.Linear(64, 96).to(torch.bfloat16)
    plain = copy.deepcopy(layer)
    pack_linear_weights(layer)
    x = torch.randn(4, 64, dtype=torch.bfloat16, requires_grad=True)
    layer(x).float().square().sum().backward()
    grads = (x.grad.clone(), layer.weight.grad)
    x.grad = None
    plain(x).float().square().sum().backward()
    assert torch.equal(grads[0], x.grad) and torch.equal(grads[1], plain.weight.grad)


def test_fp32_layers_and_linear_subclasses_are_left_alone_and_unpack_undoes_it():
    class Subclass(nn.Linear):  # as bitsandbytes' 4-bit layers are
        pass

    model = nn.Sequential(nn.Linear(8, 8), Subclass(8, 8).to(torch.bfloat16), nn.Linear(8, 8).to(torch.bfloat16))
    assert pack_linear_weights(model) == 1 and hasattr(model[2], PACKED)
    assert pack_linear_weights(model) == 0  # packed once
    assert not hasattr(model[0], PACKED) and not hasattr(model[1], PACKED)
    assert unpack_linear_weights(model) == 1
    assert not hasattr(model[2], PACKED) and "forward" not in vars(model[2])


def test_the_harness_lm_eval_model_packs_a_bf16_model_unless_told_not_to(embedded_tokenizer):
    """`cognitive-hf` packs the linear layers of the bf16 model it evaluates (`pack_weights=False` leaves them), and
    answers as lm_eval's `hf` does on an unpacked copy."""
    from lm_eval.models.huggingface import HFLM

    from cognitive.evaluation.lm import BufferedHFLM
    from tests.unit.test_kv_cache import CONTEXTS, _generate_until

    model = _varied_bf16("llama", len(embedded_tokenizer))
    theirs = HFLM(pretrained=copy.deepcopy(model), tokenizer=embedded_tokenizer, batch_size=6)
    assert (
        BufferedHFLM(pretrained=copy.deepcopy(model), tokenizer=embedded_tokenizer, pack_weights=False).packed_layers
        == 0
    )
    ours = BufferedHFLM(pretrained=model, tokenizer=embedded_tokenizer, batch_size=6)
    assert ours.packed_layers == _plain_linears(model)
    ours.prune_every = 0  # one generate call per batch: the packing alone
    assert _generate_until(ours, CONTEXTS, ["<never>"]) == _generate_until(theirs, CONTEXTS, ["<never>"])


def test_a_peft_layer_that_merges_its_adapter_falls_back(embedded_tokenizer):
    """PEFT merges a LoRA adapter into the base layer's weight through .data (no version counter sees it): a packed
    base layer then computes with the merged weight, as the plain model does."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        _varied_bf16("llama"), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    plain = copy.deepcopy(model)
    ids = torch.randint(0, 512, (2, 9), generator=torch.Generator().manual_seed(0))
    assert pack_linear_weights(model) > 0
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain(input_ids=ids).logits)
        model.merge_adapter()
        plain.merge_adapter()
        assert torch.equal(model(input_ids=ids).logits, plain(input_ids=ids).logits)
