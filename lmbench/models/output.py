"""The output layer every neural family shares: full softmax (optionally tied to the embedding) or adaptive
softmax (Grave et al. 2017), with ``<s>`` masked out (it is context only, never predicted).

On a CPU the full softmax's loss and gradients come from :class:`LinearCrossEntropy`, which computes them in
the forward pass with as few elementwise passes over the (|V|, N) exponentials as it can: two (see
:func:`fused_linear_cross_entropy`); scoring walks the vocabulary in blocks whose logits stay in the
processor's cache (see ``_softmax_blocks``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmbench.errors import ConfigError

ROW_BLOCK = 1024  # hidden states (tokens) per pass of the fused loss: bounds its scratch at |V| x 1024 floats
VOCAB_BLOCK = 1024  # weight rows per block: a 1024 x N block of logits fits the L2/L3 cache for N <= 1024
SCORE_BLOCK = 2048  # tokens per block when scoring targets without gradients
OutputKind = Literal["full", "adaptive"]  # the families' ``output`` setting


def _softmax_blocks(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    masked_id: int,
    scratch: torch.Tensor,
    keep: bool,
    vocab_block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transposed logits ``weight @ h.T + bias`` (|V|, N), one block of vocabulary rows at a time, each block
    exponentiated in place against its own column maxima ("online softmax", Milakov & Gimelshein 2018).

    Returns the per-block maxima and sums, (blocks, N) each: the softmax of column n is block b's entries
    times exp(max[b, n] - M[n]) / Z[n], with M the maximum over blocks and Z the rescaled total. With ``keep``
    the exponentiated blocks are left in ``scratch`` (|V|, N) for the gradient pass; otherwise ``scratch``
    only holds one block. Why blocks: each (block, N) product with K = hidden size leaves an output that fits
    the cache, so the softmax's elementwise passes over it stay there, where the one (N, |V|) product's output,
    far larger than the cache, makes every later pass a trip to memory. How much that gains depends on the
    processor and the BLAS: ``benchmarks/neural_throughput.py`` measures it on the machine at hand.

    Mixed precision: with bfloat16 ``h``, ``weight``, ``bias`` and ``scratch`` the blocks and their
    exponentials are bfloat16 (half the memory traffic; PyTorch computes each element in float32), while the
    maxima and sums, and so each token's normaliser, are float32.
    """
    V, n = weight.shape[0], h.shape[0]
    blocks = -(-V // vocab_block)
    maxima = h.new_empty(blocks, n, dtype=torch.float32 if h.dtype != torch.float64 else h.dtype)
    sums = torch.empty_like(maxima)
    h_t = h.t()
    for i, start in enumerate(range(0, V, vocab_block)):
        stop = min(start + vocab_block, V)
        block = scratch[start:stop] if keep else scratch[: stop - start]
        torch.addmm(bias[start:stop, None], weight[start:stop], h_t, out=block)
        if start <= masked_id < stop:
            block[masked_id - start] = float("-inf")
        # a block made only of masked rows would give -inf - -inf = nan; the floor keeps it at exp() = 0
        token_max = torch.amax(block, dim=0).clamp_min_(torch.finfo(block.dtype).min)
        maxima[i] = token_max
        block.sub_(token_max).exp_()
        sums[i] = torch.sum(block, dim=0, dtype=sums.dtype)
    return maxima, sums


def _combine_blocks(maxima: torch.Tensor, sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From per-block maxima and sums: each token's log-normaliser (float64) and the per-block factors
    exp(max_b - M) / Z that turn a block's stored exponentials into probabilities."""
    top = maxima.amax(dim=0)
    scale = (maxima - top).exp_()
    total = (sums * scale).sum(dim=0)
    log_normaliser = top.double() + total.double().log()
    return log_normaliser, scale.div_(total)


def target_logits(h: torch.Tensor, target_weights: torch.Tensor, target_bias: torch.Tensor) -> torch.Tensor:
    """The logit of each row's target from that target's weight row and bias alone (float64)."""
    return ((target_weights * h).sum(dim=1) + target_bias).double()


def scratch_buffer(scratch: torch.Tensor | None, numel: int, like: torch.Tensor) -> torch.Tensor:
    """``scratch`` if it holds ``numel`` elements of ``like``'s dtype and device, else a new buffer."""
    if (
        scratch is None
        or scratch.numel() < numel
        or scratch.dtype != like.dtype
        or scratch.device != like.device
    ):
        return like.new_empty(numel)
    return scratch


SHIFT_LIMIT = math.exp(50.0)  # a block whose exponentials against the shared shift pass this is redone alone
PARTIAL_ROWS = 32  # bfloat16 exponentials summed in groups this size, the group sums then added in float32


def _column_sums(block: torch.Tensor) -> torch.Tensor:
    """Float32 sums of ``block``'s columns. A float32 block is summed directly; a bfloat16 one in groups of
    ``PARTIAL_ROWS`` rows (each group sum accumulated in float32 and rounded once to bfloat16: a relative
    error near 1e-4 in the total, below that of the stored exponentials themselves), whose sums are then added
    in float32. Why: PyTorch's bfloat16-to-float32 summing reduction is ~10x slower than its bfloat16 one."""
    if block.dtype != torch.bfloat16:
        return block.sum(dim=0, dtype=torch.float32 if block.dtype != torch.float64 else block.dtype)
    grouped = len(block) // PARTIAL_ROWS * PARTIAL_ROWS
    sums = block[:grouped].view(PARTIAL_ROWS, -1, block.shape[1]).sum(dim=0).sum(dim=0, dtype=torch.float32)
    if grouped < len(block):
        sums += block[grouped:].sum(dim=0, dtype=torch.float32)
    return sums


def _shifted_logits(
    w_aug: torch.Tensor, h_aug: torch.Tensor, out: torch.Tensor, start: int, vocab_block: int, masked_id: int
) -> torch.Tensor:
    """Rows ``start:start + vocab_block`` of ``[W | b | 1] @ [h | 1 | -shift].T`` (logits minus each token's
    shift) written into the same rows of ``out``, the masked row at -inf."""
    block = torch.mm(w_aug[start : start + vocab_block], h_aug.t(), out=out[start : start + vocab_block])
    if start <= masked_id < start + len(block):
        block[masked_id - start] = float("-inf")
    return block


def _scaled_operand(h: torch.Tensor, factor: torch.Tensor, dtype: torch.dtype, width: int) -> torch.Tensor:
    """``[factor * h | factor | 0]`` (``width`` columns): with the exponentials P of a block, ``P @ this`` is
    that block's softmax times ``h`` (grad_W's rows) beside its row sums (grad_b), in one product."""
    H = h.shape[1]
    out = h.new_zeros(len(h), width, dtype=dtype)
    torch.mul(h, factor[:, None], out=out[:, :H]) if dtype == h.dtype else out[:, :H].copy_(
        h * factor[:, None]
    )
    out[:, H] = factor
    return out


def fused_linear_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    masked_id: int,
    scratch: torch.Tensor | None = None,
    *,
    row_block: int = ROW_BLOCK,
    vocab_block: int = VOCAB_BLOCK,
    matmul_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of ``softmax(h @ weight.T + bias)`` (``masked_id`` excluded) and its gradients
    with respect to ``h``, ``weight`` and ``bias``, in two passes over the vocabulary per block of rows.

    The gradient of the loss with respect to the logits is softmax - onehot. The softmax part is multiplied
    block by block into the gradients; the onehot part is a gather / index_add. ``scratch`` (at least
    |V| x min(N, row_block) elements, reused between calls to spare the page faults of a fresh 100 MB
    allocation per step) holds the exponentials.

    Every elementwise pass over a (block, N) array costs memory traffic, so the kernel keeps two (an
    exponential and a sum) and folds the rest into its matrix products, with augmented matrices: the shift
    inside the logits' product (:func:`_normalisers`), the softmax's factor inside the gradients' products
    (:func:`_softmax_gradients`). With bfloat16 products this makes the layer ~2x faster than in float32 (``benchmarks/precision_throughput.py``);
    before, the elementwise passes over bfloat16 arrays (slower than float32 ones in PyTorch's CPU kernels)
    ate most of the products' gain.

    ``matmul_dtype`` (bfloat16 under mixed precision) is the type of the three matrix products and of the
    stored exponentials; the normalisers, the loss and every gradient returned stay in ``h``'s float32.
    """
    V, H = weight.shape
    n = h.shape[0]
    low = matmul_dtype or h.dtype
    w_aug = _augmented_weight(weight, bias, low)
    width = w_aug.shape[1]
    scratch = scratch_buffer(scratch, V * min(n, row_block), w_aug)
    grad_h = torch.empty_like(h)
    grad_w = torch.empty_like(weight)
    grad_b = torch.empty_like(bias)
    loss = torch.zeros((), dtype=torch.float64, device=h.device)
    loss_dtype = torch.float64 if h.dtype == torch.float64 else torch.float32  # the maxima's and sums' type
    starts = range(0, V, vocab_block)
    for r0 in range(0, n, row_block):
        hr, tr = h[r0 : r0 + row_block], targets[r0 : r0 + row_block]
        rows = len(hr)
        h_aug = hr.new_zeros(rows, width, dtype=low)
        h_aug[:, :H], h_aug[:, H] = hr, 1.0
        probs = scratch[: V * rows].view(V, rows)

        log_normaliser, scale, alone = _normalisers(w_aug, h_aug, probs, H, starts, vocab_block, masked_id,
                                                    loss_dtype)  # fmt: skip
        target_weights = weight[tr]
        loss += (log_normaliser - target_logits(hr, target_weights, bias[tr])).sum()
        grads, softmax_h = _softmax_gradients(probs, hr, w_aug, scale, alone, starts, vocab_block)
        torch.sub(softmax_h, target_weights, out=grad_h[r0 : r0 + row_block])
        _add_weight_gradients(grad_w, grad_b, grads, hr, tr, first=r0 == 0)
    return loss, grad_h, grad_w, grad_b


def _augmented_weight(weight: torch.Tensor, bias: torch.Tensor, low: torch.dtype) -> torch.Tensor:
    """``[W | b | 1 | 0]`` in ``low``: its product with ``[h | 1 | -shift | 0]`` is each token's logits minus
    its shift (the zero columns pad rows to a multiple of 16 elements, where oneDNN's bfloat16 kernels run
    fastest)."""
    V, H = weight.shape
    width = -(-(H + 2) // 16) * 16
    w_aug = weight.new_zeros(V, width, dtype=low)
    w_aug[:, :H], w_aug[:, H], w_aug[:, H + 1] = weight, bias, 1.0
    return w_aug


def _add_weight_gradients(
    grad_w: torch.Tensor,
    grad_b: torch.Tensor,
    grads: torch.Tensor,
    hr: torch.Tensor,
    tr: torch.Tensor,
    *,
    first: bool,
) -> None:
    """Add one block of rows' gradients to ``grad_w`` and ``grad_b`` (written, not added, for the ``first``):
    the softmax part ``grads`` = ``[grad_W | grad_b]``, then the onehot part, an index_add of -h and -1."""
    H = grad_w.shape[1]
    if first:
        grad_w.copy_(grads[:, :H])
        grad_b.copy_(grads[:, H])
    else:
        grad_w += grads[:, :H]
        grad_b += grads[:, H]
    grad_w.index_add_(0, tr, hr, alpha=-1.0)
    grad_b.index_add_(0, tr, torch.ones_like(tr, dtype=grad_b.dtype), alpha=-1.0)


def _normalisers(
    w_aug: torch.Tensor,
    h_aug: torch.Tensor,
    probs: torch.Tensor,
    H: int,
    starts: range,
    vocab_block: int,
    masked_id: int,
    loss_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, set[int]]:
    """The first pass over the vocabulary for one block of rows: the exponentials into ``probs``, each token's
    log normaliser and per-block softmax factors (:func:`_combine_blocks`), and the blocks redone alone.

    One shift per token, its largest logit among the first block's words (the most frequent ones), goes into
    ``h_aug``'s shift column and so is subtracted inside the logits' product: ``[W | b | 1] @ [h | 1 | -shift].T``
    = logits - shift (more exact in bfloat16 than rounding the logits first). A block whose exponentials pass
    ``SHIFT_LIMIT`` (a logit far above the shift) is redone against its own per-token maxima, so nothing
    overflows."""
    first = _shifted_logits(w_aug, h_aug, probs, 0, vocab_block, masked_id)
    shift = torch.amax(first, dim=0).clamp_min_(torch.finfo(w_aug.dtype).min / 2)
    h_aug[:, H + 1] = -shift
    maxima = shift.to(loss_dtype).repeat(len(starts), 1)
    sums = torch.empty_like(maxima)
    alone = set()  # blocks redone against their own maxima
    for i, start in enumerate(starts):
        sums[i] = _column_sums(_shifted_logits(w_aug, h_aug, probs, start, vocab_block, masked_id).exp_())
        if not bool((sums[i] <= SHIFT_LIMIT).all()):  # an overflow (or a NaN): redo this block alone
            block = _shifted_logits(w_aug, h_aug, probs, start, vocab_block, masked_id)
            own = torch.maximum(torch.amax(block, dim=0) + shift, shift)
            h_own = h_aug.clone()
            h_own[:, H + 1] = -own
            sums[i] = _column_sums(_shifted_logits(w_aug, h_own, probs, start, vocab_block, masked_id).exp_())
            maxima[i] = own
            alone.add(i)
    log_normaliser, scale = _combine_blocks(maxima, sums)
    return log_normaliser, scale, alone


def _softmax_gradients(
    probs: torch.Tensor,
    hr: torch.Tensor,
    w_aug: torch.Tensor,
    scale: torch.Tensor,
    alone: set[int],
    starts: range,
    vocab_block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax part of one block of rows' gradients from the exponentials ``probs``:
    ``[grad_W | grad_b] = sum_b P_b @ [s_b h | s_b]`` and ``grad_h = sum_b s_b * (P_b.T @ W_b)``.

    The softmax's per-token factor s = exp(shift - M) / Z goes into the other operand instead of the (|V|, N)
    exponentials P: grad_W and grad_b are ``P @ [s * h | s]``, one product over the whole vocabulary, and
    grad_h is ``s * (P.T @ W)`` (per block where a block has its own maxima)."""
    low, width = w_aug.dtype, w_aug.shape[1]
    H = hr.shape[1]
    if alone:  # rare: the blocks redone against their own maxima have factors of their own
        grads = w_aug.new_empty(w_aug.shape[0], width)
        softmax_h = torch.zeros_like(hr)
        for i, start in enumerate(starts):
            p = probs[start : start + vocab_block]
            torch.mm(p, _scaled_operand(hr, scale[i], low, width), out=grads[start : start + vocab_block])
            softmax_h.addcmul_(torch.mm(p.t(), w_aug[start : start + vocab_block, :H]), scale[i][:, None])
    else:  # one shift, one factor: each product over the whole vocabulary at once, one rounding each
        grads = torch.mm(probs, _scaled_operand(hr, scale[0], low, width))
        softmax_h = torch.mm(probs.t(), w_aug[:, :H]).to(hr.dtype).mul_(scale[0][:, None])
    return grads, softmax_h


class LinearCrossEntropy(torch.autograd.Function):
    """Autograd wrapper of :func:`fused_linear_cross_entropy`: the gradients are computed in the forward pass
    (the idea of fused "linear cross-entropy" kernels) and only scaled in the backward pass."""

    @staticmethod
    def forward(ctx, h, weight, bias, targets, masked_id: int, scratch, matmul_dtype=None):  # noqa: ANN001
        loss, grad_h, grad_w, grad_b = fused_linear_cross_entropy(
            h, weight, bias, targets, masked_id, scratch, matmul_dtype=matmul_dtype
        )
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return loss.to(h.dtype)

    @staticmethod
    def backward(ctx, grad_loss):  # noqa: ANN001
        grad_h, grad_w, grad_b = ctx.saved_tensors
        # in place: these tensors are this call's own, and become the parameters' .grad without a copy
        return grad_h.mul_(grad_loss), grad_w.mul_(grad_loss), grad_b.mul_(grad_loss), None, None, None, None


class OutputLayer(nn.Module):
    """Full softmax (optionally tied to the embedding) or adaptive softmax (Grave et al. 2017)."""

    def __init__(
        self, hidden: int, vocab_size: int, kind: str, bos_id: int, cutoffs: Sequence[int] | None = None
    ):
        super().__init__()
        self.kind, self.bos_id, self.vocab_size = kind, bos_id, vocab_size
        self._scratch: torch.Tensor | None = None  # the fused loss's reusable buffer (not model state)
        if kind == "full":
            self.linear = nn.Linear(hidden, vocab_size)
        elif kind == "adaptive":
            cutoffs = list(cutoffs or default_cutoffs(vocab_size))
            if cutoffs[0] <= 2 or cutoffs != sorted(set(cutoffs)) or cutoffs[-1] >= vocab_size:
                raise ConfigError(
                    f"cutoffs: expected increasing ids between 3 and |V| - 1 = {vocab_size - 1}, got {cutoffs}"
                )
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab_size, cutoffs, div_value=4.0)
        else:
            raise ConfigError(f"output: expected 'full' or 'adaptive', got {kind!r}")

    def matmul_params(self, token_counts) -> float:
        """Multiply-adds per token in this layer: the full matrix, or the adaptive head plus each tail
        cluster weighted by the share of tokens (``token_counts``, indexed by id) that fall in it."""
        if self.kind == "full":
            return float(self.linear.weight.numel())
        a = self.adaptive
        total = float(sum(c for c in token_counts)) or 1.0
        cost = float(a.head.weight.numel())
        for i, tail in enumerate(a.tail):
            share = float(sum(token_counts[a.cutoffs[i] : a.cutoffs[i + 1]])) / total
            cost += share * sum(layer.weight.numel() for layer in tail)
        return cost

    def release_scratch(self) -> None:
        """Free the fused loss's buffer (|V| x 1024 floats) once training is over."""
        self._scratch = None

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """(N, H) -> (N, V) normalised log-probabilities in float64 (rows sum to 1 within 1e-12), <s> at -inf."""
        if self.kind == "full":
            logits = self.linear(h).double()
            logits[:, self.bos_id] = float("-inf")
            return F.log_softmax(logits, dim=-1)
        logp = self.adaptive.log_prob(h).double()
        logp[:, self.bos_id] = float("-inf")
        return logp - torch.logsumexp(logp, dim=-1, keepdim=True)  # renormalise without <s>

    def loss_sum(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of ``targets`` (N,) given hidden states (N, H), in float32.

        This is the precision boundary of mixed-precision training: under autocast the matrix products
        run in the autocast type, but every log-softmax and the loss are float32 (autocast on a CPU would
        leave a bfloat16 log-softmax in bfloat16, and ``nn.AdaptiveLogSoftmaxWithLoss`` fails under it).
        """
        low = _autocast_dtype(h.device)
        if low is not None:
            h = h.float()
        if self.kind == "adaptive":
            if low is None:
                return -self.adaptive(h, targets).output.sum()
            return -_adaptive_target_log_probs(self.adaptive, h, targets).sum()
        # <s> is never a target; masking its logit keeps training and scoring the same distribution
        if torch.is_grad_enabled() and h.device.type == "cpu":
            like = h if low is None else h.new_empty(0, dtype=low)  # the kernel's exponentials: low's type
            self._scratch = scratch_buffer(self._scratch, self.vocab_size * min(len(h), ROW_BLOCK), like)
            w, b = self.linear.weight, self.linear.bias
            with torch.autocast("cpu", enabled=False):  # the kernel takes its products in ``low`` itself
                return LinearCrossEntropy.apply(h, w, b, targets, self.bos_id, self._scratch, low)
        logits = self.linear(h).float()
        logits[:, self.bos_id] = float("-inf")
        return F.cross_entropy(logits, targets, reduction="sum")

    def target_log_probs(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for each row (float64), without building full float64 distributions: the full
        softmax takes its normaliser block by block (:func:`_softmax_blocks`); the adaptive softmax scores only
        the targets' clusters and removes the <s> share of the head (renormalising as :meth:`log_probs`)."""
        out = []
        if self.kind == "full":  # one block's worth of logits, reused for every block of every chunk
            w, b = self.linear.weight, self.linear.bias
            buffer = h.new_empty(min(VOCAB_BLOCK, self.vocab_size) * min(len(h), SCORE_BLOCK))
        for start in range(0, len(h), SCORE_BLOCK):
            hc, tc = h[start : start + SCORE_BLOCK], targets[start : start + SCORE_BLOCK]
            if self.kind == "full":
                block = buffer[: min(VOCAB_BLOCK, self.vocab_size) * len(hc)].view(-1, len(hc))
                maxima, sums = _softmax_blocks(hc, w, b, self.bos_id, block, False, VOCAB_BLOCK)
                log_normaliser, _ = _combine_blocks(maxima, sums)
                lp = target_logits(hc, w[tc], b[tc]) - log_normaliser
            else:
                target_lp = self.adaptive(hc, tc).output.double()
                head = torch.log_softmax(self.adaptive.head(hc).double(), dim=-1)  # (c, shortlist + clusters)
                lp = target_lp - torch.log1p(-head[:, self.bos_id].exp())
            out.append(lp)
        return torch.cat(out) if out else h.new_zeros(0, dtype=torch.float64)


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type in force for ``device`` (``None`` outside autocast)."""
    if device.type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


def _adaptive_target_log_probs(
    adaptive: nn.AdaptiveLogSoftmaxWithLoss, h: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log p(target) of an adaptive softmax (Grave et al. 2017) under autocast: the head and tail products in
    the autocast type, each log-softmax in float32. The same sum as ``AdaptiveLogSoftmaxWithLoss.forward``
    (head log-probability of the target, or of its cluster plus the target's log-probability in the cluster)."""
    head_logp = F.log_softmax(adaptive.head(h).float(), dim=-1)  # (N, shortlist + clusters)
    shortlist = adaptive.shortlist_size
    out = h.new_zeros(len(targets))
    in_head = targets < shortlist
    rows = in_head.nonzero(as_tuple=True)[0]
    out = out.index_copy(0, rows, head_logp[rows, targets[rows]])
    for i in range(len(adaptive.cutoffs) - 1):
        lo, hi = adaptive.cutoffs[i], adaptive.cutoffs[i + 1]
        rows = ((targets >= lo) & (targets < hi)).nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            continue
        cluster_logp = F.log_softmax(adaptive.tail[i](h[rows]).float(), dim=-1)
        target_logp = cluster_logp.gather(1, (targets[rows] - lo)[:, None])[:, 0]
        out = out.index_copy(0, rows, head_logp[rows, shortlist + i] + target_logp)
    return out


def default_cutoffs(vocab_size: int) -> list[int]:
    """Adaptive-softmax clusters for a frequency-sorted vocabulary: a 2k head, then 10k, then the tail."""
    cuts = [c for c in (2000, 10000) if c < vocab_size - 1]
    return cuts or [max(vocab_size // 2, 1)]
