"""SSPSE's extra networks (Cha et al., Appl. Sci. 2021, Tables 1-3): pretext heads, a discriminator and a texture
network around a 3D body regressor's features.

:class:`SelfSupervisedNet` holds a :class:`~lowres_hps.models.body3d.Body3DNet` (``network``: the paper's f^Feat and
f^Mesh) and the parts the self-supervision trains with it:

* :class:`JigsawHead` (f^Jigsaw, Table 1): the features of the whole crop and of its D x D tiles in their shuffled
  order, concatenated -> which of the (D^2)! permutations shuffled them.
* :class:`RotationHead` (f^Rot, Table 2): features of a rotated crop -> which of 4 rotations. (The paper's Table 2
  repeats Table 1's sizes; its text gives the 4 classes used here.)
* :class:`InpaintingDecoder` (f^Inp, Table 3): DCGAN-style transposed convolutions from the features of a crop with a
  hole to the missing centre patch, ``tanh`` in [-1, 1].
* :class:`PatchDiscriminator` (f^Disc): 6 convolutions, an LSGAN score per image (no sigmoid).
* :class:`TextureNet` (f^Tex): one RGB colour per face of the body mesh (Z = 1 texel per face), sigmoid in [0, 1].

Widths are smaller than the paper's (512 hidden units instead of 2048, 256 decoder channels instead of 512): the
features here are 2,419-d and the run is sized for a CPU. The texture net is low-rank: features -> ``rank`` codes ->
a per-face colour basis, so 27,420 faces x 3 colours cost ``rank`` x 82,260 weights, not 2,419 x 82,260.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import permutations
from typing import Any

import torch
from torch import nn

from lowres_hps.core.checks import check_shape

__all__ = ["SSPSEHeadsConfig", "JigsawHead", "RotationHead", "InpaintingDecoder", "PatchDiscriminator", "TextureNet",
           "SelfSupervisedNet", "jigsaw_permutations", "ROTATION_CLASSES"]

ROTATION_CLASSES = 4
"""Rotations by 0, 90, 180 and 270 degrees (Eq. 3)."""

_TEXTURE_START = (0.78, 0.67, 0.59)  # the renderer's skin-like default albedo: the texture starts there


def jigsaw_permutations(grid: int = 2) -> torch.Tensor:
    """((grid^2)!, grid^2) int64: every order of the tiles, lexicographic; class ``c`` puts tile ``perm[c, j]`` (row
    major) at position ``j``. 24 classes for D = 2."""
    if grid < 2 or grid > 3:
        raise ValueError(f"grid must be 2 or 3 (24 or 362,880 classes), got {grid}")
    return torch.tensor(list(permutations(range(grid * grid))), dtype=torch.int64)


@dataclass
class SSPSEHeadsConfig:
    """Sizes of the SSPSE parts.

    Attributes:
        feature_dim: the regressor's feature size (``Body3DNet.backbone.feature_dim``).
        grid: jigsaw tiles per side (D; the paper chose 2).
        hidden: hidden units of the jigsaw and rotation heads.
        patch: side (px) of the inpainted centre patch; a power of two from 8 to 64 (the decoder doubles from 4 px).
        decoder_channels: channels of the decoder's first transposed convolution (halved at each doubling).
        disc_size: side (px) of the images the discriminator judges (a power of two, at least 16).
        disc_channels: channels of its first convolution (doubled at each halving, up to 8x).
        num_faces: faces of the body mesh the texture colours.
        texture_rank: codes between the features and the per-face colours.
    """

    feature_dim: int = 2419
    grid: int = 2
    hidden: int = 512
    patch: int = 32
    decoder_channels: int = 256
    disc_size: int = 64
    disc_channels: int = 32
    num_faces: int = 27420
    texture_rank: int = 64

    def __post_init__(self) -> None:
        if self.patch < 8 or self.patch > 64 or self.patch & (self.patch - 1):
            raise ValueError(f"patch must be a power of two between 8 and 64, got {self.patch}")
        if self.disc_size < 16 or self.disc_size & (self.disc_size - 1):
            raise ValueError(f"disc_size must be a power of two of at least 16, got {self.disc_size}")
        if min(self.feature_dim, self.hidden, self.decoder_channels, self.disc_channels, self.num_faces,
               self.texture_rank) < 1:
            raise ValueError("sizes must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JigsawHead(nn.Module):
    """(B, (D^2 + 1) * F) features of the crop then its tiles in shuffled order -> (B, (D^2)!) logits (Table 1)."""

    def __init__(self, feature_dim: int, grid: int = 2, hidden: int = 512) -> None:
        super().__init__()
        classes = math.factorial(grid * grid)
        self.layers = nn.Sequential(nn.Linear((grid * grid + 1) * feature_dim, hidden), nn.ReLU(inplace=True),
                                    nn.Dropout(0.5), nn.Linear(hidden, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class RotationHead(nn.Module):
    """(B, F) features of a rotated crop -> (B, 4) logits (Table 2, Eq. 3)."""

    def __init__(self, feature_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                    nn.Linear(hidden, ROTATION_CLASSES))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class InpaintingDecoder(nn.Module):
    """(B, F) features -> (B, 3, P, P) patch in [-1, 1] (Table 3): the features as a 1 x 1 map, a 4 x 4 transposed
    convolution to 4 x 4, then stride-2 transposed convolutions (BN + ReLU) doubling to P, the last with ``tanh``."""

    def __init__(self, feature_dim: int, patch: int = 32, channels: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(feature_dim, channels, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        size, width = 4, channels
        while size * 2 < patch:
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(inplace=True)]
            size, width = size * 2, width // 2
        layers += [nn.ConvTranspose2d(width, 3, 4, 2, 1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.patch = patch

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features[:, :, None, None])


class PatchDiscriminator(nn.Module):
    """(B, 3, S, S) images in [-1, 1] -> (B,) LSGAN scores (Eq. 5): stride-2 4 x 4 convolutions with LeakyReLU
    down to 4 x 4, a 3 x 3 convolution, and a 4 x 4 valid convolution to one score; 6 convolutions at S = 64.

    No batch normalisation: real and fake images are judged in separate calls, and per-call statistics would
    tell them apart."""

    def __init__(self, size: int = 64, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in, width = 3, channels
        while size > 4:
            layers += [nn.Conv2d(width_in, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            width_in, width, size = width, min(width * 2, channels * 8), size // 2
        layers += [nn.Conv2d(width_in, width_in, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                   nn.Conv2d(width_in, 1, 4, 1, 0)]
        self.layers = nn.Sequential(*layers)
        self.size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images).flatten()


class TextureNet(nn.Module):
    """(B, F) features -> (B, num_faces, 3) face colours in [0, 1]: ``sigmoid(base + codes @ basis)``, ``codes`` a
    ReLU layer of ``rank`` units. Starts at a uniform skin-like grey (the renderer's default albedo)."""

    def __init__(self, feature_dim: int, num_faces: int, rank: int = 64) -> None:
        super().__init__()
        self.codes = nn.Sequential(nn.Linear(feature_dim, rank), nn.ReLU(inplace=True))
        self.basis = nn.Linear(rank, num_faces * 3)
        nn.init.normal_(self.basis.weight, std=1e-3)
        start = torch.logit(torch.tensor(_TEXTURE_START)).repeat(num_faces)
        with torch.no_grad():
            self.basis.bias.copy_(start)
        self.num_faces = num_faces

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.basis(self.codes(features))).view(-1, self.num_faces, 3)


class SelfSupervisedNet(nn.Module):
    """A 3D body network with SSPSE's pretext heads, discriminator and texture net.

    ``forward(images, range_index)`` is the wrapped network's (so trainers and DDP call it as a 3D model); the
    losses reach the parts as attributes: ``network``, ``jigsaw``, ``rotation``, ``inpainting``, ``discriminator``
    and ``texture``.
    """

    def __init__(self, network: nn.Module, config: SSPSEHeadsConfig) -> None:
        super().__init__()
        self.network = network
        self.heads_config = config
        f = config.feature_dim
        self.jigsaw = JigsawHead(f, config.grid, config.hidden)
        self.rotation = RotationHead(f, config.hidden)
        self.inpainting = InpaintingDecoder(f, config.patch, config.decoder_channels)
        self.discriminator = PatchDiscriminator(config.disc_size, config.disc_channels)
        self.texture = TextureNet(f, config.num_faces, config.texture_rank)
        self.register_buffer("permutations", jigsaw_permutations(config.grid), persistent=False)

    @property
    def config(self):
        """The wrapped network's :class:`~lowres_hps.models.body3d.Body3DConfig`."""
        return self.network.config

    def forward(self, images: torch.Tensor, range_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        check_shape(images, "B 3 H W", "images")
        return self.network(images, range_index)
