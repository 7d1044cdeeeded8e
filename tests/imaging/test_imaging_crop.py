import numpy as np
import pytest
import torch

from lowres_hps.geometry.transforms import apply_affine
from lowres_hps.imaging.crop import crop_box, crop_person, enlarge_box, fix_aspect_ratio, warp_box


def test_fix_aspect_ratio_grows_the_short_side_about_the_centre():
    boxes = np.array([[10.0, 20.0, 30.0, 120.0], [0.0, 0.0, 200.0, 100.0]])
    fixed = fix_aspect_ratio(boxes, 0.75)
    np.testing.assert_allclose(fixed, [[-20.0, 20.0, 90.0, 120.0], [0.0, -83.333333, 200.0, 266.666667]], atol=1e-5)
    np.testing.assert_allclose(fixed[:, :2] + fixed[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2)
    as_tensor = fix_aspect_ratio(torch.tensor(boxes), 0.75)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), fixed)


def test_enlarge_box_and_crop_box():
    box = np.array([10.0, 20.0, 40.0, 80.0])
    np.testing.assert_allclose(enlarge_box(box, 1.25), [5.0, 10.0, 50.0, 100.0])
    np.testing.assert_allclose(crop_box(box, (224, 224)), [-20.0, 10.0, 100.0, 100.0])
    with pytest.raises(ValueError, match="factor"):
        enlarge_box(box, 0.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        fix_aspect_ratio(np.zeros(3), 1.0)


def test_crop_outside_the_image_is_zero():
    image = np.full((100, 80, 3), 200, np.uint8)
    # Pixel centres are integers, so this box's edges lie on pixel edges: crop pixel (u, v) is exactly
    # image pixel (u - 40, v - 30), inside the image from u >= 40, v >= 30.
    crop, affine = crop_person(image, np.array([-40.5, -30.5, 60.0, 60.0]), (60, 60), scale_factor=1.0)
    np.testing.assert_allclose(affine, [[1, 0, 40], [0, 1, 30]], atol=1e-12)
    assert (crop[:30] == 0).all() and (crop[:, :40] == 0).all()
    assert (crop[30:, 40:] == 200).all()


@pytest.mark.parametrize("antialias", [True, False])
def test_affine_maps_keypoints_onto_the_crop(antialias):
    image = np.zeros((400, 300, 3), np.uint8)
    image[196:205, 146:155] = 255  # a 9 x 9 blob centred on (150, 200)
    crop, affine = crop_person(image, np.array([100.0, 120.0, 90.0, 200.0]), (64, 48), rotation_deg=20.0,
                               antialias=antialias)
    assert crop.shape == (64, 48, 3) and crop.dtype == np.uint8
    mapped = apply_affine(torch.tensor([[150.0, 200.0]], dtype=torch.float64), torch.from_numpy(affine))[0]
    weight = crop[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:64, :48]
    centroid = [(weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()]
    np.testing.assert_allclose(centroid, mapped.numpy(), atol=0.1)


def test_antialiased_crop_low_passes():
    stripes = np.zeros((500, 500, 3), np.uint8)
    stripes[::2] = 255  # 1-px stripes; a 5x reduction samples every 5th row: 255, 0, 255, ... (aliasing)
    box = np.array([-0.5, -0.5, 500.0, 500.0])  # the whole image
    smooth, affine_smooth = warp_box(stripes, box, (100, 100), antialias=True)
    aliased, affine_aliased = warp_box(stripes, box, (100, 100), antialias=False)
    np.testing.assert_allclose(affine_smooth, affine_aliased)
    assert aliased.std() > 120.0
    # Area averaging over 5 rows leaves 3 or 2 bright rows out of 5: 153 / 102, a fifth of the contrast.
    assert smooth.std() < 26.0
    assert abs(smooth.mean() - 127.5) < 1.0


def test_warp_box_errors():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="positive w and h"):
        warp_box(image, np.array([0.0, 0.0, 0.0, 5.0]), (8, 8))
    with pytest.raises(ValueError, match="output_size"):
        warp_box(image, np.array([0.0, 0.0, 5.0, 5.0]), (0, 8))
