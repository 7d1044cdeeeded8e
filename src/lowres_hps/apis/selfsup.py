"""Self-supervised fine-tuning of a 3D body model on unlabelled real people (SSPSE, :mod:`lowres_hps.methods.sspse`).

:func:`selfsup_body3d` runs Algorithm 1's two stages in the shared :class:`~lowres_hps.engine.Trainer` (resumable,
with ``metrics.csv``), each in its own folder of ``work_dir``: ``pretrain`` (T1: pretext heads, discriminator and
texture net on the frozen network) then ``mesh`` (T2: the network), and writes the network alone as an ordinary 3D
model whose card names its unlabelled data. :func:`unlabelled_dataset` crops the people of COCO-format files (boxes
and masks; keypoints ignored) by the low-resolution protocol at every resolution range.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lowres_hps.apis.adaptation import AdaptationError

__all__ = ["PRETRAIN_LR_MULT", "unlabelled_dataset", "load_backgrounds", "rsc_joint_loss", "selfsup_body3d"]

PRETRAIN_LR_MULT = {"jigsaw": 10.0, "rotation": 5.0, "inpainting": 1.0, "discriminator": 1.0, "texture": 100.0}
"""T1's learning rates as multiples of 1e-4: the paper's 5e-4, 1e-4, 1e-4 and 0.01 for the rotation predictor,
inpainter, discriminator and texture net; 1e-3 for the jigsaw solver, where the paper's 0.01 left it at chance
(loss ln 24 after 160 steps of 8 people; at 1e-3 it reached 30% accuracy in 140)."""
_PRETRAIN_LR = 1e-4


def unlabelled_dataset(files: Sequence[str | Path], canvas: int, scale_factor: float = 1.25,
                       image_roots: Sequence[str | Path | None] | None = None, augment: bool = True):
    """People of COCO-format json files with boxes and ``segmentation`` masks (keypoints, if any, serve only SSPSE's
    2D teacher term: they are a teacher's pseudo-labels, :func:`~lowres_hps.apis.unlabelled.label_people`), as a
    :class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset` at every resolution range, made
    ``with_masks``. ``augment``: box scale 0.9-1.1, flips, colour jitter 0.2, noise 2 (RSC-Net's, without
    rotations, which the rotation task owns)."""
    from torch.utils.data import ConcatDataset

    from lowres_hps.data.coco import CocoKeypointsReader
    from lowres_hps.data.multires_dataset import MultiResAugmentConfig, MultiResolutionDataset

    roots = list(image_roots) if image_roots is not None else [None] * len(files)
    readers = []
    for path, root in zip(files, roots):
        reader = CocoKeypointsReader(path, root, min_keypoints=0, load_masks=True)
        if not reader.has_mask:
            raise AdaptationError(f"{path}: no person has a segmentation mask; SSPSE needs each person's mask "
                                  f"(write them with `lowres-hps selfsup --collect-only` or another segmenter)")
        if len(reader):
            readers.append(reader)
    if not readers:
        raise AdaptationError(f"no people in {', '.join(map(str, files))}")
    aug = MultiResAugmentConfig(scale=(0.9, 1.1), flip_probability=0.5, color_jitter=0.2, noise_std=2.0) \
        if augment else None
    datasets = [MultiResolutionDataset([reader], canvas=canvas, scale_factor=scale_factor, augment=aug,
                                       with_masks=True) for reader in readers]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def rsc_joint_loss(estimator, lambda_3d: float = 0.0, lambda_2d: float = 5.0):
    """RSC-Net's Eq. 7 joint loss without its parameter term, at one resolution range per step, with the camera-scale
    floor: the 2D term alone (``lambda_3d`` 0) for 2D labels (the unlabelled people's teacher keypoints, or SSPSE's
    weak supervision), 3D and 2D for semi supervision. Weights as RSC-Net's (5)."""
    from lowres_hps.methods.rsc import RSCLoss

    return RSCLoss(estimator.model.config, estimator.body, lambda_params=0.0, lambda_3d=lambda_3d, lambda_2d=lambda_2d,
                   self_supervision=None, feature_loss=None, range_schedule=None, ranges_per_step=1)


def load_backgrounds(folder: str | Path, size: int, per_image: int = 8, seed: int = 0) -> torch.Tensor:
    """(N, 3, size, size) float [0, 1] random square patches of the images in ``folder``: real backgrounds for
    L_real's composites."""
    from lowres_hps.apis.inputs import collect_inputs, load_image
    from lowres_hps.imaging.protocol import resize_images

    sources, _ = collect_inputs([folder])
    rng = np.random.default_rng(seed)
    patches = []
    for source in sources:
        if source.kind != "image":
            continue
        try:
            image, _ = load_image(source.path)
        except (OSError, ValueError):
            continue
        h, w = image.shape[:2]
        for _ in range(per_image):
            side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            patch = torch.from_numpy(np.ascontiguousarray(image[y:y + side, x:x + side])).permute(2, 0, 1)
            patches.append(resize_images(patch, (size, size)).float() / 255.0)
    if not patches:
        raise AdaptationError(f"{folder}: no readable images for backgrounds")
    return torch.stack(patches)


def _train_stage(model, loss, dataset, work_dir: Path, steps: int, batch_size: int, lr: float,
                 lr_mult: dict[str, float], seed: int, device: str, progress_bar: bool, amp: bool,
                 resume: bool) -> dict[str, float]:
    from torch.utils.data import Subset

    from lowres_hps.engine import OptimConfig, Task, Trainer, TrainerConfig

    if steps * batch_size < len(dataset):  # fewer steps than one pass: a fixed random part, so the count is exact
        order = np.random.default_rng(seed).permutation(len(dataset))[: steps * batch_size]
        dataset = Subset(dataset, np.sort(order).tolist())
    steps_per_epoch = len(dataset) // batch_size
    epochs = max(1, math.ceil(steps / steps_per_epoch))
    config = TrainerConfig(
        out_dir=str(work_dir), epochs=epochs, batch_size=batch_size, seed=seed, device=device, num_workers=1,
        optim=OptimConfig(name="adam", lr=lr, lr_mult=lr_mult), log_every=max(1, min(10, steps_per_epoch)),
        ckpt_every_steps=max(1, min(50, steps_per_epoch)), val_every_epochs=0, progress_bar=progress_bar,
        amp=amp, channels_last=True)
    trainer = Trainer(config, Task(model=model, train_dataset=dataset, loss=loss))
    return trainer.fit(resume=resume and trainer.checkpoint_path.is_file())


def selfsup_body3d(
    estimator,
    dataset,
    out: str | Path,
    *,
    work_dir: str | Path,
    config=None,
    pretrain_steps: int = 300,
    steps: int = 600,
    batch_size: int = 8,
    lr: float = 5e-6,
    seed: int = 0,
    backgrounds: torch.Tensor | None = None,
    labelled=None,
    joint_loss=None,
    teacher_loss=None,
    teacher: str | None = None,
    heads=None,
    pretrained_parts: str | Path | None = None,
    resume: bool = True,
    device: str = "cpu",
    amp: bool = True,
    name: str | None = None,
    trained_on: dict[str, Any] | None = None,
    progress_bar: bool = True,
) -> tuple[Path, dict[str, float]]:
    """Fine-tune a copy of a 3D model (a :class:`~lowres_hps.models.body3d.Body3DEstimator`) on unlabelled people
    by SSPSE and write it to ``out`` (``.safetensors`` with its card).

    Args:
        estimator: the starting model (``load_model``).
        dataset: unlabelled people (:func:`unlabelled_dataset`).
        out: the checkpoint to write.
        work_dir: the run's folder (``pretrain/`` and ``mesh/``, each with ``metrics.csv`` and checkpoints); with
            ``resume`` an interrupted run goes on where it stopped.
        config: :class:`~lowres_hps.methods.sspse.SSPSEConfig` of the mesh stage (its ``stage`` is ignored: both
            stages run).
        pretrain_steps, steps: steps of T1 and T2 (each rounded up to whole passes above one pass).
        batch_size: people per step.
        lr: T2's learning rate (the paper's 5e-6; the discriminator goes on at the same rate).
        backgrounds: (N, 3, R, R) real backgrounds for L_real (:func:`load_backgrounds`), or None.
        labelled, joint_loss: labelled people and their loss for ``weak``/``semi`` supervision.
        teacher_loss: the loss on the unlabelled people's 2D teacher keypoints (``config.lambda_teacher`` > 0;
            :func:`rsc_joint_loss`), and ``teacher`` the teacher's name for the model card.
        heads: :class:`~lowres_hps.models.sspse.SSPSEHeadsConfig` (default sizes for the network's features).
        pretrained_parts: a T1 ``model.safetensors`` to start from instead of running T1 (e.g. one T1 shared by
            several T2 ablations).
        device, amp: where and whether in bf16/fp16 autocast.
        name, trained_on: the new model's name and what its card says it saw (e.g. ``{"sources": [...]}``).

    Returns:
        ``(out, metrics)``: the checkpoint and the mesh stage's last metrics.
    """
    from lowres_hps.apis.registry import save_checkpoint
    from lowres_hps.methods.sspse import PairedDataset, SSPSEConfig, SSPSELoss, stage_parameters
    from lowres_hps.models.sspse import SelfSupervisedNet, SSPSEHeadsConfig

    config = config or SSPSEConfig()
    if len(dataset) < batch_size:
        raise AdaptationError(f"only {len(dataset)} unlabelled people, fewer than one batch of {batch_size}")
    network = copy.deepcopy(estimator.model).float()
    heads = heads or SSPSEHeadsConfig(feature_dim=network.backbone.feature_dim,
                                      num_faces=int(estimator.body.faces.shape[0]), disc_size=config.render_size)
    if heads.disc_size != config.render_size:
        raise ValueError(f"the discriminator's size ({heads.disc_size}) must be the render size ({config.render_size})")
    model = SelfSupervisedNet(network, heads)
    spec = estimator.body.pose_spec
    mean_shape = network.regressor.mean_params[spec.rotation_size:spec.vector_size].detach().clone()
    work_dir = Path(work_dir)
    data = PairedDataset(dataset, labelled if config.supervision != "self" else None)
    common = dict(batch_size=batch_size, seed=seed, device=device, progress_bar=progress_bar, amp=amp, resume=resume)

    if pretrained_parts is not None:
        from safetensors.torch import load_file

        state = load_file(str(pretrained_parts))
        parts = {k: v for k, v in state.items() if not k.startswith("network.")}
        missing = [k for k in model.state_dict() if not k.startswith("network.") and k not in parts]
        if missing:
            raise ValueError(f"{pretrained_parts}: not an SSPSE pretraining of these sizes (missing {missing[:3]})")
        model.load_state_dict(parts, strict=False)
    elif pretrain_steps > 0 and stage_parameters(model, dataclasses.replace(config, stage="pretrain")):
        # (T1 is skipped when nothing of it is switched on: no pretext task and no RGB to texture.)
        pretrain = dataclasses.replace(config, stage="pretrain")
        _train_stage(model, SSPSELoss(pretrain, estimator.body, backgrounds), data, work_dir / "pretrain",
                     pretrain_steps, lr=_PRETRAIN_LR, lr_mult=dict(PRETRAIN_LR_MULT), **common)
        # The trainer moved the model to its device and may have made it channels-last: nothing to undo.
    mesh = dataclasses.replace(config, stage="mesh")
    metrics: dict[str, float] = {}
    if steps > 0:
        stage_parameters(model, mesh)
        metrics = _train_stage(model, SSPSELoss(mesh, estimator.body, backgrounds, joint_loss, mean_shape,
                                                teacher_loss), data,
                               work_dir / "mesh", steps, lr=lr, lr_mult={}, **common)
    tuned = model.network.eval().float().to(memory_format=torch.contiguous_format)
    card = estimator.card
    how = {"method": "SSPSE single-image self-supervision (Cha et al., Appl. Sci. 2021)",
           **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(mesh).items() if k != "stage"},
           "pretrain_steps": 0 if pretrained_parts is not None else pretrain_steps, "steps": steps,
           "batch_size": batch_size, "lr": lr, "seed": seed, "people": len(dataset),
           "pretrained_parts": None if pretrained_parts is None else str(pretrained_parts),
           **({"teacher": teacher} if config.lambda_teacher > 0 else {}), **(trained_on or {})}
    new_name = name or f"{card.name}_selfsup"
    sources = (trained_on or {}).get("sources")
    notes = (f"{card.name} fine-tuned by SSPSE self-supervision on {len(dataset)} unlabelled real people"
             + (f" ({', '.join(map(str, sources))})" if sources else "")
             + ("" if config.supervision == "self" else f", with {config.supervision} supervision on labelled people")
             + (f", with the 2D keypoints of the teacher {teacher or 'given'} on them (pseudo-labels)"
                if config.lambda_teacher > 0 else "")
             + "; no human 2D or 3D labels of those people were used.")
    save_checkpoint(tuned, card.adapted(new_name, how, notes=notes), out)
    return Path(out), metrics
