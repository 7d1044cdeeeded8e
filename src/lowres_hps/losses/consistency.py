"""Cross-resolution consistency losses of RSC-Net (Xu et al. 2020): self-supervision (Eqs. 8-9) and
feature losses (Eqs. 10-11) with a MoCo-style queue of negatives.

Every loss here takes the outputs of the same people at A resolutions, ``(B, A, ...)``, and a pair
weight tensor ``w (B, A, A)`` where ``w[b, i, j]`` weighs "``i`` teaches ``j``" (the target side ``i``
is detached unless the form is symmetric). Losses are the weighted sum over pairs divided by the
number of pairs with a non-zero weight, so adding resolutions does not rescale them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "SELF_SUPERVISION_FORMS",
    "FEATURE_LOSSES",
    "pair_weights",
    "self_supervision_loss",
    "FeatureQueue",
    "feature_consistency_loss",
]

SELF_SUPERVISION_FORMS = ("directional", "symmetric", "highest")
"""``directional``: Eq. 9, w_ij = 1(j > i)(j - i), target detached; ``symmetric``: Eq. 8 ("SS-o"),
every pair of different resolutions both ways, nothing detached; ``highest`` ("SS-h"): only the
highest resolution of each person teaches, with Eq. 9's weight."""
FEATURE_LOSSES = ("contrastive", "mse", "cosine")


def pair_weights(range_index: torch.Tensor, form: str = "directional") -> torch.Tensor:
    """Pair weights ``w (B, A, A)`` from the range index of each resolution of each person.

    Args:
        range_index: (B, A) int, larger = lower resolution.
        form: one of :data:`SELF_SUPERVISION_FORMS`.
    """
    if form not in SELF_SUPERVISION_FORMS:
        raise ValueError(f"self-supervision form must be one of {SELF_SUPERVISION_FORMS}, got {form!r}")
    if range_index.ndim != 2:
        raise ValueError(f"range_index must be (B, A), got {tuple(range_index.shape)}")
    r = range_index.to(torch.float32)
    gap = r[:, None, :] - r[:, :, None]  # gap[b, i, j] = r_j - r_i
    if form == "symmetric":
        return (gap != 0).to(torch.float32)
    weights = gap.clamp(min=0)
    if form == "highest":
        teacher = r == r.min(dim=1, keepdim=True).values  # (B, A): the highest resolution(s) of each person
        weights = weights * teacher[:, :, None]
    return weights


def _pairwise(weights: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``distance (B, A, A)`` over the pairs with ``weights > 0``."""
    count = (weights > 0).sum().clamp(min=1)
    return (weights * distance).sum() / count


def self_supervision_loss(outputs: torch.Tensor, weights: torch.Tensor, detach_targets: bool = True) -> torch.Tensor:
    """``sum_ij w_ij || f(x_i) - f(x_j) ||^2`` (mean over the output size), per pair mean as in the module doc.

    Args:
        outputs: (B, A, D) network outputs at A resolutions.
        weights: (B, A, A) from :func:`pair_weights`.
        detach_targets: stop the gradient through the teacher side ``i`` (Eq. 9); False for Eq. 8.
    """
    if outputs.ndim != 3 or weights.shape != (outputs.shape[0], outputs.shape[1], outputs.shape[1]):
        raise ValueError(f"outputs (B, A, D) and weights (B, A, A) expected, got {tuple(outputs.shape)} "
                         f"and {tuple(weights.shape)}")
    targets = outputs.detach() if detach_targets else outputs
    distance = (targets[:, :, None, :] - outputs[:, None, :, :]).pow(2).mean(-1)  # [b, i, j]
    return _pairwise(weights.to(outputs.dtype), distance)


class FeatureQueue:
    """A FIFO of detached, L2-normalised feature vectors (the negatives ``Q`` of Eq. 11).

    Not saved with checkpoints: a resumed run starts with an empty queue, which refills within
    ``size / (batch x resolutions)`` steps. Each process keeps its own queue under DDP.
    """

    def __init__(self, dim: int, size: int = 8192) -> None:
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and feature dim must be positive, got {size}, {dim}")
        self.features = torch.zeros(size, dim)
        self.size, self.count, self.pointer = int(size), 0, 0

    def negatives(self) -> torch.Tensor:
        """(N, dim) copy of the features queued so far (N <= size); a copy, because autograd keeps it
        for the backward pass while the next :meth:`enqueue` overwrites the queue in place."""
        return self.features[: self.count].clone()

    def enqueue(self, features: torch.Tensor) -> None:
        """Add (M, dim) features, dropping the oldest when full."""
        features = F.normalize(features.detach().float(), dim=-1).to(self.features.device)
        if features.shape[0] >= self.size:
            features = features[-self.size:]
        m = features.shape[0]
        end = self.pointer + m
        if end <= self.size:
            self.features[self.pointer:end] = features
        else:
            first = self.size - self.pointer
            self.features[self.pointer:] = features[:first]
            self.features[: m - first] = features[first:]
        self.pointer = end % self.size
        self.count = min(self.count + m, self.size)

    def to(self, device) -> FeatureQueue:
        self.features = self.features.to(device)
        return self


def feature_consistency_loss(features: torch.Tensor, weights: torch.Tensor, kind: str = "contrastive",
                             queue: FeatureQueue | None = None, temperature: float = 0.1) -> torch.Tensor:
    """Eq. 10 with ``g`` = Eq. 11's contrastive loss, MSE ("MS") or cosine distance ("CD").

    Args:
        features: (B, A, F) feature vectors ``phi`` at A resolutions; the teacher side is detached.
        weights: (B, A, A) pair weights.
        kind: one of :data:`FEATURE_LOSSES`.
        queue: negatives for ``contrastive`` (None or empty: only the positive pair, loss 0).
        temperature: ``tau`` of Eq. 11.
    """
    if kind not in FEATURE_LOSSES:
        raise ValueError(f"feature loss must be one of {FEATURE_LOSSES}, got {kind!r}")
    if features.ndim != 3 or weights.shape != (features.shape[0], features.shape[1], features.shape[1]):
        raise ValueError(f"features (B, A, F) and weights (B, A, A) expected, got {tuple(features.shape)} "
                         f"and {tuple(weights.shape)}")
    teachers = features.detach()
    if kind == "mse":
        distance = (teachers[:, :, None, :] - features[:, None, :, :]).pow(2).mean(-1)
        return _pairwise(weights.to(features.dtype), distance)
    students = F.normalize(features, dim=-1)
    teachers = F.normalize(teachers, dim=-1)
    similarity = torch.einsum("bif,bjf->bij", teachers, students)  # s(phi_i, phi_j)
    if kind == "cosine":
        return _pairwise(weights.to(features.dtype), 1.0 - similarity)
    positive = similarity / temperature  # (B, A, A)
    if queue is None or queue.count == 0:
        log_partition = positive
    else:
        negatives = torch.einsum("bjf,nf->bjn", students, queue.negatives().to(students)) / temperature
        negative_lse = torch.logsumexp(negatives, dim=-1)  # (B, A) per student j
        log_partition = torch.logaddexp(positive, negative_lse[:, None, :])
    return _pairwise(weights.to(features.dtype), log_partition - positive)
