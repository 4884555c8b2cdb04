"""lm-eval's HF model for the harness: lm_eval's `hf` that generates with an in-place KV cache and drops finished rows.

    lm_eval.simple_evaluate(model=MODEL_NAME, model_args={"pretrained": ...}, ...)   # after importing this module

`BufferedHFLM` is lm_eval's `HFLM` with two changes to `_model_generate`:

1. generate() gets a BufferedCache (cognitive/model/kv_cache.py: keys and values appended in place) instead of
   transformers' DynamicCache, which copies the whole cache at every generated token. The tokens are the same.
2. Greedy batches generate in segments of `prune_every` new tokens. After each segment the rows whose answer is
   final leave the batch and the cache: a row that produced an end-of-sequence token, or whose decoded text holds one
   of the request's stop sequences (lm_eval cuts every answer at the first one, so nothing after it is scored).
   transformers' generate() computes such rows until the whole batch stops, so one answer that runs to the token
   limit holds up its batch: in the plain suite 16 of 60 answers run to 768 tokens, while the average is 254.

Each segment is lm_eval's own generate call (its stopping criteria, logits processors and padding) continued from
the cache. The answers are those of `lm_eval --model hf` (the command `harness.lm_eval_command` prints) except where
bf16 arithmetic over the smaller batch rounds differently: on a CPU, torch's attention kernel can give a row other
low bits when its batch-mates change (as lm_eval's own --batch_size does), and a near-tie then flips a token. A batch
keeps at least MIN_ROWS rows and a left-padded row where it had one (`_keep`), which removes the two systematic
cases measured (a one-row projection runs another kernel; a batch without padding runs attention without a mask).
Measured on the 135M's three offline suites: 1 of 310 answers differs (one that ran to its token limit; every
headline the same), in 0.83x the time (docs/performance.md). Sampling, beam search, a model whose generate() builds
its own cache and a `think_end_token` (which looks past the stop sequence) keep one generate call per batch; a batch
where a row emits a stop sequence that is a special token (lm_eval's criteria see it, its answers do not) goes back
to one call when that happens.
Importing this module registers the model with lm_eval as MODEL_NAME.
"""

from __future__ import annotations

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from cognitive.model.kv_cache import CACHE_ARG, buffered_cache, cache_kwargs

MODEL_NAME = "cognitive-hf"
MIN_ROWS = 2  # a generating batch never shrinks below this (BufferedHFLM._keep)


@register_model(MODEL_NAME)
class BufferedHFLM(HFLM):
    prune_every = 32  # new tokens per segment: finished rows leave the batch after each (0: one generate call)

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        own_cache = {"past_key_values", CACHE_ARG, "cache_implementation"} & set(generation_kwargs)
        if own_cache:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        cache = buffered_cache(self.model)
        if cache is None or not self._can_prune(context, generation_kwargs):
            return super()._model_generate(context, max_length, stop, **generation_kwargs, **cache_kwargs(self.model))
        return self._generate_pruning(context, max_length, stop, cache, generation_kwargs)

    def _can_prune(self, context, generation_kwargs: dict) -> bool:
        """Greedy decoding of a decoder-only batch of several rows, with no thinking marker to look for."""
        greedy = not generation_kwargs.get("do_sample") and generation_kwargs.get("num_beams", 1) == 1
        plain = self.think_end_token is None and self.backend == "causal"
        return self.prune_every > 0 and greedy and context.shape[0] > 1 and plain

    def _generate_pruning(self, context, max_length: int, stop: list[str], cache, generation_kwargs: dict):
        batch, start = context.shape
        device = context.device
        mask = generation_kwargs.pop("attention_mask", None)
        mask = first_mask = torch.ones_like(context) if mask is None else mask
        eos = generation_kwargs.get("eos_token_id", self.model.generation_config.eos_token_id)
        eos = torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), device=device).long()
        stops = [s for s in stop if s]
        padded = (mask == 0).any(dim=1)  # per row of the batch: left padding in its context
        final = torch.zeros(batch, dtype=torch.bool, device=device)  # per row: its answer is complete
        ended = torch.zeros(batch, dtype=torch.bool, device=device)  # per row: it produced an end-of-sequence token
        out = torch.full((batch, max_length), self.tokenizer.pad_token_id, dtype=context.dtype, device=device)
        rows, ids = torch.arange(batch, device=device), context  # the rows being generated, and their tokens
        while True:
            ids = super()._model_generate(
                ids,
                min(max_length, ids.shape[1] + self.prune_every),
                stop,
                attention_mask=mask,
                **{CACHE_ARG: cache},
                **dict(generation_kwargs),  # lm_eval's _model_generate edits its kwargs
            )
            mask = torch.cat([mask, mask.new_ones(len(rows), ids.shape[1] - mask.shape[1])], dim=1)
            open_ = ~final[rows]  # rows whose answer was still open: the others ride along (_keep)
            out[rows[open_], : ids.shape[1]] = ids[open_]
            new = ids[:, start:]
            ended[rows] |= open_ & torch.isin(new, eos).any(dim=1)
            final[rows] |= ended[rows]
            if stops:
                rows_new = [row if still else [] for row, still in zip(new.tolist(), open_.tolist())]
                answers = [self.tok_decode(row) for row in rows_new]  # what lm_eval cuts at the first stop
                final[rows] |= torch.tensor([any(s in a for s in stops) for a in answers], device=device)
                # A stop sequence that is a special token (not an end-of-sequence one) ends a row for lm_eval's
                # stopping criteria, which decode special tokens, but never appears in the answer, which does not:
                # that answer runs on until the whole batch stops, and segments cannot tell when. Start over in
                # one call, as lm_eval does.
                ended_by_special = [
                    bool(row) and not done and any(s in self.tokenizer.decode(row) for s in stops)
                    for row, done in zip(rows_new, final[rows].tolist())
                ]
                if any(ended_by_special):
                    kwargs = {**generation_kwargs, "attention_mask": first_mask, **cache_kwargs(self.model)}
                    return super()._model_generate(context, max_length, stop, **kwargs)
            if ids.shape[1] >= max_length or bool(final.all()):
                return out[:, : ids.shape[1]]
            keep = self._keep(rows, final, padded, ended)
            if len(keep) < len(rows):  # the cache holds every token but the last, which the next segment feeds
                cache.batch_select_indices(keep)
                rows, ids, mask = rows[keep], ids[keep], mask[keep]

    @staticmethod
    def _keep(rows, final, padded, ended):
        """Which of the generating rows (positions in `rows`) go on: the open ones, plus finished ones riding along
        where that keeps every open row's arithmetic as in the full batch. Measured on 2 CPU cores: a bf16
        projection of one row runs another kernel than the same row among others (different rounding), and a batch
        without left padding runs attention without a mask. So a batch keeps two rows at least, and a padded row if
        it had one (experiments/cpu_speed/README.md)."""
        open_ = ~final[rows]
        keep = open_.nonzero().squeeze(1).tolist()
        # riders: finished rows, those without an end-of-sequence token (no pad tokens fed back) and padded first
        riders = (~open_).nonzero().squeeze(1).tolist()
        riders.sort(key=lambda i: (bool(ended[rows[i]]), not padded[rows[i]]))
        while len(keep) < min(MIN_ROWS, len(rows)):
            keep.append(riders.pop(0))
        if padded[rows].any() and not padded[rows[keep]].any():
            keep.append(next(i for i in riders if padded[rows[i]]))
        return torch.tensor(sorted(keep), device=rows.device)
