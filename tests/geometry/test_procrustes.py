import pytest
import roma
import torch

from lowres_hps.geometry.procrustes import procrustes_align, similarity_transform

DTYPES = [torch.float32, torch.float64]


def _random_similarity(batch, dtype, generator):
    rotation = roma.rotvec_to_rotmat(torch.randn(*batch, 3, generator=generator, dtype=dtype))
    scale = torch.rand(batch, generator=generator, dtype=dtype) + 0.5
    translation = torch.randn(*batch, 3, generator=generator, dtype=dtype)
    return scale, rotation, translation


@pytest.mark.parametrize("dtype", DTYPES)
def test_recovers_a_known_similarity(device, dtype):
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(2, 3, 14, 3, generator=generator, dtype=dtype)
    scale, rotation, translation = _random_similarity((2, 3), dtype, generator)
    target = scale[..., None, None] * source @ rotation.transpose(-1, -2) + translation[..., None, :]
    source, target = source.to(device), target.to(device)
    found_scale, found_rotation, found_translation = similarity_transform(source, target)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(found_scale, scale.to(device), atol=tol, rtol=0)
    torch.testing.assert_close(found_rotation, rotation.to(device), atol=tol, rtol=0)
    torch.testing.assert_close(found_translation, translation.to(device), atol=tol, rtol=0)
    aligned = procrustes_align(source, target)
    assert aligned.shape == source.shape and aligned.dtype == dtype and aligned.device.type == device.type
    torch.testing.assert_close(aligned, target, atol=tol * 10, rtol=0)


def test_zero_weights_ignore_outliers():
    generator = torch.Generator().manual_seed(1)
    source = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    scale, rotation, translation = _random_similarity((), torch.float64, generator)
    target = scale * source @ rotation.T + translation
    target[:3] += 5.0  # corrupt three points
    weights = torch.ones(12, dtype=torch.float64)
    weights[:3] = 0.0
    _, found_rotation, _ = similarity_transform(source, target, weights)
    torch.testing.assert_close(found_rotation, rotation, atol=1e-9, rtol=0)
    aligned = procrustes_align(source, target, weights)
    torch.testing.assert_close(aligned[3:], target[3:], atol=1e-9, rtol=0)
    # Unweighted, the outliers pull the fit away.
    assert (procrustes_align(source, target)[3:] - target[3:]).abs().max() > 0.1


def test_alignment_removes_exactly_a_similarity():
    # PA error is invariant to a similarity of the prediction, and not zero for a non-rigid change.
    generator = torch.Generator().manual_seed(2)
    target = torch.randn(17, 3, generator=generator, dtype=torch.float64)
    prediction = target + 0.05 * torch.randn(17, 3, generator=generator, dtype=torch.float64)
    scale, rotation, translation = _random_similarity((), torch.float64, generator)
    moved = scale * prediction @ rotation.T + translation
    torch.testing.assert_close(procrustes_align(moved, target), procrustes_align(prediction, target),
                               atol=1e-9, rtol=0)
    assert (procrustes_align(prediction, target) - target).norm(dim=-1).mean() > 1e-3


def test_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        similarity_transform(torch.zeros(5, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same shape"):
        procrustes_align(torch.zeros(5, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="weights"):
        similarity_transform(torch.zeros(5, 3), torch.zeros(5, 3), torch.ones(4))


def test_gradcheck():
    generator = torch.Generator().manual_seed(3)
    source = torch.randn(2, 8, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 8, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(procrustes_align, (source, target))
