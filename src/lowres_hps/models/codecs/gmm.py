"""Gaussian mixtures fitted by EM, and CAL's Mixed Gaussian Masks (Algorithm 1, Eq. 13) built from them."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from lowres_hps.models.codecs.base import heatmap_argmax

__all__ = ["GaussianMixture", "fit_gmm", "gmm_log_density", "mixed_gaussian_masks", "mgm_half_width"]

# A full 2D covariance needs at least 3 non-collinear points; with fewer per component the fit is degenerate.
MIN_POINTS_PER_COMPONENT = 3


class GaussianMixture(NamedTuple):
    """Mixture of ``C`` Gaussians in ``D`` dimensions: weights (C,), means (C, D), covariances (C, D, D)."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor


def gmm_log_density(points: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Log of the mixture density at ``points`` (..., D) -> (...)."""
    return torch.logsumexp(_component_log_probs(points.reshape(-1, points.shape[-1]), mixture), dim=-1).reshape(
        points.shape[:-1]
    )


def _component_log_probs(points: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """(N, C): ``log w_c + log N(x_n; mu_c, Sigma_c)``."""
    weights, means, covariances = mixture
    dim = points.shape[-1]
    chol = torch.linalg.cholesky(covariances)  # (C, D, D)
    diff = (points[None] - means[:, None]).transpose(1, 2)  # (C, D, N)
    whitened = torch.linalg.solve_triangular(chol, diff, upper=False)
    mahalanobis = (whitened**2).sum(dim=1)  # (C, N)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)  # (C,)
    log_normal = -0.5 * (dim * math.log(2 * math.pi) + log_det[:, None] + mahalanobis)
    return (torch.log(weights)[:, None] + log_normal).T


def _m_step(points: torch.Tensor, responsibilities: torch.Tensor, reg_covar: float) -> GaussianMixture:
    """Maximum-likelihood parameters for responsibilities (N, C) (empty components get tiny weight)."""
    eps = torch.finfo(points.dtype).eps
    counts = responsibilities.sum(dim=0) + 10 * eps  # (C,)
    means = responsibilities.T @ points / counts[:, None]
    diff = points[:, None] - means[None]  # (N, C, D)
    covariances = torch.einsum("nc,ncd,nce->cde", responsibilities, diff, diff) / counts[:, None, None]
    covariances = covariances + reg_covar * torch.eye(points.shape[-1], dtype=points.dtype, device=points.device)
    return GaussianMixture(counts / counts.sum(), means, covariances)


def _kmeans_plus_plus(points: torch.Tensor, num_components: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (C,) of k-means++ seeds (D^2 sampling); the draws happen on the CPU ``generator``."""
    n = points.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = ((points - points[chosen[0]]) ** 2).sum(dim=-1)
    for _ in range(1, num_components):
        probs = closest.detach().to("cpu", torch.float64)
        if not probs.sum() > 0:  # all points coincide with the seeds
            probs = torch.ones_like(probs)
        chosen.append(int(torch.multinomial(probs, 1, generator=generator)))
        closest = torch.minimum(closest, ((points - points[chosen[-1]]) ** 2).sum(dim=-1))
    return torch.tensor(chosen, device=points.device)


def fit_gmm(
    points: torch.Tensor,
    num_components: int = 1,
    iterations: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
) -> GaussianMixture:
    """Maximum-likelihood Gaussian mixture with full covariances, by EM (Dempster et al. 1977).

    Follows scikit-learn's ``GaussianMixture(covariance_type="full", init_params="k-means++")``: seeds by
    k-means++, hard assignment to the nearest seed, then EM until the mean log-likelihood changes by less
    than ``tol`` or ``iterations`` EM steps ran. ``reg_covar`` is added to every covariance diagonal.

    Args:
        points: (N, D) samples with ``N >= num_components``.
        num_components: number of Gaussians ``C``.
        iterations: maximum number of EM steps.
        tol: convergence threshold on the mean log-likelihood.
        reg_covar: diagonal regularisation keeping covariances positive definite.
        generator: CPU generator for the k-means++ draws; a fresh one seeded with 0 when None (deterministic).

    Returns:
        :class:`GaussianMixture` with the dtype and device of ``points``.
    """
    if not isinstance(points, torch.Tensor) or not points.is_floating_point() or points.ndim != 2:
        raise ValueError(f"points must be a floating point (N, D) tensor, got {getattr(points, 'shape', points)}")
    if int(num_components) != num_components or num_components < 1:
        raise ValueError(f"num_components must be a positive integer, got {num_components}")
    if points.shape[0] < num_components:
        raise ValueError(f"need at least num_components={num_components} points, got {points.shape[0]}")
    if not torch.isfinite(points).all():
        raise ValueError("points must be finite")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    points = points.detach()
    seeds = points[_kmeans_plus_plus(points, num_components, generator)]
    nearest = torch.cdist(points, seeds).argmin(dim=1)
    responsibilities = torch.nn.functional.one_hot(nearest, num_components).to(points.dtype)
    mixture = _m_step(points, responsibilities, reg_covar)
    previous = -math.inf
    for _ in range(iterations):
        log_probs = _component_log_probs(points, mixture)
        log_likelihood = torch.logsumexp(log_probs, dim=1, keepdim=True)
        mixture = _m_step(points, torch.exp(log_probs - log_likelihood), reg_covar)
        current = float(log_likelihood.mean())
        if abs(current - previous) < tol:
            break
        previous = current
    return mixture


def mgm_half_width(radius: float) -> int:
    """Half width ``r`` of the MGM grid ``Z = {-r..r}^2``: ``max(1, floor(radius + 1/2))``.

    Placed at the rounded keypoint, this is the smallest square holding every pixel of the radius-``R``
    disc around the exact keypoint (it equals ``R`` for an integer ``R``, as in the paper's grid).
    """
    return max(1, math.floor(radius + 0.5))


def mixed_gaussian_masks(
    pred_heatmaps: torch.Tensor,
    keypoints_hm: torch.Tensor,
    visible: torch.Tensor,
    radius: float,
    num_components: int = 1,
    *,
    fallback_weights: torch.Tensor,
    iterations: int = 100,
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CAL's Mixed Gaussian Masks (Algorithm 1): stage-2 offset-loss weights from batch statistics.

    1. Displacements ``d = argmax(G_hat) - y`` (heatmap pixels) of the visible keypoints of the batch,
       pooled over people and keypoint types (Eq. 11).
    2. A GMM fitted to them by EM (Eq. 12, :func:`fit_gmm`).
    3. Its density sampled on the integer grid ``Z = {-r..r}^2``, ``r =`` :func:`mgm_half_width`, and
       min-max normalised to [0, 1] (the IMGM).
    4. Shifted to every keypoint (Eq. 13): the grid centre goes to the keypoint's ROUNDED heatmap pixel
       ``floor(y + 1/2)``, so pixel ``p`` gets ``M(p - round(y))``; pixels off the grid get 0.

    Degenerate batches return ``fallback_weights`` unchanged (pass the stage-1 weights ``G``): fewer than
    3 displacements per component, all displacements identical, or a normalised grid that is constant or
    not finite.

    Args:
        pred_heatmaps: (B, K, h, w) predicted heatmaps (no gradient flows through the masks).
        keypoints_hm: (B, K, 2) ground-truth keypoints in heatmap pixels.
        visible: (B, K) keypoint weights; joints with weight > 0 are used and get a mask.
        radius: ``R`` of the offset codec, in heatmap pixels.
        num_components: GMM components.
        fallback_weights: (B, K, h, w) weights returned for degenerate batches.
        iterations, reg_covar, generator: see :func:`fit_gmm`.

    Returns:
        (B, K, h, w) masks in [0, 1] with the dtype of ``keypoints_hm``; zero where ``visible`` is 0.
    """
    if pred_heatmaps.ndim != 4:
        raise ValueError(f"pred_heatmaps must be (B, K, h, w), got {tuple(pred_heatmaps.shape)}")
    batch, joints, h, w = pred_heatmaps.shape
    if keypoints_hm.shape != (batch, joints, 2):
        raise ValueError(f"keypoints_hm must be {(batch, joints, 2)}, got {tuple(keypoints_hm.shape)}")
    if visible.shape != (batch, joints):
        raise ValueError(f"visible must be {(batch, joints)}, got {tuple(visible.shape)}")
    if fallback_weights.shape != pred_heatmaps.shape:
        raise ValueError(
            f"fallback_weights must be {tuple(pred_heatmaps.shape)}, got {tuple(fallback_weights.shape)}"
        )
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")

    with torch.no_grad():
        keypoints_hm = keypoints_hm.detach()
        dtype, device = keypoints_hm.dtype, keypoints_hm.device
        used = visible.to(device) > 0
        argmax_xy, _ = heatmap_argmax(pred_heatmaps.detach().to(device))
        displacements = (argmax_xy.to(dtype) - keypoints_hm)[used]  # (N, 2)
        if displacements.shape[0] < MIN_POINTS_PER_COMPONENT * num_components \
                or bool((displacements == displacements[0]).all()):
            return fallback_weights

        mixture = fit_gmm(displacements, num_components, iterations=iterations, reg_covar=reg_covar,
                          generator=generator)
        half = mgm_half_width(radius)
        steps = torch.arange(-half, half + 1, dtype=dtype, device=device)
        grid = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1)  # (2r+1, 2r+1, 2) as (x, y)
        imgm = torch.exp(gmm_log_density(grid, mixture))
        spread = imgm.max() - imgm.min()
        if not (torch.isfinite(imgm).all() and spread > 0):
            return fallback_weights
        imgm = (imgm - imgm.min()) / spread

        # Shift: pixel p of keypoint y reads the grid at p - round(y).
        centres = torch.floor(keypoints_hm + 0.5).long()  # (B, K, 2)
        rel_x = torch.arange(w, device=device) - centres[..., 0, None]  # (B, K, w)
        rel_y = torch.arange(h, device=device) - centres[..., 1, None]  # (B, K, h)
        on_grid = (rel_y.abs() <= half)[..., :, None] & (rel_x.abs() <= half)[..., None, :]
        index = (rel_y.clamp(-half, half) + half)[..., :, None] * (2 * half + 1) \
            + (rel_x.clamp(-half, half) + half)[..., None, :]
        masks = imgm.flatten()[index] * on_grid
        return masks * used[..., None, None]
