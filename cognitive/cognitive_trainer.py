"""SFTTrainer for a model with cognitive modules: trains them beside LoRA, saves them in every checkpoint,
restores them on resume, and adds their auxiliary losses when the config weights them.

The modules are not a PEFT adapter, so PEFT neither trains nor saves them: after PEFT wraps the model they
are marked trainable again (the optimizer, built at train() time, picks them up), `save_model` writes
cognitive_adapter.safetensors + cognitive_config.json next to the PEFT adapter (for checkpoints the Trainer
calls it before trainer_state.json, so a complete checkpoint always has them), and `train(resume_from_
checkpoint=...)` loads them back before the optimizer state is restored.
"""

from __future__ import annotations

from trl import SFTTrainer

from cognitive.inject import (
    capture_aux_outputs,
    cognitive_aux_loss,
    load_cognitive_adapter,
    mark_cognitive_trainable,
    save_cognitive_adapter,
)

AUX_LABEL_KEYS = ("step_labels", "state_labels", "action_labels")


class CognitiveSFTTrainer(SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self.cognitive_config = base.cognitive_config
        mark_cognitive_trainable(self.model)

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
        with capture_aux_outputs(model) as aux:
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        aux_loss = cognitive_aux_loss(aux, self.cognitive_config, **labels)
        if aux_loss is not None:
            loss = loss + aux_loss
            self._metrics["train" if model.training else "eval"]["aux_loss"].append(aux_loss.detach().item())
        return (loss, outputs) if return_outputs else loss
