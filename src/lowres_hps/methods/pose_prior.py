"""Training of the adversarial auto-encoder pose prior (:mod:`lowres_hps.models.pose_prior`) and its pose data.

    vectors = torch.cat([pose_vectors_from_synthlr(["data/synthlr/train"]), key_pose_vectors()])
    prior, metrics = fit_pose_prior(vectors, PosePriorConfig(), steps=3000, mirror=True)

:func:`fit_pose_prior` is the AAE loop of Makhzani et al. (2015), as the silhouette-topology adaptation paper
uses it (Section 3.4 a): each step, (1) encoder and decoder lower the reconstruction error of a batch of poses
plus ``lambda_adv`` times the adversarial term that pushes encoded latents to look like uniform draws from
``[-1, 1]^L`` to the discriminator; (2) the discriminator learns to tell uniform draws (label 1) from encoded
latents (label 0). Two Adam optimisers; a fixed seeded hold-out split measures how well unseen poses are
reconstructed.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import roma
import torch
import torch.nn.functional as F

from lowres_hps.body.flip import flip_pose_vector
from lowres_hps.body.pose import ANNY_POSE_SPEC, RegressionPoseSpec, get_pose_spec
from lowres_hps.data.errors import DatasetFileError, load_npz
from lowres_hps.models.pose_prior import PosePrior, PosePriorConfig

__all__ = ["fit_pose_prior", "augment_with_mirrors", "pose_vectors_from_synthlr", "key_pose_vectors"]

_EVAL_CHUNK = 4096  # poses per forward pass when measuring
_NN_QUERIES, _NN_REFERENCES = 256, 4096  # poses compared by nearest-neighbour distance, and training poses


def augment_with_mirrors(pose_vectors: torch.Tensor, body_model: str = "anny") -> torch.Tensor:
    """(N, D) -> (2N, D): the poses, then their left/right mirror images (same order; shapes kept).

    Mirroring is :func:`lowres_hps.body.flip.flip_pose_vector`, an involution: ``out[N + i]`` mirrored is ``out[i]``.
    """
    spec = get_pose_spec(body_model)
    if pose_vectors.ndim != 2:
        raise ValueError(f"pose_vectors must be (N, {spec.vector_size}), got {tuple(pose_vectors.shape)}")
    return torch.cat([pose_vectors, flip_pose_vector(pose_vectors, spec)], dim=0)


def pose_vectors_from_synthlr(folders: str | os.PathLike | Iterable[str | os.PathLike]) -> torch.Tensor:
    """(N, 126) float32: the Anny pose vectors (``pose_vector`` of ``annotations_3d.npz``) of SynthLR folders, in
    order. Their root rotations are in camera axes; a pose prior reads only the body joints.

    Raises:
        FileNotFoundError: a folder without ``annotations_3d.npz``.
        DatasetFileError: an unreadable file, or one without a (N, 126) ``pose_vector`` array (the file is named).
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    vectors = []
    for folder in folders:
        path = Path(folder) / "annotations_3d.npz"
        arrays = load_npz(path)
        array = arrays.get("pose_vector")
        if array is None or array.ndim != 2 or array.shape[1] != ANNY_POSE_SPEC.vector_size:
            got = "none" if array is None else str(tuple(array.shape))
            raise DatasetFileError(f"{path}: expected a (N, {ANNY_POSE_SPEC.vector_size}) pose_vector array, got {got}")
        vectors.append(torch.from_numpy(array).float())
    if not vectors:
        raise ValueError("no SynthLR folders given")
    return torch.cat(vectors)


def key_pose_vectors(spec: RegressionPoseSpec = ANNY_POSE_SPEC) -> torch.Tensor:
    """(K, D) float32: the named key poses of SynthLR (:data:`lowres_hps.data.synth.poses.KEY_POSES`, sorted by
    name), upright (identity root) with the rest shape."""
    from lowres_hps.data.synth.poses import KEY_POSES, key_pose_vector

    shape = torch.tensor(spec.rest_shape, dtype=torch.float64)
    return torch.stack([torch.cat([key_pose_vector(name, spec), shape]) for name in sorted(KEY_POSES)]).float()


def _mean_error(prior: PosePrior, vectors: torch.Tensor) -> float:
    """Mean geodesic reconstruction error in degrees over ``vectors`` (N, D)."""
    with torch.no_grad():
        errors = [prior.reconstruction_error(chunk) for chunk in vectors.split(_EVAL_CHUNK)]
    return math.degrees(float(torch.cat(errors).mean()))


def _nearest_deg(queries: torch.Tensor, references: torch.Tensor) -> float:
    """Mean over ``queries`` (Q, J, 3, 3) of the distance (mean geodesic over joints, degrees) to the nearest of
    ``references`` (R, J, 3, 3)."""
    nearest = [roma.rotmat_geodesic_distance(chunk[:, None], references[None]).mean(-1).amin(1)
               for chunk in queries.split(16)]  # 16 x R x J matrices at a time
    return math.degrees(float(torch.cat(nearest).mean()))


def _mean_rotations(rotations: torch.Tensor) -> torch.Tensor:
    """(N, J, 3, 3) -> (J, 3, 3): each joint's chordal mean rotation (the mean matrix projected onto SO(3))."""
    return roma.special_procrustes(rotations.double().mean(0)).to(rotations.dtype)


def fit_pose_prior(
    pose_vectors: torch.Tensor,
    config: PosePriorConfig | None = None,
    *,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 1e-3,
    lambda_adv: float = 0.05,
    disc_lr: float | None = None,
    holdout: float = 0.1,
    seed: int = 0,
    mirror: bool = False,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> tuple[PosePrior, dict[str, float]]:
    """Train a :class:`~lowres_hps.models.pose_prior.PosePrior` on pose vectors (adversarial auto-encoder).

    Reconstruction loss: squared Frobenius distance between the decoded and the target 3x3 rotation matrices,
    averaged over joints and poses. Adversarial terms: BCE-with-logits of the discriminator, which learns to tell
    latents drawn uniformly from ``[-1, 1]^L`` from encoded ones; the encoder is pushed to fool it.
    The encoder-decoder learning rate decays to 5% along a cosine; the discriminator's stays.

    Args:
        pose_vectors: (N, D) pose vectors of ``config.body_model`` (only the body joints are read), on the device
            to train on.
        config: the prior's architecture (default :class:`PosePriorConfig`).
        steps: optimisation steps (one batch each).
        batch_size: poses per step, drawn with replacement from the training part.
        lr: Adam learning rate of the encoder and decoder.
        lambda_adv: weight of the adversarial term of the encoder.
        disc_lr: Adam learning rate of the discriminator, default ``lr / 10``: a faster one wins the game (accuracy
            near 1) and its gradients then pull the encoder's latents around at the cost of reconstruction
            (SynthLR poses, hidden 256, 1200 steps: 9.2 degrees held out at ``lr``, 5.2 at ``lr / 10``).
        holdout: fraction of the poses held out (a fixed split drawn with ``seed``), in (0, 1).
        seed: seeds the split, the initial weights, the batches and the uniform draws (the global RNG is left as
            it was).
        mirror: add the left/right mirror of every pose after the split, to both parts (a held-out pose's mirror
            is never trained on).
        progress: called as ``progress(step, steps, losses)`` about 100 times, ``losses`` with ``reconstruction``,
            ``adversarial`` and ``discriminator``.

    Returns:
        ``(prior, metrics)``: the prior in eval mode; metrics are ``train_error_deg`` and ``heldout_error_deg``
        (mean geodesic reconstruction error over body joints, degrees), ``untrained_heldout_error_deg`` (the same
        before training), ``identity_heldout_error_deg`` (no prior: 0, for reference),
        ``mean_pose_heldout_error_deg`` (every pose replaced by the per-joint mean of the training poses, for
        scale), ``discriminator_accuracy`` (on the held-out latents and as many uniform draws, at the end),
        ``uniform_sample_nn_deg`` (mean distance from a pose decoded from a uniform latent to the nearest of
        the first 4096 training poses: how plausible the latent box is) and ``heldout_nn_deg`` (the same for
        held-out poses, for scale), ``train_poses``, ``heldout_poses`` and ``steps``.
    """
    config = config if config is not None else PosePriorConfig()
    spec = config.pose_spec
    if pose_vectors.ndim != 2 or pose_vectors.shape[1] != spec.vector_size:
        raise ValueError(f"pose_vectors must be (N, {spec.vector_size}), got {tuple(pose_vectors.shape)}")
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    n = pose_vectors.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 poses (one to train on, one held out), got {n}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    n_held = min(n - 1, max(1, round(n * holdout)))
    device = pose_vectors.device
    generator = torch.Generator().manual_seed(seed)  # CPU draws, moved to the device
    order = torch.randperm(n, generator=generator).to(device)
    vectors = pose_vectors.float()
    held, train = vectors[order[:n_held]], vectors[order[n_held:]]
    if mirror:
        held, train = augment_with_mirrors(held, config.body_model), augment_with_mirrors(train, config.body_model)

    with torch.random.fork_rng(devices=[]):  # initial weights and dropout from the seed, global RNG untouched
        torch.manual_seed(seed)
        return _fit(config, train, held, generator, steps=steps, batch_size=batch_size, lr=lr,
                    disc_lr=lr / 10 if disc_lr is None else disc_lr, lambda_adv=lambda_adv, progress=progress)


def _fit(config: PosePriorConfig, train: torch.Tensor, held: torch.Tensor, generator: torch.Generator, *,
         steps: int, batch_size: int, lr: float, disc_lr: float, lambda_adv: float,
         progress: Callable[[int, int, dict[str, float]], None] | None) -> tuple[PosePrior, dict[str, float]]:
    """The loop of :func:`fit_pose_prior` on its split."""
    device = train.device
    prior = PosePrior(config).to(device)
    untrained = _mean_error(prior.eval(), held)
    with torch.no_grad():
        targets = prior.body_rotations(train)  # (N, J, 3, 3), orthonormalised once
        mean_pose = _mean_rotations(targets)
        held_rotations = prior.body_rotations(held)
        mean_pose_error = math.degrees(float(roma.rotmat_geodesic_distance(held_rotations, mean_pose).mean()))

    autoencoder = [*prior.encoder.parameters(), *prior.decoder.parameters()]  # latent_norm has no parameters
    opt_ae = torch.optim.Adam(autoencoder, lr=lr)
    opt_disc = torch.optim.Adam(prior.discriminator.parameters(), lr=disc_lr, betas=(0.5, 0.999))
    report_every = max(1, steps // 100)
    prior.train()
    for step in range(1, steps + 1):
        for group in opt_ae.param_groups:  # cosine decay to 5% of lr
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps)))
        index = torch.randint(targets.shape[0], (batch_size,), generator=generator).to(device)
        target = targets[index]
        latent = prior.encode_rotations(target)
        reconstructed = prior.decode_rotations(latent)
        reconstruction = (reconstructed - target).square().sum((-1, -2)).mean()
        # The encoder is pushed towards latents the discriminator takes for uniform draws (label 1).
        fooled = prior.discriminate(latent)
        adversarial = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        opt_ae.zero_grad(set_to_none=True)
        (reconstruction + lambda_adv * adversarial).backward()
        opt_ae.step()

        uniform = (torch.rand((batch_size, config.latent_size), generator=generator) * 2.0 - 1.0).to(device)
        logits = prior.discriminate(torch.cat([uniform, latent.detach()]))
        labels = torch.cat([torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)])
        discriminator = F.binary_cross_entropy_with_logits(logits, labels)
        opt_disc.zero_grad(set_to_none=True)
        discriminator.backward()
        opt_disc.step()
        if progress is not None and (step % report_every == 0 or step == steps):
            progress(step, steps, {"reconstruction": reconstruction.item(), "adversarial": adversarial.item(),
                                   "discriminator": discriminator.item()})

    prior.eval()
    with torch.no_grad():
        # Plausibility of the latent box: poses decoded from uniform latents should lie as near the training poses
        # as held-out poses do (not much farther, and not collapsed onto a few poses).
        uniform = (torch.rand((_NN_QUERIES, config.latent_size), generator=generator) * 2.0 - 1.0).to(device)
        references = targets[:_NN_REFERENCES]
        sample_nn = _nearest_deg(prior.decode_rotations(uniform), references)
        heldout_nn = _nearest_deg(held_rotations[:_NN_QUERIES], references)
        encoded = torch.cat([prior.encode(chunk) for chunk in held.split(_EVAL_CHUNK)])
        uniform = (torch.rand(encoded.shape, generator=generator) * 2.0 - 1.0).to(device)
        correct = torch.cat([prior.discriminate(uniform) > 0, prior.discriminate(encoded) <= 0])
    metrics = {
        "train_error_deg": _mean_error(prior, train),
        "heldout_error_deg": _mean_error(prior, held),
        "untrained_heldout_error_deg": untrained,
        "identity_heldout_error_deg": 0.0,
        "mean_pose_heldout_error_deg": mean_pose_error,
        "discriminator_accuracy": float(correct.float().mean()),
        "uniform_sample_nn_deg": sample_nn,
        "heldout_nn_deg": heldout_nn,
        "train_poses": float(train.shape[0]),
        "heldout_poses": float(held.shape[0]),
        "steps": float(steps),
    }
    return prior, metrics
