import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowres_hps.geometry.transforms import apply_affine
from lowres_hps.imaging.protocol import (
    EVAL_MIDPOINTS,
    RESOLUTION_RANGES,
    LowResProtocol,
    degrade,
    degrade_image,
    resize_images,
    resize_to_person_height,
    resolution_to_range_index,
    sample_resolution,
    sample_resolutions_per_range,
)


def _person_crop(dtype=torch.float32) -> torch.Tensor:
    """(3, 250, 250) crop with a white 200-px-tall "person" (rows 25..224, so the box spans [24.5, 224.5])."""
    crop = torch.zeros(3, 250, 250, dtype=dtype)
    crop[:, 25:225, 60:190] = 255
    return crop


@pytest.mark.parametrize("height", [176, 150, 96, 52, 40, 32, 24])
def test_person_is_r_pixels_tall_in_the_intermediate(height):
    low = resize_to_person_height(_person_crop(), height, 200.0)
    column = low[0, :, low.shape[-1] // 2]
    assert abs(column.sum().item() / 255 - height) <= 1.0  # the profile's area is the person's height
    low_uint8 = resize_to_person_height(_person_crop(torch.uint8), height, 200.0)
    assert low_uint8.dtype == torch.uint8
    assert abs((low_uint8[0, :, low_uint8.shape[-1] // 2] > 127).sum().item() - height) <= 1


@pytest.mark.parametrize("output_size", [(224, 224), (128, 96), (64, 48)])
def test_degrade_output_size_and_dtype(output_size):
    for dtype in (torch.uint8, torch.float32, torch.float64):
        out = degrade(_person_crop(dtype), 32, 200.0, output_size)
        assert out.shape == (3, *output_size) and out.dtype == dtype
    batch = _person_crop().expand(2, 4, 3, 250, 250)
    assert degrade(batch, 52, 200.0, (224, 224)).shape == (2, 4, 3, 224, 224)


def test_degrade_loses_detail_and_skips_when_nothing_is_lost():
    crop = _person_crop()
    high = degrade(crop, 500, 200.0, (224, 224))
    torch.testing.assert_close(high, resize_images(crop, (224, 224)))
    # Above the output's own person height (200 * 224 / 250 = 179.2 px) nothing more is lost either.
    torch.testing.assert_close(degrade(crop, 190, 200.0, (224, 224)), high)
    edge_sharpness = [degrade(crop, h, 200.0, (224, 224))[0, :, 112].diff().abs().max().item() for h in (150, 52, 24)]
    assert edge_sharpness[0] > edge_sharpness[1] > edge_sharpness[2]


def test_antialias_low_passes():
    stripes = torch.zeros(1, 1, 250, 250, dtype=torch.float64)
    stripes[..., ::2, :] = 255.0  # 1-px stripes; a 5x reduction without antialiasing keeps 0 / 255 rows
    smooth = resize_images(stripes, (50, 50))
    aliased = F.interpolate(stripes, size=(50, 50), mode="bicubic", align_corners=False, antialias=False)
    assert aliased.std() > 100.0
    assert smooth.std() < 0.02 * aliased.std()
    assert abs(smooth.mean().item() - 127.5) < 1.0


def test_uint8_is_clamped_and_rounded_float_is_not():
    crop = _person_crop()
    up = resize_images(crop, (400, 400))  # bicubic overshoots at the edges
    assert up.max() > 255.0 and up.min() < 0.0
    up_uint8 = resize_images(crop.to(torch.uint8), (400, 400))
    torch.testing.assert_close(up_uint8, up.clamp(0, 255).round().to(torch.uint8))


def test_degrade_image_numpy_wrapper():
    crop = _person_crop(torch.uint8)
    out = degrade_image(crop.permute(1, 2, 0).numpy(), 52, 200.0, (224, 224))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, degrade(crop, 52, 200.0, (224, 224)).permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="uint8"):
        degrade_image(out.astype(np.float32), 52, 200.0, (224, 224))


def test_degrade_follows_the_device(device):
    crop = _person_crop().to(device)
    out = degrade(crop, 40, 200.0, (224, 224))
    assert out.device.type == device.type
    torch.testing.assert_close(out.cpu(), degrade(crop.cpu(), 40, 200.0, (224, 224)), atol=1e-3, rtol=0)


def test_degrade_errors():
    with pytest.raises(ValueError, match="positive"):
        degrade(_person_crop(), 0, 200.0, (224, 224))
    with pytest.raises(ValueError, match="C, H, W"):
        degrade(torch.zeros(250, 250), 32, 200.0, (224, 224))


def test_range_index_boundaries():
    cases = {224: 0, 223: 1, 128: 1, 127: 2, 64: 2, 63: 3, 40: 3, 39: 4, 24: 4, 300: 0, 16: 4, 127.5: 2}
    for resolution, index in cases.items():
        assert resolution_to_range_index(resolution) == index
    resolutions = list(cases)
    expected = list(cases.values())
    np.testing.assert_array_equal(resolution_to_range_index(np.array(resolutions)), expected)
    as_tensor = resolution_to_range_index(torch.tensor(resolutions).reshape(3, 4))
    assert as_tensor.dtype == torch.int64
    torch.testing.assert_close(as_tensor.flatten(), torch.tensor(expected))


def test_eval_midpoints_are_the_range_midpoints():
    for index, midpoint in enumerate(EVAL_MIDPOINTS, start=1):
        low, high = RESOLUTION_RANGES[index]
        assert (low + high) / 2 == midpoint
        assert resolution_to_range_index(midpoint) == index


def test_sampled_resolutions_fall_in_their_ranges_and_are_reproducible():
    generator = torch.Generator().manual_seed(0)
    for index, (low, high) in enumerate(RESOLUTION_RANGES):
        draws = [sample_resolution(index, generator) for _ in range(2000)]
        assert all(isinstance(r, int) for r in draws)
        assert all(resolution_to_range_index(r) == index for r in draws)
        expected = {224} if index == 0 else set(range(low, high))
        assert set(draws) == expected  # every integer of the range occurs
    first = sample_resolutions_per_range(torch.Generator().manual_seed(7))
    assert first == sample_resolutions_per_range(torch.Generator().manual_seed(7))
    assert first[0] == 224 and [resolution_to_range_index(r) for r in first] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="range_index"):
        sample_resolution(5)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 600 x 400 image with a white 400-px-tall "person" and its box (edges on pixel edges)."""
    image = np.zeros((600, 400, 3), np.uint8)
    image[100:500, 150:250] = 255
    return image, np.array([149.5, 99.5, 100.0, 400.0])


@pytest.mark.parametrize("height", [None, 176, 96, 32])
def test_protocol_crop_affine_and_height(height):
    image, box = _scene()
    result = LowResProtocol()(image, box, height)
    assert result.image.shape == (3, 224, 224) and result.image.dtype == torch.uint8
    assert result.affine.shape == (2, 3) and result.affine.dtype == torch.float64
    assert result.person_height == (400.0 if height is None else height)
    np.testing.assert_allclose(result.box, [-50.5, 49.5, 500.0, 500.0])
    # The box's top and bottom map to where the person's column crosses half intensity.
    top, bottom = apply_affine(torch.tensor([[199.5, 99.5], [199.5, 499.5]], dtype=torch.float64), result.affine)
    torch.testing.assert_close(top, torch.tensor([111.5, 111.5 - 89.6], dtype=torch.float64))
    column = result.image[0, :, 111].double()
    first_bright = torch.nonzero(column > 127.5).flatten()
    assert abs(first_bright[0].item() - 0.5 - top[1].item()) <= 1.0
    assert abs(first_bright[-1].item() + 0.5 - bottom[1].item()) <= 1.0


def test_protocol_affine_maps_keypoints_onto_the_input():
    image = np.zeros((600, 400, 3), np.uint8)
    image[297:304, 227:234] = 255  # 7 x 7 blob centred on (230, 300)
    for height in (None, 96):
        result = LowResProtocol()(image, np.array([149.5, 99.5, 100.0, 400.0]), height, rotation_deg=15.0)
        mapped = apply_affine(torch.tensor([[230.0, 300.0]], dtype=torch.float64), result.affine)[0]
        weight = result.image[0].double()
        ys, xs = torch.meshgrid(torch.arange(224.0, dtype=torch.float64), torch.arange(224.0, dtype=torch.float64),
                                indexing="ij")
        centroid = torch.stack([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
        torch.testing.assert_close(centroid, mapped, atol=0.3, rtol=0)


def test_protocol_pads_outside_the_image_with_zeros():
    image = np.full((300, 300, 3), 100, np.uint8)
    result = LowResProtocol()(image, np.array([-60.0, -60.0, 120.0, 120.0]))
    # The crop covers [-75, 75] in both axes; the image edge -0.5 lands on input pixel 110.75.
    edge = apply_affine(torch.tensor([[-0.5, -0.5]], dtype=torch.float64), result.affine)[0]
    torch.testing.assert_close(edge, torch.tensor([110.75, 110.75], dtype=torch.float64), atol=0.01, rtol=0)
    assert (result.image[:, :108] == 0).all() and (result.image[:, :, :108] == 0).all()
    assert (result.image[:, 114:, 114:] == 100).all()


def test_effective_height_and_settings():
    image, box = _scene()
    small_box = np.array([149.5, 99.5, 10.0, 40.0])
    assert LowResProtocol()(image, small_box, 96).person_height == 40.0  # the source is lower than R
    native = LowResProtocol(input_size=(64, 48), setting="native")
    result = native(image, box)
    assert result.image.shape == (3, 64, 48)
    assert result.person_height == pytest.approx(64 / 1.25)
    assert native(image, small_box).person_height == 40.0
    assert native.aspect == 0.75 and LowResProtocol().input_person_height == pytest.approx(179.2)
    with pytest.raises(ValueError, match="native"):
        native(image, box, 32)
    with pytest.raises(ValueError, match="setting"):
        LowResProtocol(setting="bilinear")
    with pytest.raises(ValueError, match="bbox"):
        LowResProtocol()(image, np.array([0.0, 0.0, -1.0, 10.0]))
    with pytest.raises(ValueError, match="person_height"):
        LowResProtocol()(image, box, 0)


def test_protocol_edges_blur_as_r_drops():
    # The person always spans the same input pixels; only its sharpness follows R.
    image, box = _scene()
    sharpness = [LowResProtocol()(image, box, r).image[0, :, 111].double().diff().abs().max().item()
                 for r in (None, 200, 176, 96, 52, 32)]
    assert sharpness[0] == sharpness[1]  # 200 px is below the source (400) but not below the input's 179.2
    assert sharpness[1] > sharpness[2] > sharpness[3] > sharpness[4] > sharpness[5]


class _Recorder:
    """A capture transform that records the shapes it sees and marks the image (+ 7, once per call)."""

    def __init__(self):
        self.shapes = []

    def __call__(self, image):
        self.shapes.append(tuple(image.shape))
        return (image.int() + 7).clamp(0, 255).to(image.dtype)


@pytest.mark.parametrize(("box_height", "person_height", "seen"), [
    (400.0, 32, (3, 40, 40)),       # R below both: the R-sized image (500 px region x 32 / 400)
    (400.0, 96, (3, 120, 120)),
    (400.0, 176, (3, 220, 220)),    # just below the input's person height, 179.2 px
    (400.0, 200, (3, 224, 224)),    # not below the input's person height: the output
    (400.0, None, (3, 224, 224)),   # no R, a larger source: the output
    (40.0, 20, (3, 25, 25)),        # R below a small source: the R-sized image (50 px region x 20 / 40)
    (40.0, 96, (3, 50, 50)),        # R above a source smaller than the input: the source crop
    (40.0, None, (3, 50, 50)),
])
def test_capture_transform_runs_once_at_the_smallest_image(box_height, person_height, seen):
    image = np.full((600, 400, 3), 100, np.uint8)
    box = np.array([149.5, 99.5, box_height / 4, box_height])
    recorder = _Recorder()
    marked = LowResProtocol()(image, box, person_height, capture_transform=recorder)
    plain = LowResProtocol()(image, box, person_height)
    assert recorder.shapes == [seen]
    # Its output is what the network gets: inside the image the crop is 107 instead of 100.
    assert marked.image.shape == (3, 224, 224)
    assert (marked.image[:, 100:124, 100:124] == 107).all() and (plain.image[:, 100:124, 100:124] == 100).all()
    torch.testing.assert_close(marked.affine, plain.affine)


def test_capture_transform_in_the_native_setting():
    image, box = _scene()
    recorder = _Recorder()
    result = LowResProtocol(input_size=(64, 48), setting="native")(image, box, capture_transform=recorder)
    assert recorder.shapes == [(3, 64, 48)] and result.image.shape == (3, 64, 48)


def test_degrade_capture_transform():
    crop = _person_crop(torch.uint8)
    recorder = _Recorder()
    out = degrade(crop, 52, 200.0, (224, 224), capture_transform=recorder)
    assert recorder.shapes == [(3, 65, 65)]  # 250 x 52 / 200
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    expected = resize_images((resize_to_person_height(crop, 52, 200.0).int() + 7).clamp(0, 255).to(torch.uint8),
                             (224, 224))
    assert torch.equal(out, expected)
    assert torch.equal(degrade(crop, 52, 200.0, (224, 224), capture_transform=None), degrade(crop, 52, 200.0, (224, 224)))
