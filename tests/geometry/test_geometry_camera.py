import pytest
import torch

from lowres_hps.geometry.camera import (
    SPIN_CROP_SIZE,
    SPIN_FOCAL_LENGTH,
    PerspectiveCamera,
    crop_to_full_translation,
    full_to_crop_translation,
    perspective_project,
    translation_to_weak_perspective,
    weak_perspective_project,
    weak_perspective_to_translation,
)
from lowres_hps.geometry.rotations import rotation_about_axis
from lowres_hps.geometry.transforms import apply_affine, box_to_crop_affine, invert_affine, normalized_to_pixels

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_perspective_known_values(device, dtype):
    points = torch.tensor([[1.0, 2.0, 10.0], [-0.5, 0.0, 5.0]], dtype=dtype, device=device)
    center = torch.tensor([50.0, 60.0], dtype=dtype, device=device)
    projected = perspective_project(points, 100.0, center)
    assert projected.dtype == dtype and projected.device.type == device.type
    torch.testing.assert_close(projected, torch.tensor([[60.0, 80.0], [40.0, 60.0]], dtype=dtype, device=device))
    per_axis = perspective_project(points, torch.tensor([100.0, 200.0], dtype=dtype, device=device), center)
    torch.testing.assert_close(per_axis[0], torch.tensor([60.0, 100.0], dtype=dtype, device=device))


@pytest.mark.parametrize("dtype", DTYPES)
def test_perspective_batch_rotation_translation(device, dtype):
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 3, 5, 3, generator=generator, dtype=dtype).to(device)
    focal = (torch.rand(2, 3, generator=generator, dtype=dtype) * 1000 + 500).to(device)
    center = (torch.rand(2, 3, 2, generator=generator, dtype=dtype) * 100).to(device)
    rotation = rotation_about_axis("y", torch.rand(2, 3, generator=generator, dtype=dtype)).to(device)
    translation = torch.tensor([0.1, -0.2, 8.0], dtype=dtype, device=device).expand(2, 3, 3)
    projected = perspective_project(points, focal, center, rotation, translation)
    assert projected.shape == (2, 3, 5, 2)
    camera_points = torch.einsum("...ij,...nj->...ni", rotation, points) + translation[..., None, :]
    expected = focal[..., None, None] * camera_points[..., :2] / camera_points[..., 2:] + center[..., None, :]
    torch.testing.assert_close(projected, expected)
    camera = PerspectiveCamera(focal, center, rotation, translation)
    torch.testing.assert_close(camera.project(points), projected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weak_perspective_round_trip_and_spin_formula(device, dtype):
    cam = torch.tensor([[0.9, 0.1, -0.2], [1.3, 0.0, 0.05]], dtype=dtype, device=device)
    translation = weak_perspective_to_translation(cam)
    expected_depth = 2 * SPIN_FOCAL_LENGTH / (SPIN_CROP_SIZE * cam[:, 0])
    torch.testing.assert_close(translation[:, 2], expected_depth)
    torch.testing.assert_close(translation[:, :2], cam[:, 1:])
    torch.testing.assert_close(translation_to_weak_perspective(translation), cam)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weak_perspective_equals_crop_camera_for_a_flat_body(device, dtype):
    # Points in the plane z = 0 of the body frame project identically through the SPIN crop camera.
    generator = torch.Generator().manual_seed(2)
    points = torch.randn(4, 17, 3, generator=generator, dtype=dtype).to(device) * 0.5
    points[..., 2] = 0.0
    cam = torch.tensor([0.8, 0.05, -0.1], dtype=dtype, device=device).expand(4, 3)
    camera = PerspectiveCamera.for_crop(translation=weak_perspective_to_translation(cam))
    from_weak = normalized_to_pixels(weak_perspective_project(points, cam), (SPIN_CROP_SIZE, SPIN_CROP_SIZE))
    torch.testing.assert_close(camera.project(points), from_weak, atol=1e-3 if dtype == torch.float32 else 1e-8,
                               rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_crop_to_full_translation(device, dtype):
    generator = torch.Generator().manual_seed(3)
    points = (torch.randn(2, 10, 3, generator=generator, dtype=dtype) * 0.4).to(device)
    points[..., 2] = 0.0
    crop_translation = torch.tensor([[0.1, 0.2, 40.0], [-0.3, 0.0, 60.0]], dtype=dtype, device=device)
    box_center = torch.tensor([[300.0, 200.0], [90.0, 410.0]], dtype=dtype, device=device)
    box_size = torch.tensor([250.0, 120.0], dtype=dtype, device=device)
    full_focal, full_center = 1100.0, torch.tensor([319.5, 239.5], dtype=dtype, device=device)
    full_translation = crop_to_full_translation(crop_translation, box_center, box_size, 224, full_focal, full_center)

    crop_pixels = PerspectiveCamera.for_crop(translation=crop_translation).project(points)
    crop_affine = box_to_crop_affine(box_center, torch.stack([box_size, box_size], dim=-1), (224, 224))
    via_crop = apply_affine(crop_pixels, invert_affine(crop_affine))
    direct = perspective_project(points, full_focal, full_center, translation=full_translation)
    torch.testing.assert_close(direct, via_crop, atol=1e-2 if dtype == torch.float32 else 1e-8, rtol=0)

    back = full_to_crop_translation(full_translation, box_center, box_size, 224, full_focal, full_center)
    torch.testing.assert_close(back, crop_translation)


def test_crop_camera_principal_point_is_the_crop_centre():
    camera = PerspectiveCamera.for_crop((256, 192), focal=1000.0, dtype=torch.float64)
    torch.testing.assert_close(camera.principal_point, torch.tensor([95.5, 127.5], dtype=torch.float64))
    on_axis = camera.project(torch.tensor([[0.0, 0.0, 5.0]], dtype=torch.float64))
    torch.testing.assert_close(on_axis[0], camera.principal_point)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        perspective_project(torch.zeros(5, 2), 1.0, torch.zeros(2))
    with pytest.raises(ValueError, match="N, 3"):
        perspective_project(torch.zeros(3), 1.0, torch.zeros(2))
    with pytest.raises(ValueError, match="focal"):
        perspective_project(torch.ones(5, 3), torch.ones(3), torch.zeros(2))
    with pytest.raises(ValueError, match="focal"):
        perspective_project(torch.ones(5, 3), torch.ones(1, 1, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="cam"):
        weak_perspective_to_translation(torch.zeros(4))
    with pytest.raises(ValueError, match="box_center"):
        crop_to_full_translation(torch.ones(3), torch.ones(3), 1.0, 224, 1000.0, torch.zeros(2))


def test_gradcheck():
    points = (torch.randn(2, 4, 3, dtype=torch.float64) + torch.tensor([0.0, 0.0, 6.0], dtype=torch.float64))
    focal = torch.tensor([500.0, 700.0], dtype=torch.float64)
    center = torch.tensor([[10.0, 20.0], [5.0, 6.0]], dtype=torch.float64)
    translation = torch.tensor([[0.1, 0.2, 1.0], [0.0, 0.1, 2.0]], dtype=torch.float64)
    inputs = tuple(t.clone().requires_grad_() for t in (points, focal, center, translation))
    assert torch.autograd.gradcheck(lambda p, f, c, t: perspective_project(p, f, c, translation=t), inputs)

    cam = torch.tensor([[0.9, 0.1, -0.2], [1.2, 0.0, 0.3]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(weak_perspective_to_translation, (cam,))
    assert torch.autograd.gradcheck(lambda c: translation_to_weak_perspective(weak_perspective_to_translation(c)),
                                    (cam,))
    assert torch.autograd.gradcheck(weak_perspective_project, (points.clone().requires_grad_(), cam))
    box_center = torch.tensor([[300.0, 200.0], [90.0, 410.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, b: crop_to_full_translation(t, b, 200.0, 224, 1000.0, torch.tensor([320.0, 240.0],
                                                                                      dtype=torch.float64)),
        (translation.clone().requires_grad_(), box_center),
    )
