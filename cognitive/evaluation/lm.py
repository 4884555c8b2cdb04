"""lm-eval's HF model for the harness: lm_eval's `hf` with an in-place KV cache, refilled batches, packed weights.

    lm_eval.simple_evaluate(model=MODEL_NAME, model_args={"pretrained": ...}, ...)   # after importing this module

`BufferedHFLM` is lm_eval's `HFLM` with four changes:

1. generate() gets a BufferedCache (cognitive/model/kv_cache.py: keys and values appended in place) instead of
   transformers' DynamicCache, which copies the whole cache at every generated token. The tokens are the same.
2. Greedy batches generate in segments of `prune_every` new tokens. After each segment the rows whose answer is
   final leave the batch and the cache: a row that produced an end-of-sequence token, reached its token budget, or
   whose decoded text holds one of the request's stop sequences (lm_eval cuts every answer at the first one, so
   nothing after it is scored). transformers' generate() computes such rows until the whole batch stops, so one
   answer that runs to the token limit holds up its batch: in the plain suite 16 of 60 answers run to 768 tokens,
   while the average is 254.
3. Freed rows are refilled (`refill`). lm_eval hands over one batch at a time, each running as long as its longest
   answer, with fewer and fewer rows. Instead, `generate_until` hands each group of greedy requests over at once,
   and `_generate_refilling` generates `batch_size` rows of it at a time: once a quarter of the rows are free, the
   next waiting requests (the largest token budgets first, then lm_eval's order) are prefilled together and join
   the batch, both left-padded to one length (`kv_cache.stack_left_padded`; padding every row has is cut again,
   `drop_left`, which can leave a refilled batch with no padding).
   Requests whose settings differ only in their token budget (the cognitive suite's five tasks) form one group,
   each row held to its own budget.
4. A bf16 model on a CPU has its linear layers' weights packed for oneDNN once, instead of at every call
   (cognitive/model/packed_linear.py): the same outputs bit for bit, 1.7x faster projections at batch 16.

Each segment is lm_eval's own generate call (its stopping criteria, logits processors and padding) continued from
the cache. The answers are those of `lm_eval --model hf` (the command `harness.lm_eval_command` prints) except
  - where bf16 arithmetic rounds differently: on a CPU, torch's attention kernel can give a row other low bits when
    its batch-mates or its padding change (as lm_eval's own --batch_size does), and a near-tie then flips a token.
    A batch being emptied keeps at least MIN_ROWS rows and a left-padded row where it had one (`_keep`), which
    removes the two systematic cases measured (a one-row projection runs another kernel; a batch without padding
    runs attention without a mask). Measured on the 135M's three offline suites: docs/performance.md#evaluation.
  - where a refilled row emits a stop sequence that is a special token but not an end-of-sequence one: its answer
    ends there. lm_eval's stopping criteria see such a token but its answers skip it, so `hf` keeps generating that
    row until its whole batch stops and keeps the text after the token; that text depends on the batch-mates.
    Without refilling (`refill = False`), such a batch goes back to one generate call, as lm_eval runs it.
Sampling, beam search, a model whose generate() builds its own cache and a `think_end_token` (which looks past the
stop sequence) keep lm_eval's batches and one generate call per batch.
Importing this module registers the model with lm_eval as MODEL_NAME.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
import torch.nn.functional as F
from lm_eval.api.model import CacheHook
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from tqdm import tqdm

from cognitive.model.kv_cache import CACHE_ARG, buffered_cache, cache_kwargs, drop_left, stack_left_padded
from cognitive.model.packed_linear import pack_linear_weights

MODEL_NAME = "cognitive-hf"
MIN_ROWS = 2  # a generating batch never shrinks below this (BufferedHFLM._keep)
BUDGET_KEYS = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")  # lm_eval's names for it
TRIM_COLUMNS = 32  # left padding that every generating row has is cut from the batch once it is this long


@register_model(MODEL_NAME)
class BufferedHFLM(HFLM):
    prune_every = 32  # new tokens per segment: finished rows leave the batch after each (0: one generate call)
    pack_weights = True  # a bf16 model's linear weights packed for oneDNN on a CPU (change 4 above)
    refill = True  # rows freed in a greedy batch refilled from the requests waiting (change 3 above)
    _window = None  # while generate_until refills: the rows generated at a time (lm_eval's batch size)
    _budgets = None  # ... and {context tokens: the request's token budget} (_one_budget)
    _quiet = False  # ... and whether lm_eval's progress bars are off

    def __init__(self, *args, pack_weights: bool | None = None, refill: bool | None = None, **kwargs):
        """lm_eval's HFLM; `pack_weights` and `refill` (default: the class's): `--model_args ...,refill=False` keeps
        lm_eval's batches, `pack_weights=False` the weights as they are."""
        super().__init__(*args, **kwargs)
        self.refill = self.refill if refill is None else refill
        pack = self.pack_weights if pack_weights is None else pack_weights
        self.packed_layers = pack_linear_weights(self.model) if pack else 0

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm_eval's generate_until; where rows can be refilled (`_can_refill`), each group of requests with the same
        generation settings reaches `_model_generate` as one batch, which `_generate_refilling` generates
        `batch_size` rows at a time."""
        window = self.batch_size_per_gpu
        if not self._can_refill(requests, window):
            return super().generate_until(requests, disable_tqdm)
        shared, self._budgets = self._one_budget(requests)
        hook, self.cache_hook = self.cache_hook, CacheHook(None)  # lm_eval's would file answers under shared budgets
        self.batch_size_per_gpu, self._window, self._quiet = len(requests), window, disable_tqdm
        try:
            answers = super().generate_until(shared, disable_tqdm)
        finally:
            self.batch_size_per_gpu, self._window, self._budgets, self.cache_hook = window, None, None, hook
        for request, answer in zip(requests, answers, strict=True):
            hook.add_partial("generate_until", request.args, answer)
        return answers

    def _one_budget(self, requests):
        """Copies of the requests where those whose generation settings differ only in their token budget share one
        setting (the largest budget), so that lm_eval hands them over together; and {context tokens: the request's
        own budget}, which `_generate_refilling` holds each row to. A group keeps its settings where one of its
        contexts comes with two budgets (in any request) or would be cut shorter under the largest budget."""
        groups, own = defaultdict(list), defaultdict(set)  # own: context tokens -> budgets, over all requests
        for i, request in enumerate(requests):
            budget = normalize_gen_kwargs(dict(request.args[1]), self.max_gen_toks)["max_gen_toks"]
            rest = {k: v for k, v in request.args[1].items() if k not in BUDGET_KEYS}
            tokens = self._context_key(self.tok_encode(request.args[0]))
            own[tokens].add(budget)
            groups[repr(sorted(rest.items()))].append((i, rest, budget, tokens))
        shared, budgets = [copy.copy(request) for request in requests], {}
        for members in groups.values():
            top = max(budget for _, _, budget, _ in members)
            if any(len(own[tokens]) > 1 or len(tokens) + top > self.max_length for *_, tokens in members):
                continue
            for i, rest, budget, tokens in members:
                budgets[tokens] = budget
                shared[i].arguments = (requests[i].args[0], {**rest, "max_gen_toks": top})
        return shared, budgets

    def _context_key(self, tokens) -> tuple:
        """A context's tokens without a leading BOS (lm_eval decides about it per batch): the key of `_budgets`."""
        bos = self.tokenizer.bos_token_id
        return tuple(tokens[1:] if bos is not None and len(tokens) and tokens[0] == bos else tokens)

    def _can_refill(self, requests, window) -> bool:
        """Two or more greedy requests of a decoder-only model with an in-place cache, and a batch size of 2 or more."""
        if not (self.refill and self.prune_every > 0 and isinstance(window, int) and window > 1 < len(requests)):
            return False
        if self.think_end_token is not None or self.backend != "causal" or buffered_cache(self.model) is None:
            return False
        for request in requests:
            kwargs = normalize_gen_kwargs(dict(request.args[1]), self.max_gen_toks)
            own_cache = {"past_key_values", CACHE_ARG, "cache_implementation"} & set(kwargs)
            if kwargs["do_sample"] or kwargs.get("num_beams", 1) != 1 or own_cache or "max_length" in kwargs:
                return False
        return True

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
        if self._window is not None:  # a whole group of greedy requests (generate_until)
            return self._generate_refilling(context, max_length, stop, generation_kwargs)
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
        eos = self._eos_ids(generation_kwargs, device)
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

    def _generate_refilling(self, context, max_length: int, stop: list[str], generation_kwargs: dict):
        """Greedy generation of every row of `context`, `self._window` rows at a time, the largest token budgets
        first: rows whose answer is final leave after each segment of `prune_every` tokens, and once a quarter of
        the rows are free, the next waiting rows are prefilled together and join the batch (both left-padded to one
        length). Each row gets at most its request's token budget (`_one_budget`; else max_length - context width,
        as in lm_eval's batches)."""
        total, width = context.shape
        device, pad = context.device, self.tokenizer.pad_token_id
        masks = generation_kwargs.pop("attention_mask", None)
        masks = torch.ones_like(context) if masks is None else masks
        unpadded = [self._context_key(row[keep.bool()].tolist()) for row, keep in zip(context, masks, strict=True)]
        budgets = [(self._budgets or {}).get(tokens, max_length - width) for tokens in unpadded]  # _one_budget
        eos = self._eos_ids(generation_kwargs, device)
        stops = [s for s in stop if s]
        tokens = [[] for _ in range(total)]  # per request: the tokens generated so far
        final = torch.zeros(total, dtype=torch.bool, device=device)  # per request: its answer is complete
        ended = torch.zeros(total, dtype=torch.bool, device=device)  # per request: an end-of-sequence token
        # the largest budgets first (then lm_eval's order): the rows that may run longest start early
        waiting = sorted(range(total), key=lambda row: -budgets[row])
        batch = None  # (rows, ids, mask, cache) of the generating rows
        bar = tqdm(total=total, desc="Generating (finished rows refilled)", disable=self._quiet or self.rank != 0)
        while waiting or batch is not None:
            open_rows = 0 if batch is None else int((~final[batch[0]]).sum())
            if waiting and self._window - open_rows >= max(1, self._window // 4):
                take, waiting = waiting[: self._window - open_rows], waiting[self._window - open_rows :]
                joining = self._prefill(context[take], masks[take], stop, generation_kwargs)
                joining = (torch.tensor(take, device=device), *joining)
                self._record(joining, 1, tokens, final, ended, eos, stops, budgets)
                batch = joining if batch is None else self._join(batch, joining, final)
            else:
                rows, ids, mask, cache = batch
                step = min([self.prune_every] + [budgets[r] - len(tokens[r]) for r in rows[~final[rows]].tolist()])
                before = ids.shape[1]
                ids = super()._model_generate(
                    ids, before + step, stop, attention_mask=mask, **{CACHE_ARG: cache}, **dict(generation_kwargs)
                )
                mask = torch.cat([mask, mask.new_ones(len(rows), ids.shape[1] - before)], dim=1)
                batch = (rows, ids, mask, cache)
                self._record(batch, ids.shape[1] - before, tokens, final, ended, eos, stops, budgets)
            bar.update(int(final.sum()) - bar.n)
            batch = self._shrink(batch, final, ended, refilling=bool(waiting))
        bar.close()
        out = torch.full((total, width + max(map(len, tokens))), pad, dtype=context.dtype, device=device)
        out[:, :width] = context
        for row, generated in enumerate(tokens):
            out[row, width : width + len(generated)] = torch.tensor(generated, dtype=context.dtype)
        return out

    def _eos_ids(self, generation_kwargs: dict, device) -> torch.Tensor:
        eos = generation_kwargs.get("eos_token_id", self.model.generation_config.eos_token_id)
        return torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), device=device).long()

    def _prefill(self, context, mask, stop: list[str], generation_kwargs: dict):
        """Waiting rows, without the left padding all of them have, prefilled with a fresh cache and one new token
        each: (ids, mask, cache), the cache holding every token but the new one."""
        lead = int(mask.any(dim=0).int().argmax())
        context, mask = context[:, lead:], mask[:, lead:]
        cache = buffered_cache(self.model)
        kwargs = {"attention_mask": mask, CACHE_ARG: cache, **generation_kwargs}
        ids = super()._model_generate(context, context.shape[1] + 1, stop, **kwargs)
        return ids, torch.cat([mask, mask.new_ones(len(mask), ids.shape[1] - mask.shape[1])], dim=1), cache

    def _record(self, batch, new: int, tokens, final, ended, eos, stops: list[str], budgets: list[int]) -> None:
        """Append each open row's `new` last tokens to its answer; mark the rows whose answer is now final: an
        end-of-sequence token, the token budget, or a stop sequence in the answer's text (lm_eval cuts it there).
        A stop sequence that is a special token (which the answer's text skips) ends the answer before it."""
        rows, ids = batch[0], batch[1]
        eos = set(eos.tolist())
        for i, row in enumerate(rows.tolist()):
            if final[row] or not new:
                continue
            tokens[row].extend(ids[i, -new:].tolist())
            if eos & set(tokens[row][-new:]):
                ended[row] = final[row] = True
            elif any(s in self.tok_decode(tokens[row]) for s in stops):
                final[row] = True
            elif self._has_stop(tokens[row], stops):
                cut = next(j for j in range(1, len(tokens[row]) + 1) if self._has_stop(tokens[row][:j], stops))
                tokens[row][:] = tokens[row][:cut]
                final[row] = True
            elif len(tokens[row]) >= budgets[row]:
                final[row] = True

    def _has_stop(self, tokens: list[int], stops: list[str]) -> bool:
        """Whether the tokens decoded with special tokens (as lm_eval's stopping criteria see them) hold a stop."""
        return any(s in self.tokenizer.decode(tokens) for s in stops)

    def _join(self, batch, joining, final):
        """The generating batch without its finished rows, and the joining rows after it: both left-padded to one
        length (ids with the pad token, masks with 0, caches with zeros)."""
        rows, ids, mask, cache = batch
        open_ = (~final[rows]).nonzero().squeeze(1)
        if len(open_) == 0:
            return joining
        length = max(ids.shape[1], joining[1].shape[1])
        pad = self.tokenizer.pad_token_id
        parts = [(rows[open_], ids[open_], mask[open_]), joining[:3]]
        cache.batch_select_indices(open_)
        merged = stack_left_padded([cache, joining[3]], length - 1)
        left = [length - part[1].shape[1] for part in parts]
        ids = torch.cat([F.pad(part[1], (n, 0), value=pad) for part, n in zip(parts, left, strict=True)])
        mask = torch.cat([F.pad(part[2], (n, 0), value=0) for part, n in zip(parts, left, strict=True)])
        return torch.cat([parts[0][0], parts[1][0]]), ids, mask, merged

    def _shrink(self, batch, final, ended, refilling: bool):
        """The batch for the next segment: None when no answer is open; else without its finished rows (while rows
        wait to join; after that as `_keep` says), and without the left padding all of its rows have."""
        rows, ids, mask, cache = batch
        if bool(final[rows].all()):
            return None
        if refilling:
            keep = (~final[rows]).nonzero().squeeze(1)
        else:
            padded = torch.zeros_like(final)
            padded[rows] = (mask == 0).any(dim=1)
            keep = self._keep(rows, final, padded, ended)
        if len(keep) < len(rows):
            cache.batch_select_indices(keep)
            rows, ids, mask = rows[keep], ids[keep], mask[keep]
        lead = int(mask.any(dim=0).int().argmax())  # columns of left padding every row has
        if lead >= TRIM_COLUMNS:
            ids, mask, cache = ids[:, lead:], mask[:, lead:], drop_left(cache, lead)
        return rows, ids, mask, cache

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
