"""SFTTrainer for a model with cognitive modules: trains them beside LoRA, saves them in every checkpoint,
restores them on resume, and adds their auxiliary losses when the config weights them.

The modules are not a PEFT adapter, so PEFT neither trains nor saves them: after PEFT wraps the model they
are marked trainable again (the optimizer, built at train() time, picks them up), `save_model` writes
cognitive_adapter.safetensors + cognitive_config.json next to the PEFT adapter (for checkpoints the Trainer
calls it before trainer_state.json, so a complete checkpoint always has them), and `train(resume_from_
checkpoint=...)` loads them back before the optimizer state is restored.

With an aux loss weighted > 0, the datasets' `aux_spans` (from load_sft_datasets) become token labels aligned
with TRL's input_ids, kept through TRL's column removal, and padded into the batch by AuxLabelCollator
(cognitive/aux_labels.py); compute_loss pops them and adds the weighted aux losses.
"""

from __future__ import annotations

import torch
from trl import SFTTrainer
from trl.data_utils import get_dataset_column_names

from cognitive.aux_labels import (
    SPANS_COLUMN,
    AuxLabelCollator,
    AuxLabelSpec,
    add_token_labels,
    check_padded_batches,
)
from cognitive.errors import UserError
from cognitive.inject import (
    capture_aux_outputs,
    cognitive_aux_loss,
    load_cognitive_adapter,
    mark_cognitive_trainable,
    save_cognitive_adapter,
)
from cognitive.modules import unwrap_model

AUX_LABEL_KEYS = ("step_labels", "state_labels", "action_labels")


class CognitiveSFTTrainer(SFTTrainer):
    def __init__(self, *args, **kwargs):
        model = kwargs["model"] if "model" in kwargs else args[0]
        self.cognitive_config = unwrap_model(model).cognitive_config
        # which aux labels the losses need (None: every aux weight is 0, the data and batches stay TRL's own);
        # read by _prepare_dataset, which SFTTrainer.__init__ calls
        self.aux_label_spec = AuxLabelSpec.from_config(self.cognitive_config)
        super().__init__(*args, **kwargs)
        mark_cognitive_trainable(self.model)
        if self.aux_label_spec is not None:
            self.data_collator = AuxLabelCollator(self.data_collator, self.aux_label_spec)

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """TRL's preparation (chat template, tokenization, completion labels, truncation), then the aux token
        labels aligned with the resulting input_ids (cognitive/aux_labels.py)."""
        spec = self.aux_label_spec
        check_padded_batches(spec, packing, args.padding_free)
        dataset = super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)
        columns = get_dataset_column_names(dataset)
        if spec is None or all(c in columns for c in spec.columns):
            return dataset  # no aux loss, or already labelled (evaluate() prepares again)
        if SPANS_COLUMN not in columns:
            raise UserError(
                f"cognitive_modules aux losses: the {dataset_name} dataset has no '{SPANS_COLUMN}' column; build it with "
                "cognitive.formatting.load_sft_datasets / sft_dataset(examples, aux_labels=...)"
            )
        return add_token_labels(
            dataset, self._tokenizer, spec, chat_template=self.chat_template, max_length=args.max_length,
            truncation_mode=args.truncation_mode, num_proc=args.dataset_num_proc,
        )

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()  # keeps only the model inputs TRL knows of ...
        if self.aux_label_spec is not None:  # ... and, with aux losses, their label columns
            missing = [c for c in self.aux_label_spec.columns if c not in self._signature_columns]
            self._signature_columns = [*self._signature_columns, *missing]

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            save_cognitive_adapter(self.model, output_dir or self.args.output_dir)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if isinstance(resume_from_checkpoint, str):
            load_cognitive_adapter(self.model, resume_from_checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

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
