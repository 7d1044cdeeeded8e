"""SSPSE (Cha et al., Appl. Sci. 2021): 3D body pose and shape learnt from single unlabelled images.

Four self-supervised tasks train a 3D body regressor (the paper's f^Feat and f^Mesh; here a
:class:`~lowres_hps.models.body3d.Body3DNet`) on real people without 2D or 3D labels: three image manipulations
(jigsaw puzzle, rotation, centre inpainting) that enrich its features, and the neural rendering of its mesh,
textured by a texture net, against the person's pixels and mask. Every part is a switch of :class:`SSPSEConfig`:

* ``stage``: ``"pretrain"`` (T1 of Algorithm 1: the network frozen; the pretext heads, the discriminator and the
  texture net learn, Eqs. 2-6) or ``"mesh"`` (T2: the network learns from L_IM + L_NR, Eq. 1, with the heads and the
  texture net frozen, and the discriminator goes on learning, Eq. 11).
* ``pretext``: any of ``jigsaw`` (Eq. 2, D = 2: 24 permutations), ``rotation`` (Eq. 3, 4 classes) and ``inpainting``
  (Eq. 4, MSE + LSGAN, 0.999 / 0.001): Table 9's rows.
* ``rendering``: any of ``rgb`` (L_RGB, Eq. 6 against mask x image), ``mask`` (L_mask, Eq. 10) and ``real``
  (L_real, Eq. 9: the render composited on a random real background should fool the discriminator): Table 5's rows
  (``-L_real -L_mask`` is ``("rgb",)``).
* ``supervision``: ``self`` (no labels), ``weak`` (2D joints) or ``semi`` (3D joints and their projection), the
  optional joint loss, on labelled people of another set (SynthLR) drawn alongside the unlabelled ones.
* ``lambda_teacher`` (not in the paper; 0 turns it off): a 2D joint loss on the unlabelled people themselves, against
  a high-resolution 2D teacher's keypoints (pseudo-labels, no human labels;
  :func:`~lowres_hps.apis.unlabelled.label_people`), as the paper's masks come from another network (Mask R-CNN).

How it maps onto our low-resolution setting:

* Each unlabelled person is cropped by the low-resolution protocol at every resolution range
  (:class:`~lowres_hps.data.multires_dataset.MultiResolutionDataset`); each step shows the network one range per
  person, drawn at random. The RGB target and the mask come from the person's highest-resolution crop (range 0),
  so a low-resolution input is asked to render the person as seen sharply. The discriminator's real images are the
  inputs themselves (as blurred as the inpainted fakes made from them), at the render size.
* The centre patch is a quarter of the canvas side (32 px at 128): the paper's 64 px of a 224 px input is 0.29 of the
  side, rounded down to the decoder's power of two.
* Jigsaw tiles are fed at their own size (64 px at 128) rather than resized to the canvas: 4x cheaper, and the
  network is fully convolutional with pooled features.
* Renders, masks and the discriminator's images are ``render_size`` (64) px; the texture is one colour per face,
  unlit.
* The network's batch-norm statistics are frozen (its BN layers kept in eval mode): rotated, holed and tiled crops
  would otherwise drift the statistics that inference uses.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from lowres_hps.geometry.camera import project_to_crop
from lowres_hps.models.sspse import SelfSupervisedNet
from lowres_hps.render.rasterizer import rasterize

__all__ = ["PRETEXT_TASKS", "RENDERING_LOSSES", "SUPERVISION", "STAGES", "SSPSEConfig", "SSPSELoss", "PairedDataset",
           "jigsaw_tiles", "rotate_quarters", "cut_hole", "paste_patch", "lsgan", "frozen", "stage_parameters",
           "unwrap"]

PRETEXT_TASKS = ("jigsaw", "rotation", "inpainting")
RENDERING_LOSSES = ("rgb", "mask", "real")
SUPERVISION = ("self", "weak", "semi")
STAGES = ("pretrain", "mesh")


@dataclass
class SSPSEConfig:
    """Switches and weights of :class:`SSPSELoss` (the module docstring).

    Attributes:
        stage: ``pretrain`` (T1) or ``mesh`` (T2).
        pretext: the image-manipulation tasks in use (L_IM).
        rendering: the neural-rendering terms in use (L_NR; the discriminator's own L_disc comes with ``real``).
        supervision: ``self``, ``weak`` (2D joints) or ``semi`` (3D joints): what the labelled batch adds.
        lambda_*: weights (the paper's are all 1; ``inpaint_mse`` and ``inpaint_adv`` are Eq. 4's 0.999 / 0.001).
        lambda_joints: weight of the joint loss of ``weak``/``semi`` (RSC-Net's Eq. 7 weights inside).
        lambda_teacher: weight of the 2D loss on the unlabelled people's own teacher keypoints (0: off).
        mask_loss: ``mse`` (Eq. 10) or ``inside``: only the body's pixels outside the person's mask cost (a person's
            mask holds clothes and hair that the body cannot cover; the one-way term of
            :mod:`lowres_hps.methods.sta`'s ``inside``), both per pixel of the render.
        lambda_shape: weight of the squared distance of the shape to the network's training mean (not in the paper;
            0 turns it off). The masks hold clothes, so without it the mask term fattens the bodies.
        render_size: side (px) of renders, masks and the discriminator's images.
        sigma: SoftRas sharpness at that size (px^2) for the mesh stage's soft renders.
        ranges: resolution ranges the network's inputs are drawn from (one per person and step).
    """

    stage: str = "mesh"
    pretext: tuple[str, ...] = PRETEXT_TASKS
    rendering: tuple[str, ...] = RENDERING_LOSSES
    supervision: str = "self"
    lambda_jigsaw: float = 1.0
    lambda_rotation: float = 1.0
    lambda_inpainting: float = 1.0
    inpaint_mse: float = 0.999
    inpaint_adv: float = 0.001
    lambda_rgb: float = 1.0
    lambda_mask: float = 1.0
    lambda_real: float = 1.0
    lambda_disc: float = 1.0
    lambda_joints: float = 1.0
    lambda_teacher: float = 0.0
    mask_loss: str = "mse"
    lambda_shape: float = 0.0
    render_size: int = 64
    sigma: float = 0.05
    ranges: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self) -> None:
        self.pretext = tuple(self.pretext)
        self.rendering = tuple(self.rendering)
        self.ranges = tuple(int(r) for r in self.ranges)
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        for name, given, allowed in (("pretext", self.pretext, PRETEXT_TASKS),
                                     ("rendering", self.rendering, RENDERING_LOSSES)):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}; choose from {list(allowed)}")
        if self.mask_loss not in ("mse", "inside"):
            raise ValueError(f"mask_loss must be 'mse' or 'inside', got {self.mask_loss!r}")
        if self.supervision not in SUPERVISION:
            raise ValueError(f"supervision must be one of {SUPERVISION}, got {self.supervision!r}")
        if self.lambda_teacher < 0:
            raise ValueError(f"lambda_teacher must be >= 0, got {self.lambda_teacher}")
        if self.render_size < 16 or self.sigma <= 0 or not self.ranges:
            raise ValueError(f"need render_size >= 16, sigma > 0 and some ranges, got {self.render_size}, "
                             f"{self.sigma}, {self.ranges}")

    def describe(self) -> str:
        """A row name for ablation tables, e.g. ``self, jigsaw+rotation+inpainting, rgb+mask+real``."""
        teacher = ", 2D teacher" if self.lambda_teacher > 0 else ""
        return (f"{self.supervision}, {'+'.join(self.pretext) or 'no pretext'}, "
                f"{'+'.join(self.rendering) or 'no render'}{teacher}")


# ------------------------------------------------------------------------------------------------
# Image manipulations (pure functions, (B, 3, S, S) images of any dtype)


def jigsaw_tiles(images: torch.Tensor, order: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """(B, 3, S, S) images -> (B, grid^2, 3, S/grid, S/grid) tiles, position ``j`` of sample ``b`` holding tile
    ``order[b, j]`` (row-major); ``order`` (B, grid^2) is a row of :func:`~lowres_hps.models.sspse.jigsaw_permutations`."""
    b, c, h, w = images.shape
    th, tw = h // grid, w // grid
    tiles = images[:, :, : th * grid, : tw * grid].reshape(b, c, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(b, grid * grid, c, th, tw)
    return torch.gather(tiles, 1, order.to(images.device)[:, :, None, None, None].expand(-1, -1, c, th, tw))


def rotate_quarters(images: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S) square images, each rotated counter-clockwise by ``quarters[b]`` x 90 degrees."""
    out = images.clone()
    for k in range(1, 4):
        chosen = quarters == k
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], k, dims=(-2, -1))
    return out


def _centre(size: int, patch: int) -> slice:
    start = (size - patch) // 2
    return slice(start, start + patch)


def cut_hole(images: torch.Tensor, patch: int, fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase the centre ``patch`` x ``patch`` of (B, 3, S, S) images with the colour ``fill`` (3,) (the network's
    mean pixel, which normalises to 0). Returns ``(holed images, the erased patches (B, 3, P, P))``."""
    rows, cols = _centre(images.shape[-2], patch), _centre(images.shape[-1], patch)
    holed = images.clone()
    holed[:, :, rows, cols] = fill.to(images.dtype).view(1, 3, 1, 1)
    return holed, images[:, :, rows, cols]


def paste_patch(images: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) float images with their centre replaced by (B, 3, P, P) patches (differentiable in both)."""
    p = patches.shape[-1]
    rows, cols = _centre(images.shape[-2], p), _centre(images.shape[-1], p)
    pad = (cols.start, images.shape[-1] - cols.stop, rows.start, images.shape[-2] - rows.stop)
    inside = F.pad(torch.ones_like(patches[:, :1]), pad)
    return images * (1 - inside) + F.pad(patches, pad)


def lsgan(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Mean LSGAN loss ``(D(x) - target)^2`` (Eqs. 4, 5, 9, 11)."""
    return (scores - target).pow(2).mean()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` take no gradient inside (a generator's term through the discriminator)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def unwrap(model: nn.Module) -> SelfSupervisedNet:
    """The :class:`SelfSupervisedNet` inside a DDP or compile wrapper."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    if not isinstance(inner, SelfSupervisedNet):
        raise TypeError(f"SSPSE trains a SelfSupervisedNet, got {type(inner).__name__}")
    return inner


def stage_parameters(model: SelfSupervisedNet, config: SSPSEConfig) -> list[str]:
    """Set which parts learn in ``config.stage`` (``requires_grad``) and return their names. T1: the pretext heads in
    use, the discriminator (when inpainting or ``real`` needs it) and the texture net (when rendering RGB); the
    network is frozen. T2: the network, and the discriminator when ``real`` is on."""
    model.requires_grad_(False)
    if config.stage == "pretrain":
        parts = [name for name in config.pretext]
        if "inpainting" in config.pretext:
            parts.append("discriminator")
        if "rgb" in config.rendering or "real" in config.rendering:
            parts.append("texture")
    else:
        parts = ["network"] + (["discriminator"] if "real" in config.rendering else [])
    for name in dict.fromkeys(parts):
        getattr(model, name).requires_grad_(True)
    return list(dict.fromkeys(parts))


# ------------------------------------------------------------------------------------------------
# Data


class PairedDataset(Dataset):
    """Unlabelled people, each with a labelled person drawn at random from ``labelled`` (weak and semi
    supervision): items ``{"real": unlabelled[i], "labelled": labelled[j]}``. ``j`` comes from numpy's global
    generator, which the trainer seeds per sample, so a resumed run draws the same pairs."""

    def __init__(self, unlabelled: Dataset, labelled: Dataset | None = None) -> None:
        self.unlabelled = unlabelled
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.unlabelled)

    def __getitem__(self, index: int) -> dict:
        item = {"real": self.unlabelled[index]}
        if self.labelled is not None:
            item["labelled"] = self.labelled[int(np.random.randint(len(self.labelled)))]
        return item


# ------------------------------------------------------------------------------------------------
# The loss


@dataclass
class _Views:
    """One step's inputs: the drawn-resolution crops (B, 3, S, S) uint8 with their ranges, and the targets at the
    render size: the sharp crop in [0, 1] (B, 3, R, R), the mask (B, R, R) and which people have one (B,)."""

    images: torch.Tensor
    ranges: torch.Tensor
    sharp: torch.Tensor
    mask: torch.Tensor
    has_mask: torch.Tensor


class SSPSELoss:
    """``loss(model, batch)`` of :class:`~lowres_hps.engine.trainer.Task` for a :class:`SelfSupervisedNet`.

    Args:
        config: the switches.
        body: the network's body model.
        backgrounds: (N, 3, R, R) float [0, 1] real backgrounds for L_real's composites, or None to use the other
            people's sharp crops of the batch (rolled by one).
        joint_loss: ``loss(model, batch)`` on the labelled people (e.g. :class:`~lowres_hps.methods.rsc.RSCLoss`);
            needed by ``weak`` and ``semi``.
        teacher_loss: ``loss(model, batch)`` on the unlabelled people's teacher keypoints (their ``keypoints2d`` /
            ``visible2d``; e.g. an :class:`~lowres_hps.methods.rsc.RSCLoss` with the 2D term alone); needed in the
            mesh stage when ``lambda_teacher`` is above 0.
        mean_shape: (S,) the shape ``lambda_shape`` pulls towards (the network's training mean); needed when it is
            above 0.

    Batches: ``{"real": MultiResolutionDataset items made with_masks, "labelled": ...}`` (a :class:`PairedDataset`),
    or the unlabelled items alone.

    Logs per step: every term of the stage (zeros for switched-off ones, so the columns stay the same), the pretext
    accuracies (``acc_jigsaw``, ``acc_rotation``) and ``mask_iou`` of the render.
    """

    def __init__(self, config: SSPSEConfig, body, backgrounds: torch.Tensor | None = None,
                 joint_loss=None, mean_shape: torch.Tensor | None = None, teacher_loss=None) -> None:
        if config.supervision != "self" and joint_loss is None:
            raise ValueError(f"supervision {config.supervision!r} needs a joint loss on labelled people")
        if config.lambda_teacher > 0 and config.stage == "mesh" and teacher_loss is None:
            raise ValueError("lambda_teacher > 0 needs a teacher loss on the unlabelled people's keypoints")
        if config.lambda_shape > 0 and mean_shape is None:
            raise ValueError("lambda_shape > 0 needs the network's mean shape")
        self.mean_shape = None if mean_shape is None else torch.as_tensor(mean_shape, dtype=torch.float32)
        self.config = config
        self.body = body
        self.backgrounds = backgrounds
        self.joint_loss = joint_loss
        self.teacher_loss = teacher_loss

    # -- inputs

    def views(self, batch: dict, canvas: int) -> _Views:
        """Draw one resolution range per person among ``config.ranges`` (torch's generator: seeded by the trainer)."""
        real = batch.get("real", batch)
        images, ranges = real["images"], real["range_index"]
        b = images.shape[0]
        allowed = torch.tensor([r for r in self.config.ranges if r < images.shape[1]], device=images.device)
        if not len(allowed):
            raise ValueError(f"none of the ranges {self.config.ranges} is in the batch's {images.shape[1]}")
        pick = allowed[torch.randint(len(allowed), (b,))].to(images.device)
        rows = torch.arange(b, device=images.device)
        size = self.config.render_size
        sharp = F.interpolate(images[:, 0].float() / 255.0, size=(size, size), mode="area")
        mask = real.get("silhouette", torch.zeros(b, canvas, canvas, device=images.device)).float()
        mask = F.interpolate(mask[:, None], size=(size, size), mode="area")[:, 0]
        has = real.get("has_silhouette", torch.zeros(b, device=images.device)).float()
        return _Views(images[rows, pick], ranges[rows, pick], sharp, mask, has)

    # -- the mesh and its render

    def render(self, net: SelfSupervisedNet, pose: torch.Tensor, camera: torch.Tensor, colours: torch.Tensor,
               soft: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) pose vectors, (B, 3) crop cameras and (B, F, 3) face colours -> ``(rgb (B, 3, R, R) on black,
        alpha (B, R, R))`` at the render size."""
        cfg, ncfg = self.config, net.config
        if self.body.device != pose.device:
            self.body.to(pose.device)
        with torch.autocast(pose.device.type, enabled=False):  # skinning in bf16 moves vertices by centimetres
            out = self.body.forward_vector(pose.float().to(self.body.dtype))
            keypoints, _ = out.keypoints(ncfg.convention)
            _, translation = project_to_crop(keypoints, camera.float().to(self.body.dtype), ncfg.canvas,
                                             ncfg.crop_focal)
            vertices = out.vertices + translation[:, None]
            size = cfg.render_size
            centre = torch.full((2,), (size - 1) / 2.0, dtype=vertices.dtype, device=vertices.device)
            options = {"sigma": cfg.sigma} if soft else {}
            fragments = rasterize(vertices, out.faces, ncfg.crop_focal * size / ncfg.canvas, centre, (size, size),
                                  "soft" if soft else "hard", face_colors=colours.float().to(vertices.dtype),
                                  cull_backfaces=True, **options)
        return fragments.rgb.permute(0, 3, 1, 2).float(), fragments.alpha.float()

    def background_images(self, views: _Views) -> torch.Tensor:
        """(B, 3, R, R) real backgrounds in [0, 1] for L_real's composites."""
        b = views.sharp.shape[0]
        if self.backgrounds is None or not len(self.backgrounds):
            return views.sharp.roll(1, dims=0)
        chosen = torch.randint(len(self.backgrounds), (b,))
        return self.backgrounds[chosen].to(views.sharp.device, views.sharp.dtype)

    # -- the step

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.config
        net = unwrap(model)
        for module in net.network.modules():  # frozen BN statistics (module docstring)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        canvas = net.config.canvas
        views = self.views(batch, canvas)
        x, ranges = views.images, views.ranges
        b = x.shape[0]
        device = x.device
        train_network = cfg.stage == "mesh"
        grad = torch.enable_grad() if train_network else torch.no_grad()
        logs: dict[str, Any] = {}
        zero = torch.zeros((), device=device)
        total = zero

        # Every full-size view in one network call: the crop, its rotation and its holed copy.
        batch_views = [x]
        quarters = torch.randint(4, (b,), device=device)
        if "rotation" in cfg.pretext:
            batch_views.append(rotate_quarters(x, quarters))
        if "inpainting" in cfg.pretext:
            fill = (net.network.pixel_mean.flatten()).clamp(0, 255).round()
            holed, patches = cut_hole(x, net.heads_config.patch, fill)
            batch_views.append(holed)
        with grad:
            out = model(torch.cat(batch_views), ranges.repeat(len(batch_views)))
        features = out["features"].float().split(b)
        feats = features[0]
        pose, camera = out["pose_vector"][:b].float(), out["camera"][:b].float()
        position = 1

        # L_IM: pretext tasks (Eqs. 2-4)
        loss_jigsaw = loss_rotation = loss_inpainting = loss_adv_inp = zero
        acc_jigsaw = acc_rotation = zero
        fake_inpainted = None
        if "jigsaw" in cfg.pretext:
            classes = torch.randint(len(net.permutations), (b,), device=device)
            tiles = jigsaw_tiles(x, net.permutations[classes], net.heads_config.grid)
            with grad:
                tile_out = model(tiles.flatten(0, 1), ranges.repeat_interleave(tiles.shape[1]))
            tile_features = tile_out["features"].float().view(b, -1)
            logits = net.jigsaw(torch.cat([feats, tile_features], dim=1))
            loss_jigsaw = F.cross_entropy(logits, classes)
            acc_jigsaw = (logits.argmax(-1) == classes).float().mean().detach()
        if "rotation" in cfg.pretext:
            logits = net.rotation(features[position])
            position += 1
            loss_rotation = F.cross_entropy(logits, quarters)
            acc_rotation = (logits.argmax(-1) == quarters).float().mean().detach()
        if "inpainting" in cfg.pretext:
            predicted = net.inpainting(features[position])
            target = patches.float() / 127.5 - 1.0
            loss_mse = (predicted - target).pow(2).mean()
            fake_inpainted = self._to_disc(paste_patch(x.float() / 127.5 - 1.0, predicted))
            with frozen(net.discriminator):
                loss_adv_inp = lsgan(net.discriminator(fake_inpainted), 1.0)
            loss_inpainting = cfg.inpaint_mse * loss_mse + cfg.inpaint_adv * loss_adv_inp
        total = total + cfg.lambda_jigsaw * loss_jigsaw + cfg.lambda_rotation * loss_rotation \
            + cfg.lambda_inpainting * loss_inpainting
        logs.update(loss_jigsaw=loss_jigsaw.detach(), loss_rotation=loss_rotation.detach(),
                    loss_inpainting=loss_inpainting.detach(), acc_jigsaw=acc_jigsaw, acc_rotation=acc_rotation)

        # L_NR: neural rendering (Eqs. 6, 8-11)
        loss_rgb = loss_mask = loss_real = zero
        fake_render = None
        mask_iou = zero
        if cfg.rendering:
            colours = net.texture(feats)
            rgb, alpha = self.render(net, pose if train_network else pose.detach(),
                                     camera if train_network else camera.detach(), colours, soft=train_network)
            has = views.has_mask
            people = has.sum().clamp(min=1)
            target = views.sharp * views.mask[:, None]
            if "rgb" in cfg.rendering:
                loss_rgb = ((rgb - target).pow(2).mean((1, 2, 3)) * has).sum() / people
            if "mask" in cfg.rendering and train_network:
                error = (alpha - views.mask).pow(2) if cfg.mask_loss == "mse" else alpha * (1 - views.mask)
                loss_mask = (error.mean((1, 2)) * has).sum() / people
            if "real" in cfg.rendering and train_network:
                composite = rgb + (1 - alpha[:, None]) * self.background_images(views)
                fake_render = composite * 2 - 1
                with frozen(net.discriminator):
                    loss_real = lsgan(net.discriminator(fake_render), 1.0)
            with torch.no_grad():
                hard, truth = alpha > 0.5, views.mask > 0.5
                union = (hard | truth).sum((1, 2)).float()
                iou = (hard & truth).sum((1, 2)).float() / union.clamp(min=1)
                mask_iou = (iou * has).sum() / people
        total = total + cfg.lambda_rgb * loss_rgb + cfg.lambda_mask * loss_mask + cfg.lambda_real * loss_real
        loss_shape = zero
        if cfg.lambda_shape > 0 and train_network:
            _, shape = self.body.pose_spec.split(pose)
            loss_shape = (shape - self.mean_shape.to(shape.device)).pow(2).mean()
            total = total + cfg.lambda_shape * loss_shape
        logs.update(loss_rgb=loss_rgb.detach(), loss_mask=loss_mask.detach(), loss_real=loss_real.detach(),
                    loss_shape=loss_shape.detach(), mask_iou=mask_iou)

        # The discriminator (Eq. 5 in T1, Eq. 11 in T2): the inputs as they are against the detached fakes.
        loss_disc = zero
        fakes = [f.detach() for f in (fake_inpainted, fake_render) if f is not None]
        if fakes and net.discriminator.layers[0].weight.requires_grad:
            real_images = self._to_disc(x.float() / 127.5 - 1.0)
            loss_disc = lsgan(net.discriminator(real_images), 1.0) + sum(lsgan(net.discriminator(f), 0.0) for f in fakes)
            total = total + cfg.lambda_disc * loss_disc
        logs["loss_disc"] = loss_disc.detach()

        # The optional joint loss on labelled people (weak / semi).
        loss_joints = zero
        if cfg.supervision != "self" and train_network:
            loss_joints, _ = self.joint_loss(model, batch["labelled"])
            total = total + cfg.lambda_joints * loss_joints
        logs["loss_joints"] = loss_joints.detach()

        # The optional 2D teacher's keypoints of the unlabelled people themselves.
        loss_teacher = zero
        if cfg.lambda_teacher > 0 and train_network:
            loss_teacher, _ = self.teacher_loss(model, batch.get("real", batch))
            total = total + cfg.lambda_teacher * loss_teacher
        logs["loss_teacher"] = loss_teacher.detach()
        return total, logs

    def _to_disc(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) [-1, 1] -> the discriminator's size."""
        size = self.config.render_size
        return F.interpolate(images, size=(size, size), mode="area")
