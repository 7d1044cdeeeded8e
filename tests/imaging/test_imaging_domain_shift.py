import numpy as np
import pytest

from lowres_hps.imaging.domain_shift import DOMAIN_SHIFTS, apply_domain_shift, shift_batch

SHIFTED = [kind for kind in DOMAIN_SHIFTS if kind != "none"]


def _scene(h: int = 64, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A textured colour background with a dark 'person' rectangle, and the person's mask."""
    rng = np.random.default_rng(123)
    image = rng.integers(120, 250, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[12:56, 16:32] = 1
    image[mask > 0] = (30, 20, 40)  # dark clothes: darker than the background in the RGB image
    return image, mask


def test_names():
    assert {"grayscale", "thermal", "night", "none"} <= set(DOMAIN_SHIFTS)


@pytest.mark.parametrize("kind", DOMAIN_SHIFTS)
def test_shape_dtype_and_input_untouched(kind):
    image, mask = _scene()
    before = image.copy()
    out = apply_domain_shift(image, kind, np.random.default_rng(0), mask=mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out is not image and np.array_equal(image, before)


def test_none_is_identity_and_strength_zero_returns_the_input():
    image, mask = _scene()
    assert np.array_equal(apply_domain_shift(image, "none", np.random.default_rng(0)), image)
    for kind in SHIFTED:
        out = apply_domain_shift(image, kind, np.random.default_rng(0), mask=mask, strength=0.0)
        assert np.array_equal(out, image), kind


def test_strength_blends_between_input_and_full_shift():
    image, mask = _scene()
    full = apply_domain_shift(image, "night", np.random.default_rng(5), mask=mask)
    half = apply_domain_shift(image, "night", np.random.default_rng(5), mask=mask, strength=0.5)
    expected = 0.5 * full.astype(np.float64) + 0.5 * image.astype(np.float64)
    assert np.abs(half.astype(np.float64) - expected).max() <= 1.0


@pytest.mark.parametrize("kind", SHIFTED)
def test_seed_reproduces_and_another_seed_differs(kind):
    image, mask = _scene()
    a = apply_domain_shift(image, kind, np.random.default_rng(7), mask=mask)
    b = apply_domain_shift(image, kind, np.random.default_rng(7), mask=mask)
    c = apply_domain_shift(image, kind, np.random.default_rng(8), mask=mask)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind, with_mask", [("grayscale", False), ("thermal", True), ("thermal", False)])
def test_grayscale_and_thermal_have_three_equal_channels(kind, with_mask):
    image, mask = _scene()
    out = apply_domain_shift(image, kind, np.random.default_rng(1), mask=mask if with_mask else None)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert out.std() > 5.0  # not a blank image


@pytest.mark.parametrize("seed", range(5))
def test_thermal_person_is_warm_even_when_dark_in_rgb(seed):
    image, mask = _scene()
    inside, outside = mask > 0, mask == 0
    assert image[inside].mean() < image[outside].mean() - 100  # the input person is much darker
    out = apply_domain_shift(image, "thermal", np.random.default_rng(seed), mask=mask.astype(bool))[..., 0]
    assert out[inside].mean() > out[outside].mean() + 60
    assert out[outside].mean() < 130  # the background is dark


def test_night_is_noisier_and_blue_green_tinted():
    grey = np.full((96, 96, 3), 128, np.uint8)
    for seed in range(3):
        out = apply_domain_shift(grey, "night", np.random.default_rng(seed)).astype(np.float64)
        assert out[..., 2].mean() > out[..., 0].mean() + 10  # blue over red
        assert out[..., 1].mean() > out[..., 0].mean()  # and green over red
        assert out[..., 1].std() > 3.0  # the flat input (std 0) comes out noisy
        assert 40.0 < out.mean() < 130.0  # auto-gain: moderate, not dark


def test_shift_batch_is_reproducible_and_keeps_the_container():
    image, mask = _scene()
    images = np.stack([image, image[::-1].copy(), image[:, ::-1].copy()])
    masks = [mask, mask[::-1].copy(), None]
    a = shift_batch(images, "thermal", seed=3, masks=masks)
    b = shift_batch(list(images), "thermal", seed=3, masks=masks)
    assert isinstance(a, np.ndarray) and a.shape == images.shape and a.dtype == np.uint8
    assert isinstance(b, list) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a, shift_batch(images, "thermal", seed=4, masks=masks))
    rng = np.random.default_rng(3)  # one generator shared in order
    for out, im, m in zip(a, images, masks):
        assert np.array_equal(out, apply_domain_shift(im, "thermal", rng, mask=m))
    with pytest.raises(ValueError, match="one per image"):
        shift_batch(images, "thermal", seed=0, masks=masks[:2])


def test_bad_inputs_raise_clear_errors():
    image, mask = _scene()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        apply_domain_shift(image.astype(np.float32) / 255.0, "grayscale", rng)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        apply_domain_shift(image[..., 0].copy(), "grayscale", rng)
    with pytest.raises(ValueError, match=r"mask must be \(H, W\) = \(64, 48\)"):
        apply_domain_shift(image, "thermal", rng, mask=mask[:-1])
    with pytest.raises(ValueError, match="uint8 or bool"):
        apply_domain_shift(image, "thermal", rng, mask=mask.astype(np.float32))
    with pytest.raises(ValueError, match="unknown domain shift 'sepia'.*grayscale.*thermal.*night"):
        apply_domain_shift(image, "sepia", rng)
    for strength in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
            apply_domain_shift(image, "night", rng, strength=strength)
    with pytest.raises(TypeError, match="Generator"):
        apply_domain_shift(image, "night", 0)
