"""Fit a regressed body to 2D keypoints: a few optimisation steps on its joint rotations and crop camera.

A regression network gives a body that is plausible in 3D but whose joints sit loosely on the image; a 2D
keypoint model places joints far more precisely. As in SPIN's in-the-loop SMPLify and in EFT (the network's
output as the start and the prior), this moves the body until its projected keypoints meet the 2D ones,
while each joint rotation is held near the network's: ``R_j = R_j^net exp([delta_j])`` with a penalty on
``|delta_j|`` (radians), so the regressed depth and the unseen parts stay as the network put them. Shape can
be fitted too (``fit_shape``), held near the network's by ``shape_prior``.

Hand-written: SMPLify and its descendants (smplify-x, EFT) are tied to SMPL and to their own data layouts;
this works on any body model of :mod:`lowres_hps.body` through its keypoint-only forward, batched, on CPU or
CUDA.

Loss per person (crop pixels divided by the canvas side, so one setting serves every canvas)::

    sum_k w_k GMoF(|pi(X_k) - y_k| / canvas; sigma) / sum_k w_k
        + pose_prior * sum_j |delta_j|^2 / J + camera_prior * |c - c_net|^2 + shape_prior * |b - b_net|^2 / S

with ``w_k`` the keypoint score where it reaches ``min_score`` (else 0) and Geman-McClure's robust
``GMoF(r; sigma) = sigma^2 r^2 / (sigma^2 + r^2)`` (a wrong keypoint pulls with a bounded force). People with
fewer than ``min_keypoints`` usable keypoints keep the network's body.

Left and right: a 2D model trained on people who mostly face the camera often labels a person seen from behind
as if seen from the front, with left and right swapped, and a fit to those keypoints turns the body around.
With ``resolve_left_right`` the targets of a person are swapped (the convention's flip permutation) when the
swapped set lies closer to the network's own projection: the 3D network, which sees the whole body, decides
which way the person faces. With ``try_turned_round`` the keypoints decide instead, without a half turn of the
body under the prior: each person is fitted twice, from the network's body and from that body seen the other way
round (:func:`~lowres_hps.body.flip.turn_round_pose_vector`: the same image points, left and right exchanged), and
the fit with the lower final loss is kept.

Collapsed cameras: a network sometimes gives a crop camera whose scale is at or below ``MIN_CAMERA_SCALE`` (seen
for people upside down or in unusual poses: the projection shrinks towards the crop's centre until the clamp that
keeps bodies in front of the camera stops its gradient). Such a body projects to a point, and the fit could not grow
it back. With ``restart_collapsed`` (default) those people start instead from a camera that puts the body's keypoints
over the targets' (scale from their spread, position from their centroids), with the network's body as it is or
turned half round about the line of sight (upside down), whichever lies closer to the targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from lowres_hps.core.checks import check_shape
from lowres_hps.geometry.camera import MIN_CAMERA_SCALE, project_to_crop

__all__ = ["KeypointFitConfig", "KeypointFit", "fit_body_to_keypoints", "gmof"]


@dataclass
class KeypointFitConfig:
    """Settings of :func:`fit_body_to_keypoints`.

    The defaults were chosen on validation people (benchmarks/README.md, "3D bodies fitted to 2D keypoints"):
    LSPET-val's real people (projected-3D AP) and SynthLR-val (PA-MPJPE). ``pose_prior`` trades one for the other;
    1 keeps most of the network's 3D while bringing the projection onto the person.

    Attributes:
        steps: Adam steps (0: no fitting).
        lr: Adam's first learning rate (radians for rotations; the camera's ``[s, tx, ty]`` units), decayed to
            zero over the steps (cosine).
        pose_prior: weight of the mean squared rotation change per joint (radians^2).
        camera_prior: weight of the squared camera change.
        sigma: Geman-McClure scale, as a fraction of the canvas side.
        min_score: keypoints scored below this are ignored.
        min_keypoints: people with fewer usable keypoints are not fitted.
        fit_root: also fit the root (global) rotation.
        resolve_left_right: let the network's projection decide between the targets and their left/right swap.
        try_turned_round: also fit from the network's body turned round and keep the fit with the lower loss.
        fit_shape: also fit the shape values (``shape_range`` bounds them: Anny's phenotypes live in [0, 1]).
        shape_prior: weight of the mean squared shape change.
        shape_range: bounds of the shape values, or None for unbounded ones (SMPL's betas).
        joint_prior_scale: multipliers of ``pose_prior`` for named joints of the body's pose (``pose_spec.joint_names``;
            the others keep 1), e.g. a stiffer root and spine with freer arms.
        score_power: keypoint weights are ``score ** score_power`` (above ``min_score``).
        normalise_by: ``"weights"`` divides the data term by each person's total keypoint weight (confidence only
            ranks a person's keypoints); ``"keypoints"`` by the number of keypoints, so a person whose keypoints the 2D
            model is unsure of is pulled less and the network's body (the prior) counts more.
        keypoint_scale: multipliers of the data term for named keypoints of ``convention`` (the others keep 1),
            applied after the normalisation so the other keypoints pull as before; e.g. COCO's OKS sigmas make a
            face keypoint's pixel count several times a hip's (:func:`lowres_hps.evaluation.oks_keypoint_scale`).
        restart_collapsed: people whose crop camera has collapsed (scale at or below ``MIN_CAMERA_SCALE``) start
            from a camera set from their keypoints (the module docstring).
    """

    steps: int = 60
    lr: float = 0.08
    pose_prior: float = 1.0
    camera_prior: float = 0.1
    sigma: float = 0.2
    min_score: float = 0.1
    min_keypoints: int = 6
    fit_root: bool = True
    resolve_left_right: bool = False
    try_turned_round: bool = False
    fit_shape: bool = False
    shape_prior: float = 0.1
    shape_range: tuple[float, float] | None = (0.0, 1.0)
    joint_prior_scale: dict[str, float] | None = None
    score_power: float = 1.0
    normalise_by: str = "weights"
    keypoint_scale: dict[str, float] | None = None
    restart_collapsed: bool = True

    def __post_init__(self) -> None:
        if self.normalise_by not in ("weights", "keypoints"):
            raise ValueError(f"normalise_by must be 'weights' or 'keypoints', got {self.normalise_by!r}")
        scales = list((self.joint_prior_scale or {}).values()) + list((self.keypoint_scale or {}).values())
        if self.score_power <= 0 or any(v < 0 for v in scales):
            raise ValueError(f"keypoint fit needs score_power > 0 and joint_prior_scale and keypoint_scale values "
                             f">= 0, got {self}")
        if self.steps < 0 or self.lr <= 0 or self.sigma <= 0 or self.min_keypoints < 1:
            raise ValueError(f"keypoint fit needs steps >= 0, lr > 0, sigma > 0 and min_keypoints >= 1, got {self}")
        if self.pose_prior < 0 or self.camera_prior < 0 or self.shape_prior < 0:
            raise ValueError(f"keypoint fit priors must be >= 0, got {self.pose_prior}, {self.camera_prior}, "
                             f"{self.shape_prior}")


@dataclass
class KeypointFit:
    """Result of :func:`fit_body_to_keypoints`.

    Attributes:
        pose_vector: (B, D) fitted pose vectors (the network's shape values unless ``fit_shape``).
        camera: (B, 3) fitted weak-perspective crop cameras ``[s, tx, ty]``.
        fitted: (B,) bool, the people that had enough keypoints to be fitted.
        swapped: (B,) bool, the people whose targets were used left/right swapped (``resolve_left_right``).
        error_before: (B,) mean weighted keypoint distance before fitting, crop px (NaN without keypoints).
        error_after: (B,) the same after fitting.
        objective: (B,) the final loss (data term plus priors; 0 for people not fitted).
        turned_round: (B,) bool, the people whose kept fit started from the network's body turned round
            (``try_turned_round``).
        restarted: (B,) bool, the people whose collapsed camera was set from their keypoints (``restart_collapsed``).
    """

    pose_vector: torch.Tensor
    camera: torch.Tensor
    fitted: torch.Tensor
    swapped: torch.Tensor
    error_before: torch.Tensor
    error_after: torch.Tensor
    objective: torch.Tensor | None = None
    turned_round: torch.Tensor | None = None
    restarted: torch.Tensor | None = None


def gmof(squared_distance: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure robust penalty of squared distances: ``sigma^2 d^2 / (sigma^2 + d^2)``, any shape."""
    sigma2 = sigma * sigma
    return sigma2 * squared_distance / (sigma2 + squared_distance)


def _keypoint_error(pixels: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) weighted mean distance in px; NaN for people without weight."""
    distance = (pixels - target).norm(dim=-1)
    total = weights.sum(-1)
    return torch.where(total > 0, (distance * weights).sum(-1) / total.clamp(min=1e-12),
                       torch.full_like(total, float("nan")))


def _keypoint_scale(scale: dict[str, float] | None, convention: str, count: int) -> torch.Tensor:
    """(K,) data-term multipliers from ``KeypointFitConfig.keypoint_scale`` (names checked before any fitting)."""
    values = torch.ones(count, dtype=torch.float64)
    if scale:
        from lowres_hps.body.keypoints import get_convention

        names = get_convention(convention).names
        for name, value in scale.items():
            if name not in names:
                raise ValueError(f"keypoint_scale names {name!r}, not a keypoint of {convention}: {', '.join(names)}")
            values[names.index(name)] = value
    return values


def fit_body_to_keypoints(body, pose_vector: torch.Tensor, camera: torch.Tensor, keypoints2d: torch.Tensor,
                          scores: torch.Tensor, *, canvas: int, crop_focal: float, convention: str,
                          config: KeypointFitConfig | None = None) -> KeypointFit:
    """Fit bodies to 2D keypoints in their crops (the module docstring).

    Args:
        body: a body model of :mod:`lowres_hps.body` (its ``pose_spec`` reads ``pose_vector``).
        pose_vector: (B, D) the network's pose vectors, root rotation in camera axes.
        camera: (B, 3) the network's weak-perspective crop cameras ``[s, tx, ty]``.
        keypoints2d: (B, K, 2) target keypoints in crop pixels (pixel centres at integers), in ``convention``.
        scores: (B, K) their confidences; 0 ignores a keypoint.
        canvas, crop_focal: the crop camera (see :func:`~lowres_hps.geometry.camera.project_to_crop`).
        convention: keypoint convention of ``keypoints2d`` (one the body model provides, e.g. ``coco17``).
        config: the fit's settings (default :class:`KeypointFitConfig`).

    Returns:
        :class:`KeypointFit`, in the dtype and on the device of ``pose_vector``; gradients do not flow out.
    """
    import roma

    config = config or KeypointFitConfig()
    if config.try_turned_round:
        return _fit_both_ways(body, pose_vector, camera, keypoints2d, scores, canvas=canvas, crop_focal=crop_focal,
                              convention=convention, config=config)
    spec = body.pose_spec
    check_shape(pose_vector, f"B {spec.vector_size}", "pose_vector")
    batch = pose_vector.shape[0]
    check_shape(camera, f"{batch} 3", "camera")
    check_shape(keypoints2d, f"{batch} K 2", "keypoints2d")
    check_shape(scores, f"{batch} {keypoints2d.shape[1]}", "scores")
    dtype, device = pose_vector.dtype, pose_vector.device
    work = body.dtype
    with torch.no_grad():
        rotations0, shape0 = spec.split(pose_vector.detach().to(work))
        camera0 = camera.detach().to(work)
        target = keypoints2d.detach().to(device, work)
        weights = scores.detach().to(device, work)
        weights = torch.where(weights >= config.min_score, weights.clamp(min=0) ** config.score_power,
                              torch.zeros_like(weights))

    def project(rotations: torch.Tensor, cam: torch.Tensor, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        native = body.pose_vector_to_native(spec.join(rotations, shape))
        # The shape as given, not the joined vector's slice (which carries the rotations' autograd history): a body
        # model can then reuse its shape's part of the forward across the steps (Anny does).
        out = body(replace(native, shape=shape), keypoints_only=True)
        points, mask = out.keypoints(convention)
        if points.shape[1] != target.shape[1]:
            raise ValueError(f"the body gives {points.shape[1]} {convention} keypoints, the targets have "
                             f"{target.shape[1]}")
        pixels, _ = project_to_crop(points, cam, canvas, crop_focal)
        return pixels, mask

    # The network's own keypoints, and the joints the body model does not provide, weigh nothing.
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        pixels0, mask = project(rotations0, camera0, shape0)
        weights = weights * mask
        swapped = torch.zeros(batch, dtype=torch.bool, device=device)
        if config.resolve_left_right:
            from lowres_hps.body.keypoints import get_convention

            flip = torch.as_tensor(get_convention(convention).flip_permutation, device=device)
            flipped_target, flipped_weights = target[:, flip], weights[:, flip] * mask
            swapped = _keypoint_error(pixels0, flipped_target, flipped_weights) < _keypoint_error(pixels0, target, weights)
            target = torch.where(swapped[:, None, None], flipped_target, target)
            weights = torch.where(swapped[:, None], flipped_weights, weights)
        error_before = _keypoint_error(pixels0, target, weights)
    fitted = (weights > 0).sum(-1) >= config.min_keypoints
    restarted = torch.zeros(batch, dtype=torch.bool, device=device)
    if config.restart_collapsed and bool((fitted & (camera0[:, 0] <= MIN_CAMERA_SCALE)).any()):
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            rotations0, camera0, restarted = _restart_collapsed(project, rotations0, camera0, shape0, target, weights,
                                                                fitted, canvas)
    keypoint_scale = _keypoint_scale(config.keypoint_scale, convention, target.shape[1]).to(device, work)
    joint_prior = torch.ones(spec.num_joints, dtype=work, device=device)
    for name, scale in (config.joint_prior_scale or {}).items():
        if name not in spec.joint_names:
            raise ValueError(f"joint_prior_scale names {name!r}, not a joint of {type(body).__name__}'s pose: "
                             f"{', '.join(spec.joint_names)}")
        joint_prior[spec.joint_names.index(name)] = scale
    rotations, cam, shape = rotations0, camera0, shape0

    def bounded(values: torch.Tensor) -> torch.Tensor:
        if not config.fit_shape or config.shape_range is None:
            return values
        return values.clamp(*config.shape_range)
    objective = torch.zeros(batch, dtype=work, device=device)
    if config.steps > 0 and bool(fitted.any()):
        keep = fitted.to(work)
        delta = torch.zeros(batch, spec.num_joints, 3, dtype=work, device=device, requires_grad=True)
        camera_delta = torch.zeros(batch, 3, dtype=work, device=device, requires_grad=True)
        shape_delta = torch.zeros_like(shape0, requires_grad=config.fit_shape)
        optimizer = torch.optim.Adam([delta, camera_delta] + [shape_delta] * config.fit_shape, lr=config.lr)
        # Cosine decay to zero: Adam's steps do not shrink with the gradient, so a constant rate ends jittering.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / config.steps)))
        normaliser = (weights.sum(-1) if config.normalise_by == "weights"
                      else (weights > 0).sum(-1).to(work)).clamp(min=1e-12)
        joint_mask = torch.ones(spec.num_joints, 1, dtype=work, device=device)
        if not config.fit_root:
            joint_mask[0] = 0

        def loss(step_delta: torch.Tensor, cam_delta: torch.Tensor, shape_change: torch.Tensor):
            """(B,) data term plus priors of one state, with the state's (rotations, camera, shape)."""
            rotations = rotations0 @ roma.rotvec_to_rotmat(step_delta)
            cam, shape = camera0 + cam_delta, bounded(shape0 + shape_change)
            pixels, _ = project(rotations, cam, shape)
            residual = ((pixels - target) / canvas).pow(2).sum(-1)
            data = (gmof(residual, config.sigma) * weights * keypoint_scale).sum(-1) / normaliser
            data = data / config.sigma ** 2
            prior = config.pose_prior * (step_delta.pow(2).sum(-1) * joint_prior).mean(-1)
            prior = prior + config.camera_prior * cam_delta.pow(2).sum(-1)
            if config.fit_shape:
                prior = prior + config.shape_prior * shape_change.pow(2).mean(-1)
            return (data + prior) * keep, (rotations, cam, shape)

        with torch.enable_grad(), torch.autocast(device.type, enabled=False):
            for _ in range(config.steps):
                optimizer.zero_grad(set_to_none=True)
                loss(delta * joint_mask, camera_delta, shape_delta)[0].sum().backward()
                optimizer.step()
                schedule.step()
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            objective, (rotations, cam, shape) = loss(delta.detach() * joint_mask * keep[:, None, None],
                                                      camera_delta.detach() * keep[:, None],
                                                      shape_delta.detach() * keep[:, None])
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        pixels, _ = project(rotations, cam, shape)
        error_after = _keypoint_error(pixels, target, weights)
        fitted_vector = spec.join(rotations, shape)
    return KeypointFit(pose_vector=fitted_vector.to(dtype), camera=cam.to(dtype), fitted=fitted, swapped=swapped,
                       error_before=error_before.to(dtype), error_after=error_after.to(dtype),
                       objective=objective.to(dtype), turned_round=torch.zeros_like(fitted), restarted=restarted)


def _restart_collapsed(project, rotations0, camera0, shape0, target, weights, fitted, canvas: int):
    """(rotations, camera, restarted) with each fitted person whose camera scale is at or below ``MIN_CAMERA_SCALE``
    given a camera that lays the body's keypoints over the targets, the body as it is or turned half round about the
    line of sight, whichever then lies closer to them (the module docstring)."""
    chosen = (fitted & (camera0[:, 0] <= MIN_CAMERA_SCALE)).nonzero()[:, 0]
    half_turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=rotations0.dtype, device=rotations0.device))
    upright = rotations0[chosen]
    upside_down = upright.clone()
    upside_down[:, 0] = half_turn @ upright[:, 0]  # the root rotation is in camera axes
    w = weights[chosen]
    total = w.sum(-1, keepdim=True).clamp(min=1e-12)
    centre = (canvas - 1) / 2.0

    def spread(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (pixels * w[..., None]).sum(-2) / total
        rms = (((pixels - mean[:, None]) ** 2).sum(-1) * w).sum(-1, keepdim=True).div(total).sqrt()
        return mean, rms

    target_mean, target_rms = spread(target[chosen])
    unit = torch.zeros(len(chosen), 3, dtype=camera0.dtype, device=camera0.device)
    unit[:, 0] = 1.0
    candidates = []
    for rotations in (upright, upside_down):
        # At s = 1 the body spans rms px about its mean; pixels scale with s about the crop's centre.
        body_mean, body_rms = spread(project(rotations, unit, shape0[chosen])[0])
        scale = (target_rms / body_rms.clamp(min=1e-6)).clamp(min=2 * MIN_CAMERA_SCALE)
        shift = (target_mean - centre) / (canvas / 2 * scale) - (body_mean - centre) / (canvas / 2)
        camera = torch.cat([scale, shift], dim=-1)
        error = _keypoint_error(project(rotations, camera, shape0[chosen])[0], target[chosen], w)
        candidates.append((rotations, camera, error))
    flip = (candidates[1][2] < candidates[0][2])[:, None]
    rotations0, camera0 = rotations0.clone(), camera0.clone()
    rotations0[chosen] = torch.where(flip[..., None, None], candidates[1][0], candidates[0][0])
    camera0[chosen] = torch.where(flip, candidates[1][1], candidates[0][1])
    restarted = torch.zeros_like(fitted)
    restarted[chosen] = True
    return rotations0, camera0, restarted


def _fit_both_ways(body, pose_vector, camera, keypoints2d, scores, **kwargs) -> KeypointFit:
    """``try_turned_round``: one batched fit from the network's bodies and from them turned round; per person the
    fit with the lower final loss."""
    from lowres_hps.body.flip import turn_round_pose_vector

    config = replace(kwargs.pop("config"), try_turned_round=False)
    batch = pose_vector.shape[0]
    starts = torch.cat([pose_vector, turn_round_pose_vector(pose_vector, body.pose_spec)])
    both = fit_body_to_keypoints(body, starts, camera.repeat(2, 1), keypoints2d.repeat(2, 1, 1), scores.repeat(2, 1),
                                 config=config, **kwargs)
    turned = both.objective[batch:] < both.objective[:batch]

    def pick(values: torch.Tensor) -> torch.Tensor:
        chosen = turned.view(-1, *[1] * (values.ndim - 1))
        return torch.where(chosen, values[batch:], values[:batch])

    return KeypointFit(pose_vector=pick(both.pose_vector), camera=pick(both.camera), fitted=both.fitted[:batch],
                       swapped=pick(both.swapped), error_before=both.error_before[:batch],
                       error_after=pick(both.error_after), objective=pick(both.objective), turned_round=turned,
                       restarted=both.restarted[:batch])
