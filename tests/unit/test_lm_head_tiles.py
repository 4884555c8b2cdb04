"""The CPU tile size of TRL's fused LM head (cognitive.train.trainer.use_cpu_lm_head_tiles) changes memory and
speed, not numbers: log-probabilities and gradients equal TRL's default tiles and the full-logit reference."""

from __future__ import annotations

import pytest
import torch

trl_kernel = pytest.importorskip("trl.kernels.chunked_logprob")
import trl.trainer.utils as trl_utils  # noqa: E402

from cognitive.model.memory import CPU_LOGIT_TILE  # noqa: E402
from cognitive.train.trainer import use_cpu_lm_head_tiles  # noqa: E402

TOL = 1e-4  # fp32: tiles only change the order of the logsumexp's partial sums


@pytest.fixture
def restore_tiles():
    saved = trl_kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    yield
    trl_kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = saved


def _logprobs_and_grads(tokens: int, vocab: int):
    torch.manual_seed(0)
    hidden = torch.randn(tokens, 16, requires_grad=True)
    weight = torch.randn(vocab, 16, requires_grad=True)
    targets = torch.randint(0, vocab, (tokens,))
    out = trl_kernel.ChunkedLogProbFunction.apply(
        hidden, weight, None, targets, 1.0, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    )
    logprob = out[0]
    logprob.sum().backward()
    return logprob.detach(), hidden.grad, weight.grad, hidden, weight, targets


def test_cpu_tiles_give_the_same_logprobs_and_gradients(restore_tiles):
    tokens, vocab = 3 * CPU_LOGIT_TILE[0] + 7, 2 * CPU_LOGIT_TILE[1] + 5  # several tiles, ragged last ones
    default = _logprobs_and_grads(tokens, vocab)
    assert use_cpu_lm_head_tiles()
    assert (trl_kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE) == CPU_LOGIT_TILE
    tiled = _logprobs_and_grads(tokens, vocab)
    for a, b in zip(default[:3], tiled[:3]):
        assert (a - b).abs().max().item() <= TOL
    # and both are the full-logit log-softmax
    _, _, _, hidden, weight, targets = tiled
    reference = torch.log_softmax(hidden.detach() @ weight.detach().T, -1).gather(1, targets[:, None])[:, 0]
    assert (tiled[0] - reference).abs().max().item() <= TOL


def test_missing_trl_constants_warn_and_change_nothing(restore_tiles, monkeypatch):
    monkeypatch.setattr(trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", 12345)  # whatever earlier tests in this process set
    monkeypatch.delattr(trl_kernel, "TOKEN_CHUNK_SIZE")
    with pytest.warns(UserWarning, match="no fused-LM-head tile constants"):
        assert use_cpu_lm_head_tiles() is False
    assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == 12345
