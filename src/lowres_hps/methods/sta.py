"""Silhouette-topology self-adaptation (Rakesh, Kundu et al., NeurIPS 2021): adapt a 3D body regressor to a new
camera from silhouettes alone.

A static camera gives people's silhouettes almost for free (background subtraction,
:mod:`lowres_hps.imaging.foreground`), and silhouettes do not change with the image domain (colour, sensor, blur,
resolution). This method renders the predicted body's silhouette (M2S: the soft rasterizer, then a binary
activation with a straight-through gradient), extracts its topological skeleton (S2D then D2T,
:mod:`lowres_hps.losses.silhouette`) and aligns both with the target's by the convolutional chamfer losses
(Eq. 5). Every part is a switch (:class:`SilhouetteAdaptConfig`):

* ``losses``: ``"b1"`` pixel L2 on silhouettes, ``"b2"`` L_S only, ``"b3"`` L_S plus L2 on the skeletons,
  ``"ours"`` L_S + L_T (the paper's Table 4 rows); ``"inside"``: L_T with only the body-to-person half of L_S
  (clothed people, see :data:`LOSS_SETS`).
* ``fit_every`` (K) and ``fit_steps``: Algorithm 1. For K-1 of every K steps the network learns from the
  silhouette losses; every K-th step its outputs are fitted to the silhouettes for ``fit_steps`` Adam steps
  (the network frozen) and the network is supervised towards the fitted parameters (L_Theta). 0 turns the
  fitting off.
* ``prior``: the adversarial auto-encoder pose prior (:mod:`lowres_hps.models.pose_prior`). The paper's
  regressor predicts the prior's latent; ours keeps predicting the pose vector (so an adapted model is an
  ordinary 3D model), so the prior enters twice: in the fitting loop the body joints move only through the latent
  (as in the paper; relative to the network's start, see :meth:`SilhouetteAdaptLoss.fit`), and every step a term
  holds the network's pose near its projection on the prior (``lambda_prior``, mean geodesic angle). Shape is held
  near the network's training mean (``lambda_shape``).

Losses are per person and averaged over the people whose target silhouette has at least ``min_pixels`` pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lowres_hps.geometry.camera import project_to_crop
from lowres_hps.geometry.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from lowres_hps.losses.silhouette import (
    binarize,
    outward_distance,
    silhouette_chamfer_loss,
    silhouette_l2_loss,
    topology_chamfer_loss,
    topology_l2_loss,
)
from lowres_hps.render import render_silhouette

__all__ = ["LOSS_SETS", "SilhouetteAdaptConfig", "SilhouetteAdaptLoss", "target_silhouettes"]

LOSS_SETS: dict[str, tuple[str, ...]] = {
    "b1": ("silhouette_l2",),
    "b2": ("silhouette_chamfer",),
    "b3": ("silhouette_chamfer", "topology_l2"),
    "ours": ("silhouette_chamfer", "topology_chamfer"),
    "inside": ("silhouette_inside", "topology_chamfer"),
}
"""The paper's Table 4 rows: which silhouette terms each adaptation uses; and ``inside``, ours for clothed people:
only the body's pixels outside the person's silhouette cost (one-way chamfer), since a person's silhouette holds
clothes, bags and hair that the body cannot cover."""


@dataclass
class SilhouetteAdaptConfig:
    """Switches and weights of :class:`SilhouetteAdaptLoss` (the module docstring).

    Attributes:
        losses: a key of :data:`LOSS_SETS`.
        fit_every: K of Algorithm 1 (every K-th step fits and supervises with L_Theta); 0: never.
        fit_steps: Adam steps of each fit (the paper: 10).
        fit_lr: their learning rate (latent, 6D rotations, shape and crop camera alike).
        keep_better: a person whose fit matches the silhouette worse than the network's body keeps the network's
            body as the L_Theta target (no pull), as SPIN keeps each example's best fit.
        lambda_silhouette, lambda_topology: weights of the silhouette term and of the skeleton term.
        lambda_params: weight of L_Theta (rotation matrices, shape and camera against the fitted ones).
        lambda_shape: weight of the squared distance of the shape to the network's training mean.
        lambda_prior: weight of the pose's distance (radians) to its projection on the pose prior.
        render_size: side of the rendered and target silhouettes (px); the crop camera is scaled to it.
        sigma: sharpness of the soft rasterizer at that size (px^2, smaller is sharper and cheaper).
        erosion_steps: S2D's erosion steps (None: ``render_size // 2``, enough to span a person crop).
        min_pixels: people whose target silhouette has fewer pixels are left out.
    """

    losses: str = "ours"
    fit_every: int = 4
    fit_steps: int = 10
    fit_lr: float = 0.02
    lambda_silhouette: float = 1.0
    lambda_topology: float = 1.0
    lambda_params: float = 1.0
    lambda_shape: float = 0.1
    lambda_prior: float = 0.1
    keep_better: bool = True
    render_size: int = 64
    sigma: float = 0.01
    erosion_steps: int | None = None
    min_pixels: int = 20

    def __post_init__(self) -> None:
        if self.losses not in LOSS_SETS:
            raise ValueError(f"losses must be one of {sorted(LOSS_SETS)}, got {self.losses!r}")
        if self.fit_every < 0 or self.fit_steps < 0 or self.fit_lr <= 0:
            raise ValueError(f"need fit_every >= 0, fit_steps >= 0 and fit_lr > 0, got {self.fit_every}, "
                             f"{self.fit_steps}, {self.fit_lr}")
        if self.render_size < 16 or self.sigma <= 0 or self.min_pixels < 1:
            raise ValueError(f"need render_size >= 16, sigma > 0 and min_pixels >= 1, got {self.render_size}, "
                             f"{self.sigma}, {self.min_pixels}")

    @property
    def steps(self) -> int:
        return self.erosion_steps if self.erosion_steps is not None else self.render_size // 2


def target_silhouettes(silhouettes: torch.Tensor, size: int) -> torch.Tensor:
    """(B, S, S) 0/1 crop silhouettes -> (B, size, size) 0/1 at the render size (area-averaged, then > 0.5)."""
    if silhouettes.shape[-1] == size:
        return (silhouettes > 0.5).float()
    small = F.interpolate(silhouettes[:, None].float(), size=(size, size), mode="area")[:, 0]
    return (small > 0.5).float()


class SilhouetteAdaptLoss:
    """``loss(model, batch)`` of :class:`~lowres_hps.engine.trainer.Task`: silhouette self-adaptation of a
    :class:`~lowres_hps.models.body3d.Body3DNet` (the module docstring).

    Args:
        config: the switches.
        network_config: the network's :class:`~lowres_hps.models.body3d.Body3DConfig` (canvas, crop camera).
        body: its body model.
        mean_shape: (S,) shape the ``lambda_shape`` term pulls towards (the network's training mean).
        prior: a :class:`~lowres_hps.models.pose_prior.PosePrior` (frozen here), or None to go without.

    Logs per step: the silhouette terms of the network's output (measured on fitting steps too), ``loss_params``
    (L_Theta on fitting steps, 0 on the others), ``loss_shape``, ``loss_prior`` and ``people``.

    Batches: ``images`` (B, 3, S, S) or (B, P, 3, S, S) uint8, ``range_index`` (B,) or (B, P), ``silhouette``
    (B, S, S) 0/1 and optionally ``has_silhouette`` (B,).
    """

    def __init__(self, config: SilhouetteAdaptConfig, network_config, body, mean_shape: torch.Tensor,
                 prior=None) -> None:
        self.config = config
        self.network_config = network_config
        self.body = body
        self.spec = body.pose_spec
        self.mean_shape = torch.as_tensor(mean_shape, dtype=torch.float32)
        self.prior = prior
        if prior is not None:
            prior.eval()
            for parameter in prior.parameters():
                parameter.requires_grad_(False)
        self.terms = LOSS_SETS[config.losses]
        self.calls = 0

    # ------------------------------------------------------------------------------------------------
    # M2S and the silhouette terms

    def render(self, pose_vector: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """(B, D) pose vectors with (B, 3) crop cameras -> (B, R, R) binary silhouettes (straight-through
        gradient) at the render size."""
        cfg, net = self.config, self.network_config
        body = self.body
        if body.device != pose_vector.device:
            body.to(pose_vector.device)
        with torch.autocast(pose_vector.device.type, enabled=False):  # skinning in bf16 moves vertices by cm
            out = body.forward_vector(pose_vector.to(body.dtype))
            keypoints, _ = out.keypoints(net.convention)
            _, translation = project_to_crop(keypoints, camera.to(body.dtype), net.canvas, net.crop_focal)
            vertices = out.vertices + translation[:, None]
            scale = cfg.render_size / net.canvas
            centre = torch.full((2,), (cfg.render_size - 1) / 2.0, dtype=vertices.dtype, device=vertices.device)
            soft = render_silhouette(vertices, out.faces, net.crop_focal * scale, centre,
                                     (cfg.render_size, cfg.render_size), mode="soft", sigma=cfg.sigma,
                                     cull_backfaces=True)
        return binarize(soft.float())

    def silhouette_terms(self, predicted: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, R, R) predicted and target silhouettes -> the active terms, each (B,)."""
        steps = self.config.steps
        terms: dict[str, torch.Tensor] = {}
        for name in self.terms:
            if name == "silhouette_chamfer":
                terms[name] = silhouette_chamfer_loss(predicted, target, steps)
            elif name == "topology_chamfer":
                terms[name] = topology_chamfer_loss(predicted, target, steps)
            elif name == "silhouette_inside":  # body pixels' distance to the person, per pixel of the two maps
                outside = (outward_distance(target, steps) * predicted).sum((-1, -2))
                terms[name] = outside / (predicted.detach().sum((-1, -2)) + target.sum((-1, -2))).clamp(min=1)
            else:
                l2 = silhouette_l2_loss(predicted, target) if name == "silhouette_l2" else \
                    topology_l2_loss(predicted, target, steps)
                # Per pixel of the two silhouettes rather than of the image, so the term's scale matches the
                # chamfer terms' (mean px) across person sizes; the normaliser carries no gradient.
                area = predicted.shape[-1] * predicted.shape[-2]
                terms[name] = l2 * area / (predicted.detach().sum((-1, -2)) + target.sum((-1, -2))).clamp(min=1)
        return terms

    def _weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        total = 0
        for name, value in terms.items():
            total = total + (cfg.lambda_topology if name.startswith("topology") else cfg.lambda_silhouette) * value
        return total

    def shape_term(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(B,) mean squared distance of the shape values to the training mean."""
        _, shape = self.spec.split(pose_vector)
        return (shape - self.mean_shape.to(shape.device, shape.dtype)).pow(2).mean(-1)

    def prior_term(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(B,) mean geodesic angle (radians) of the body joints to their projection on the pose prior."""
        if self.prior is None:
            return pose_vector.new_zeros(pose_vector.shape[0])
        self.prior.to(pose_vector.device)
        return self.prior.reconstruction_error(pose_vector)

    # ------------------------------------------------------------------------------------------------
    # Algorithm 1's fitting

    def fit(self, pose_vector: torch.Tensor, camera: torch.Tensor, target: torch.Tensor,
            steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fit (B, D) pose vectors and (B, 3) cameras to (B, R, R) target silhouettes, the network aside: the
        root rotation, the body joints (through the prior's latent when there is a prior), the shape and the
        camera move for ``steps`` (default ``config.fit_steps``) Adam steps on the silhouette terms. Returns the
        fitted ``(pose_vector, camera)``, detached."""
        cfg = self.config
        steps = cfg.fit_steps if steps is None else steps
        with torch.no_grad():
            rotations, shape0 = self.spec.split(pose_vector.detach().float())
        root = matrix_to_rotation_6d(rotations[:, :1]).clone().requires_grad_(True)
        shape = shape0.clone().requires_grad_(True)
        cam = camera.detach().float().clone().requires_grad_(True)
        if self.prior is not None:
            self.prior.to(pose_vector.device)
            with torch.no_grad():
                latent = self.prior.encode(pose_vector.detach().float())
                decoded0 = rotation_6d_to_matrix(self.prior.decode(latent))
            joints = latent.clone().requires_grad_(True)
        else:
            joints = matrix_to_rotation_6d(rotations[:, 1:]).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([root, joints, shape, cam], lr=cfg.fit_lr)

        def vector() -> torch.Tensor:
            if self.prior is not None:
                # The body joints move as the decoded pose moves from its start: R = D(z) D(z0)^T R_net, so the fit
                # starts at the network's body exactly (not at its reconstruction by the prior, 5-6 degrees off)
                # and changes it only along the prior's poses.
                decoded = rotation_6d_to_matrix(self.prior.decode(joints))
                body = decoded @ decoded0.transpose(-1, -2) @ rotations[:, 1:]
            else:
                body = rotation_6d_to_matrix(joints)
            return self.spec.join(torch.cat([rotation_6d_to_matrix(root), body], dim=1), shape)

        with torch.enable_grad():
            for _ in range(steps):
                current = vector()
                loss = self._weighted(self.silhouette_terms(self.render(current, cam), target)).mean()
                loss = loss + cfg.lambda_shape * self.shape_term(current).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if self.prior is not None:
                    with torch.no_grad():
                        joints.clamp_(-1.0, 1.0)  # the prior's latent lives in [-1, 1]^L
        with torch.no_grad():
            fitted, fitted_camera = vector().detach(), cam.detach()
            if not cfg.keep_better:
                return fitted, fitted_camera
            # As SPIN keeps each example's best fit: a fit that matches its silhouette worse than the network's own
            # body does (a bad start, a local minimum, the prior's reconstruction error) is not taught.
            start = pose_vector.detach().float()
            before = self._weighted(self.silhouette_terms(self.render(start, camera.detach().float()), target))
            after = self._weighted(self.silhouette_terms(self.render(fitted, fitted_camera), target))
            better = (after < before)[:, None]
            return torch.where(better, fitted, start), torch.where(better, fitted_camera, camera.detach().float())

    def params_term(self, pose_vector: torch.Tensor, camera: torch.Tensor, fitted_vector: torch.Tensor,
                    fitted_camera: torch.Tensor) -> torch.Tensor:
        """(B,) L_Theta: squared distance of the rotation matrices, shape and camera to the fitted ones."""
        rotations, shape = self.spec.split(pose_vector)
        fitted_rotations, fitted_shape = self.spec.split(fitted_vector.to(pose_vector.dtype))
        return ((rotations - fitted_rotations).pow(2).flatten(1).mean(-1) + (shape - fitted_shape).pow(2).mean(-1)
                + (camera - fitted_camera.to(camera.dtype)).pow(2).mean(-1))

    # ------------------------------------------------------------------------------------------------

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch's ``(images (N, 3, S, S), range_index (N,), target silhouettes (N, R, R), keep (N,) bool)``."""
        images, ranges = batch["images"], batch["range_index"]
        silhouettes = batch["silhouette"]
        if images.ndim == 5:  # (B, P, 3, S, S): every resolution shares the person's silhouette
            per = images.shape[1]
            images, ranges = images.flatten(0, 1), ranges.flatten()
            silhouettes = silhouettes.repeat_interleave(per, dim=0)
            has = batch.get("has_silhouette", torch.ones(len(batch["silhouette"]), device=images.device))
            has = has.repeat_interleave(per)
        else:
            has = batch.get("has_silhouette", torch.ones(images.shape[0], device=images.device))
        target = target_silhouettes(silhouettes, self.config.render_size)
        keep = (has > 0) & (target.sum((-1, -2)) >= self.config.min_pixels)
        return images, ranges, target, keep

    @torch.no_grad()
    def evaluate(self, model, batches) -> dict[str, float]:
        """How well the network's bodies match held-out people's silhouettes (``Task.evaluate``): the mean IoU of
        each body's rendered silhouette with the person's (``silhouette_iou``, higher is better) and the mean of
        the adaptation's own silhouette terms (``silhouette_loss``), over the people with a usable silhouette."""
        ious, losses = [], []
        for batch in batches:
            images, ranges, target, keep = self._inputs(batch)
            if not bool(keep.any()):
                continue
            out = model(images[keep], ranges[keep])
            drawn = self.render(out["pose_vector"].float(), out["camera"].float())
            wanted = target[keep]
            overlap = (drawn * wanted).sum((-1, -2))
            ious.append(overlap / (drawn + wanted - drawn * wanted).sum((-1, -2)).clamp(min=1))
            losses.append(self._weighted(self.silhouette_terms(drawn, wanted)))
        if not ious:
            return {}
        return {"silhouette_iou": float(torch.cat(ious).mean()), "silhouette_loss": float(torch.cat(losses).mean())}

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.config
        images, ranges, target, keep = self._inputs(batch)
        weights = keep.float() / keep.float().sum().clamp(min=1)

        out = model(images, ranges)
        pose, camera = out["pose_vector"].float(), out["camera"].float()
        fitting = cfg.fit_every > 0 and cfg.fit_steps > 0 and self.calls % cfg.fit_every == cfg.fit_every - 1
        self.calls += 1
        logs: dict[str, Any] = {"people": keep.float().sum()}
        if fitting:
            fitted_vector, fitted_camera = self.fit(pose, camera, target)
            per_person = cfg.lambda_params * self.params_term(pose, camera, fitted_vector, fitted_camera)
            logs["loss_params"] = (per_person * weights).sum().detach()
            with torch.no_grad():  # the same log columns every step: the network's terms, measured only
                terms = self.silhouette_terms(self.render(pose.detach(), camera.detach()), target)
        else:
            terms = self.silhouette_terms(self.render(pose, camera), target)
            per_person = self._weighted(terms)
            logs["loss_params"] = torch.zeros(())
        for name, value in terms.items():
            logs[f"loss_{name}"] = (value.detach() * weights).sum()
        shape = self.shape_term(pose)
        prior = self.prior_term(pose)
        per_person = per_person + cfg.lambda_shape * shape + cfg.lambda_prior * prior
        logs["loss_shape"] = (shape * weights).sum().detach()
        logs["loss_prior"] = (prior * weights).sum().detach()
        return (per_person * weights).sum(), logs
