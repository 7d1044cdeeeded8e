"""SSPSE's extra networks: output shapes, the 24 jigsaw classes, the texture's start, and a wrapper that is the
3D network to its callers."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.body3d import Body3DConfig, build_body3d_model
from lowres_hps.models.sspse import (
    InpaintingDecoder,
    JigsawHead,
    PatchDiscriminator,
    RotationHead,
    SelfSupervisedNet,
    SSPSEHeadsConfig,
    TextureNet,
    jigsaw_permutations,
)


def test_jigsaw_permutations_are_every_order_once():
    perms = jigsaw_permutations(2)
    assert perms.shape == (24, 4)
    assert len({tuple(p) for p in perms.tolist()}) == 24
    assert torch.equal(perms[0], torch.arange(4))
    assert (perms.sort(dim=1).values == torch.arange(4)).all()
    with pytest.raises(ValueError, match="grid"):
        jigsaw_permutations(4)


@pytest.mark.parametrize("patch", [8, 16, 32, 64])
def test_inpainting_decoder_gives_the_patch(patch):
    decoder = InpaintingDecoder(20, patch=patch, channels=32)
    out = decoder(torch.randn(3, 20))
    assert out.shape == (3, 3, patch, patch)
    assert out.abs().max() <= 1


@pytest.mark.parametrize("size", [16, 32, 64])
def test_discriminator_scores_each_image(size):
    disc = PatchDiscriminator(size, channels=8)
    assert disc(torch.randn(5, 3, size, size)).shape == (5,)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    if size == 64:
        assert len(convs) == 6  # the 6-conv discriminator of the reference code


def test_heads_and_texture_shapes():
    assert JigsawHead(10, grid=2, hidden=16)(torch.randn(2, 50)).shape == (2, 24)
    assert RotationHead(10, hidden=16)(torch.randn(2, 10)).shape == (2, 4)
    texture = TextureNet(10, num_faces=7, rank=4)
    colours = texture(torch.randn(2, 10))
    assert colours.shape == (2, 7, 3)
    assert torch.allclose(colours, torch.tensor([0.78, 0.67, 0.59]).expand(2, 7, 3), atol=0.01)  # starts grey


def test_config_checks_sizes():
    with pytest.raises(ValueError, match="patch"):
        SSPSEHeadsConfig(patch=24)
    with pytest.raises(ValueError, match="disc_size"):
        SSPSEHeadsConfig(disc_size=48)
    assert SSPSEHeadsConfig().to_dict()["grid"] == 2


def test_wrapper_is_the_network_to_callers():
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    network = build_body3d_model(config, pretrained=False).eval()
    heads = SSPSEHeadsConfig(feature_dim=network.backbone.feature_dim, num_faces=11, patch=16, disc_size=32,
                             hidden=16, decoder_channels=16, disc_channels=8, texture_rank=4)
    model = SelfSupervisedNet(network, heads).eval()
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    ranges = torch.tensor([0, 3])
    with torch.no_grad():
        ours, theirs = model(images, ranges), network(images, ranges)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert model.config is network.config and model.permutations.shape == (24, 4)
    with pytest.raises(ValueError, match="images"):
        model(images[0], ranges)
