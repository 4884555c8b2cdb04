"""The trainer of `recipes/sft.py`: the base loaded for training, LoRA, and TRL's SFTTrainer, or for a model with
cognitive modules the CognitiveSFTTrainer below, which trains them beside LoRA, saves them in every checkpoint,
restores them on resume, and adds their auxiliary losses when the config weights them.

    model, tokenizer = load_model_and_tokenizer(run.model, run.training, run.modules)
    trainer = build_trainer(model, tokenizer, run.training, run.model, train, eval, run.aux_labels)

The modules are not a PEFT adapter, so PEFT neither trains nor saves them: after PEFT wraps the model they
are marked trainable again (the optimizer, built at train() time, picks them up), `save_model` writes
cognitive_adapter.safetensors + cognitive_config.json next to the PEFT adapter (for checkpoints the Trainer
calls it before trainer_state.json, so a complete checkpoint always has them), and `train(resume_from_
checkpoint=...)` loads them back before the optimizer state is restored.

With an aux loss weighted > 0, the datasets' `aux_spans` (from load_sft_datasets) become token labels aligned
with TRL's input_ids, kept through TRL's column removal, and padded into the batch by AuxLabelCollator
(cognitive/train/aux_labels.py); compute_loss pops them and adds the weighted aux losses.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import warnings

import torch
from trl import SFTTrainer
from trl.data_utils import get_dataset_column_names

from cognitive.errors import UserError
from cognitive.model.base import load_base, load_tokenizer
from cognitive.model.inject import (
    capture_aux_outputs,
    cognitive_aux_loss,
    cognitive_parameter_counts,
    format_parameter_counts,
    inject_cognitive_modules,
    load_cognitive_adapter,
    lora_target_modules,
    mark_cognitive_trainable,
    save_cognitive_adapter,
)
from cognitive.model.memory import CPU_LOGIT_TILE
from cognitive.model.modules import unwrap_model
from cognitive.model.packed_attention import PACKED_SDPA, register_packed_sdpa
from cognitive.train.aux_labels import (
    SPANS_COLUMN,
    AuxLabelCollator,
    AuxLabelSpec,
    add_token_labels,
    check_padded_batches,
)
from cognitive.train.heap import install_heap_trimmer
from cognitive.train.run import run_callbacks


# ------------------------------------------------------------------------------------------------ building
def attn_implementation(requested: str | None, packing: bool = False, padding_free: bool = False) -> str:
    """flash_attention_2 when installed on a GPU; for packed batches on a GPU without it, flex_attention (keeps
    the packed sequences apart with a block mask, not a dense one); for packed or padding-free batches on a CPU,
    packed_sdpa (SDPA on each packed sequence apart: cognitive/model/packed_attention.py); otherwise PyTorch SDPA."""

    if requested:
        if requested == PACKED_SDPA:
            register_packed_sdpa()
        return requested
    if torch.cuda.is_available():
        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        if packing:
            return "flex_attention"
    elif packing or padding_free:
        return register_packed_sdpa()
    return "sdpa"


def load_model_and_tokenizer(model_args, training_args, modules=None):
    """The base for training: resolved (hub / local / embedded), optionally 4-bit (QLoRA), with the cognitive
    modules injected when `modules` (the recipe's resolved cognitive_modules config) is given."""
    from accelerate import PartialState
    from transformers.integrations import is_deepspeed_zero3_enabled
    from trl import get_quantization_config

    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    quantization_config = get_quantization_config(model_args)
    model = load_base(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=dtype,
        attn_implementation=attn_implementation(
            model_args.attn_implementation,
            getattr(training_args, "packing", False),  # GRPOConfig has neither
            getattr(training_args, "padding_free", False),
        ),
        quantization_config=quantization_config,
        # a quantized base must be placed at load time: on this rank's GPU, or the CPU; except under ZeRO-3,
        # which partitions the weights itself while loading and refuses a device_map
        device_map=(
            {"": PartialState().local_process_index if torch.cuda.is_available() else "cpu"}
            if quantization_config is not None and not is_deepspeed_zero3_enabled()
            else None
        ),
        trust_remote_code=training_args.trust_remote_code,
    )
    if modules is not None:
        inject_cognitive_modules(model, modules)
        print(format_parameter_counts(cognitive_parameter_counts(model)))
    return model, tokenizer


def lora_config(model_args, model=None):
    """LoRA from ModelConfig (TRL's get_peft_config); defaults to all linear layers of the base, and with
    cognitive modules injected, to the base's linear layers only (the modules train fully, without LoRA)."""
    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    if model_args.lora_target_modules in (None, "all-linear", ["all-linear"]):
        targets = "all-linear"
        if model is not None and getattr(model, "cognitive_config", None) is not None:
            targets = lora_target_modules(model)
        model_args = dataclasses.replace(model_args, lora_target_modules=targets)  # the recipe's args stay as given
    return get_peft_config(model_args)


def build_trainer(
    model, tokenizer, training_args, model_args, train_dataset, eval_dataset, aux_labels=None, cpu_heap_trim_mb=0
):
    """SFTTrainer with LoRA (PEFT); with cognitive modules, the subclass below that trains and saves them too (and,
    with `aux_labels`, turns the datasets' aux_spans into token labels and batches them: aux_labels.py). On a CPU,
    `cpu_heap_trim_mb` hooks cognitive.train.heap's trimmer before every decoder layer (`trainer.heap_trimmer`)."""
    from transformers.trainer_utils import IntervalStrategy

    if eval_dataset is None and training_args.eval_strategy != IntervalStrategy.NO:  # a recipe's run resolved this
        raise ValueError("build_trainer: eval_strategy needs an eval_dataset (set eval_strategy 'no' without one)")
    check_padded_batches(aux_labels, training_args.packing, training_args.padding_free)  # before TRL wraps the model
    kwargs = dict(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(model_args, model),
    )
    if on_cpu(training_args):
        use_cpu_lm_head_tiles()
    if getattr(model, "cognitive_config", None) is None:
        trainer = PaddingFreeSFTTrainer(**kwargs)
    else:
        trainer = CognitiveSFTTrainer(**kwargs, aux_labels=aux_labels)
    for callback in run_callbacks():  # each checkpoint marked complete, last; a resume's new frequencies (run.py)
        trainer.add_callback(callback)
    attach_heap_trimmer(trainer, training_args, cpu_heap_trim_mb)
    return trainer


def on_cpu(training_args) -> bool:
    return bool(training_args.use_cpu) or not torch.cuda.is_available()


def attach_heap_trimmer(trainer, training_args, cpu_heap_trim_mb: int) -> None:
    """`trainer.heap_trimmer`: cognitive.train.heap's trimmer before every decoder layer when the run is on a CPU and
    the recipe sets cpu_heap_trim_mb > 0 (SFT and GRPO), else None."""
    trainer.heap_trimmer = None
    if cpu_heap_trim_mb and on_cpu(training_args):
        trainer.heap_trimmer = install_heap_trimmer(trainer.model, cpu_heap_trim_mb * 2**20)


# TRL's fused LM head (trl.kernels.chunked_logprob, which SFTTrainer computes the loss with) scores the vocabulary in
# tiles sized for GPU GEMMs (memory.LOGIT_TILE). Without Triton (on a CPU) each tile is folded with torch ops that
# make several fp32 copies of it, 0.5 GB apiece: for the 135M at 4 x 1024 they are the step's peak, +4 GB over
# everything else. On a CPU smaller tiles (memory.CPU_LOGIT_TILE) are both leaner and faster (cache-sized; measured
# with tests/performance/bench_train_memory.py: 6.3 -> 2.3 GB peak RSS, 40.6 -> 32.8 s for two steps).
def use_cpu_lm_head_tiles(tokens: int = CPU_LOGIT_TILE[0], vocab: int = CPU_LOGIT_TILE[1]) -> bool:
    """Set TRL's fused-LM-head tile size for this process (its module constants: TRL exposes no argument for them).
    Returns False, with a warning, when the installed TRL no longer has them (the loss is then TRL's default)."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils

    if not (hasattr(kernel, "TOKEN_CHUNK_SIZE") and hasattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE")):
        warnings.warn(
            "this TRL has no fused-LM-head tile constants: CPU training keeps its default tiles", stacklevel=2
        )
        return False
    kernel.TOKEN_CHUNK_SIZE = tokens
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = vocab
    return True


# ------------------------------------------------------------------------------------------------ the trainer
AUX_LABEL_KEYS = ("step_labels", "state_labels", "action_labels")


class PaddingFreeTruncation:
    """`padding_free: true` without packing, with max_length (the CPU recipes): TRL 1.16's SFTTrainer refuses the
    pair in __init__ ("max_length is not enforced"), yet its dataset preparation truncates every row to max_length
    either way. So the trainer is built with max_length None past that check, prepares its datasets with the
    recipe's max_length, and keeps it in its args (run_config.yaml records it)."""

    def __init__(self, *args, **kwargs):
        training_args = kwargs["args"] if "args" in kwargs else args[1]  # Trainer(model, args, ...)
        self._truncate_to = None
        if (
            training_args is not None
            and training_args.padding_free
            and not training_args.packing
            and training_args.max_length is not None
        ):
            self._truncate_to, training_args.max_length = training_args.max_length, None
        try:
            super().__init__(*args, **kwargs)
        finally:
            if self._truncate_to is not None:
                training_args.max_length = self._truncate_to

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        if self._truncate_to is not None and args.max_length is None:
            args = copy.copy(args)
            args.max_length = self._truncate_to
        return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)


class PaddingFreeSFTTrainer(PaddingFreeTruncation, SFTTrainer):
    """TRL's SFTTrainer (LoRA only), with padding-free rows truncated to max_length."""


class CognitiveModulesMixin:
    """What a TRL trainer needs to train cognitive modules beside a PEFT adapter (SFT here, GRPO in
    cognitive/rl/grpo.py): `save_model` writes them next to the adapter (checkpoints included), `train(resume)`
    loads them back before the optimizer state. Call `mark_cognitive_trainable(self.model)` after the TRL
    trainer's __init__, which lets PEFT freeze them."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            save_cognitive_adapter(self.model, output_dir or self.args.output_dir)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if isinstance(resume_from_checkpoint, str):
            load_cognitive_adapter(self.model, resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)


class CognitiveSFTTrainer(CognitiveModulesMixin, PaddingFreeTruncation, SFTTrainer):
    def __init__(self, *args, aux_labels: AuxLabelSpec | None = None, **kwargs):
        model = kwargs["model"] if "model" in kwargs else args[0]
        self.cognitive_config = unwrap_model(model).cognitive_config
        # which aux labels the losses need (None: every aux weight is 0, the data and batches stay TRL's own);
        # read by _prepare_dataset, which SFTTrainer.__init__ calls. Given by the recipe (resolved once from its
        # cognitive_modules block); for direct use, derived from the model's config.
        self.aux_label_spec = aux_labels if aux_labels is not None else AuxLabelSpec.from_config(self.cognitive_config)
        super().__init__(*args, **kwargs)
        mark_cognitive_trainable(self.model)
        if self.aux_label_spec is not None:
            self.data_collator = AuxLabelCollator(self.data_collator, self.aux_label_spec)

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """TRL's preparation (chat template, tokenization, completion labels, truncation), then the aux token
        labels aligned with the resulting input_ids (cognitive/train/aux_labels.py)."""
        spec = self.aux_label_spec
        check_padded_batches(spec, packing, args.padding_free)
        dataset = super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)
        columns = get_dataset_column_names(dataset)
        if spec is None or all(c in columns for c in spec.columns):
            return dataset  # no aux loss, or already labelled (evaluate() prepares again)
        if SPANS_COLUMN not in columns:
            raise UserError(
                f"cognitive_modules aux losses: the {dataset_name} dataset has no '{SPANS_COLUMN}' column; "
                "build it with "
                "cognitive.train.sft_data.load_sft_datasets / sft_dataset(examples, aux_labels=...)"
            )
        return add_token_labels(
            dataset,
            self._tokenizer,
            spec,
            chat_template=self.chat_template,
            max_length=args.max_length,
            truncation_mode=args.truncation_mode,
            num_proc=args.dataset_num_proc,
        )

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()  # keeps only the model inputs TRL knows of ...
        if self.aux_label_spec is not None:  # ... and, with aux losses, their label columns
            missing = [c for c in self.aux_label_spec.columns if c not in self._signature_columns]
            self._signature_columns = [*self._signature_columns, *missing]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = {key: inputs.pop(key) for key in AUX_LABEL_KEYS if key in inputs}
        if not labels:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # TRL's return_outputs=True runs a second, no-grad forward for the logits, which would overwrite the
        # captured aux outputs with graph-less ones: capture the training forward alone, recompute logits after
        with capture_aux_outputs(model) as aux:
            loss = super().compute_loss(model, inputs, False, num_items_in_batch)
        aux_loss = cognitive_aux_loss(aux, self.cognitive_config, **labels)
        if aux_loss is not None:
            self._metrics["train" if model.training else "eval"]["aux_loss"].append(aux_loss.detach().item())
            # a per-micro-batch mean, while TRL's loss is already divided by the tokens of the whole accumulated
            # batch (the Trainer then does not divide): average it over the accumulation steps, as TRL does
            # for the MoE router loss
            if num_items_in_batch is not None:
                aux_loss = aux_loss / self.current_gradient_accumulation_steps
            loss = loss + aux_loss
        if not return_outputs:
            return loss
        with torch.no_grad():
            outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        return loss, outputs
