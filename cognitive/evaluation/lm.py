"""lm-eval's HF model, generating with cognitive.model.kv_cache.BufferedCache: the same tokens, less copying.

    lm_eval.simple_evaluate(model=MODEL_NAME, model_args={"pretrained": ...}, ...)   # after importing this module

`BufferedHFLM` is lm_eval's `HFLM` with one change: `generate()` gets a BufferedCache (keys and values appended
in place) instead of transformers' DynamicCache (a copy of the whole cache per generated token). The outputs are
bit-identical (tests/unit/test_kv_cache.py), so `lm_eval --model hf` with the same arguments (the command
`harness.lm_eval_command` prints) gives the same samples and scores, only slower: 1.17x at batch 16 and 768 new
tokens on 2 CPU cores (experiments/cpu_speed/README.md). Importing this module registers it with lm_eval as
MODEL_NAME.
"""

from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from cognitive.model.kv_cache import CACHE_ARG, cache_kwargs

MODEL_NAME = "cognitive-hf"


@register_model(MODEL_NAME)
class BufferedHFLM(HFLM):
    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        if not {"past_key_values", CACHE_ARG, "cache_implementation"} & set(generation_kwargs):
            generation_kwargs.update(cache_kwargs(self.model))
        return super()._model_generate(context, max_length, stop, **generation_kwargs)
