import cv2
import numpy as np
import pytest
import torch

from lowres_hps.geometry.transforms import (
    apply_affine,
    box_to_crop_affine,
    compose_affine,
    invert_affine,
    normalized_to_pixels,
    pixels_to_normalized,
)

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_box_extent_maps_onto_crop_extent(device, dtype):
    center = torch.tensor([[40.0, 70.0], [10.5, -3.0]], dtype=dtype, device=device)
    size = torch.tensor([[80.0, 120.0], [30.0, 40.0]], dtype=dtype, device=device)
    affine = box_to_crop_affine(center, size, (60, 40))
    assert affine.shape == (2, 2, 3) and affine.dtype == dtype and affine.device.type == device.type
    corners = torch.stack([center - size / 2, center + size / 2, center], dim=-2)
    expected = torch.tensor([[-0.5, -0.5], [39.5, 59.5], [19.5, 29.5]], dtype=dtype, device=device)
    torch.testing.assert_close(apply_affine(corners, affine), expected.expand(2, 3, 2), atol=1e-4, rtol=0)


def test_rotation_is_counter_clockwise_like_cv2():
    center = torch.tensor([50.0, 40.0], dtype=torch.float64)
    affine = box_to_crop_affine(center, torch.tensor([101.0, 81.0], dtype=torch.float64), (81, 101), 30.0)
    reference = cv2.getRotationMatrix2D((50.0, 40.0), 30.0, 1.0)  # same centre, scale 1
    np.testing.assert_allclose(affine.numpy(), reference, atol=1e-12)


def test_cv2_warp_moves_a_bright_pixel_where_apply_affine_says():
    image = np.zeros((90, 120), np.float32)
    image[52, 37] = 1.0
    point = torch.tensor([[37.0, 52.0]], dtype=torch.float64)

    # Scale 1, rotation 90 and integer offsets: the pixel lands exactly on one crop pixel.
    affine = box_to_crop_affine(torch.tensor([60.0, 45.0], dtype=torch.float64),
                                torch.tensor([71.0, 71.0], dtype=torch.float64), (71, 71), 90.0)
    crop = cv2.warpAffine(image, affine.numpy(), (71, 71), flags=cv2.INTER_LINEAR)
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    np.testing.assert_allclose(apply_affine(point, affine)[0].numpy(), [x, y], atol=1e-9)
    assert crop.max() == pytest.approx(1.0)

    # Enlarged 2.5 times and rotated: the bilinear blob's centroid is the mapped point.
    affine = box_to_crop_affine(torch.tensor([40.0, 50.0], dtype=torch.float64),
                                torch.tensor([40.0, 40.0], dtype=torch.float64), (100, 100), 30.0)
    crop = cv2.warpAffine(image, affine.numpy(), (100, 100), flags=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[:100, :100]
    centroid = [(crop * xs).sum() / crop.sum(), (crop * ys).sum() / crop.sum()]
    np.testing.assert_allclose(centroid, apply_affine(point, affine)[0].numpy(), atol=0.05)


@pytest.mark.parametrize("dtype", DTYPES)
def test_invert_and_compose(device, dtype):
    generator = torch.Generator().manual_seed(0)
    affine = box_to_crop_affine(torch.rand(3, 2, generator=generator, dtype=dtype) * 100,
                                torch.rand(3, 2, generator=generator, dtype=dtype) * 50 + 10,
                                (64, 48), torch.rand(3, generator=generator, dtype=dtype) * 90).to(device)
    other = box_to_crop_affine(torch.tensor([5.0, 6.0], dtype=dtype), torch.tensor([20.0, 30.0], dtype=dtype),
                               (30, 20), 10.0).to(device)
    points = (torch.rand(3, 5, 2, generator=generator, dtype=dtype) * 100).to(device)
    tol = 1e-3 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(apply_affine(apply_affine(points, affine), invert_affine(affine)), points,
                               atol=tol, rtol=0)
    torch.testing.assert_close(apply_affine(points, compose_affine(other, affine)),
                               apply_affine(apply_affine(points, affine), other), atol=tol, rtol=0)
    identity = compose_affine(invert_affine(affine), affine)
    torch.testing.assert_close(identity, torch.eye(2, 3, dtype=dtype, device=device).expand(3, 2, 3),
                               atol=tol, rtol=0)


def test_normalized_coordinates_match_grid_sample():
    image = torch.arange(5 * 7, dtype=torch.float64).reshape(1, 1, 5, 7)
    pixels = torch.tensor([[0.0, 0.0], [6.0, 4.0], [3.0, 2.0], [1.0, 3.0]], dtype=torch.float64)
    grid = pixels_to_normalized(pixels, (5, 7))
    sampled = torch.nn.functional.grid_sample(image, grid[None, None], align_corners=False)[0, 0, 0]
    torch.testing.assert_close(sampled, image[0, 0, pixels[:, 1].long(), pixels[:, 0].long()])
    torch.testing.assert_close(normalized_to_pixels(grid, (5, 7)), pixels)
    edges = pixels_to_normalized(torch.tensor([[-0.5, -0.5], [6.5, 4.5]]), (5, 7))
    torch.testing.assert_close(edges, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


def test_apply_affine_casts_the_affine_to_the_points():
    affine = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]], dtype=torch.float64)
    out = apply_affine(torch.tensor([[1.0, 1.0]]), affine)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[3.0, 2.0]]))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 3\)"):
        apply_affine(torch.zeros(4, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="N, 2"):
        apply_affine(torch.zeros(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="center"):
        box_to_crop_affine(torch.zeros(3), torch.ones(2), (4, 4))
    with pytest.raises(ValueError, match="output_size"):
        box_to_crop_affine(torch.zeros(2), torch.ones(2), (0, 4))


def test_gradcheck():
    points = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    affine = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(apply_affine, (points, affine))
    center = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    size = (torch.rand(2, 2, dtype=torch.float64) + 1.0).requires_grad_()
    angle = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, s, a: box_to_crop_affine(c, s, (32, 24), a), (center, size, angle))
    well_conditioned = (torch.eye(2, 3, dtype=torch.float64) + 0.1 * torch.randn(2, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(invert_affine, (well_conditioned.requires_grad_(),))
