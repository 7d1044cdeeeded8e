"""Image-domain shifts that turn ordinary RGB renders into a *shifted synthetic target domain*.

A body model trained on RGB synthetic renders is adapted, from silhouettes only, to images that look different
(grayscale, thermal and low-light cameras; see the silhouette-topology self-adaptation paper). These functions
make such target images from SynthLR renders, for which the person's instance mask is known:

- ``"grayscale"``: a monochrome camera: BT.601 luminance, random gamma and contrast, optics blur, sensor noise.
- ``"thermal"``: a "white-hot" long-wave infrared camera: the person (from the mask) is warm and bright with
  smooth texture and a soft edge; the background is a dark, blurred, flat version of the scene.
- ``"night"``: a low-light colour camera: little light, faded colours under a blue/green cast, strong noise,
  and the camera's auto-gain bringing the brightness back up (which amplifies the noise).
- ``"none"``: the image unchanged (the source domain), so callers can treat it as one more kind.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a seed reproduces the images.
Images are (H, W, 3) uint8 RGB numpy arrays; masks are (H, W) uint8 or bool, non-zero on the person.

    rng = np.random.default_rng(0)
    thermal = apply_domain_shift(image, "thermal", rng, mask=sample.mask)
    night = shift_batch(images, "night", seed=0)
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lowres_hps.core.checks import check_image

__all__ = ["DOMAIN_SHIFTS", "apply_domain_shift", "shift_batch"]

DOMAIN_SHIFTS: tuple[str, ...] = ("none", "grayscale", "thermal", "night")

# Parameter ranges, each drawn uniformly per image. Levels are on the 0-255 scale, sigmas in pixels unless
# called "frac" (then a fraction of the image's short side, so the look does not depend on the image size).
GRAY_GAMMA = (0.7, 1.4)
GRAY_CONTRAST = (0.75, 1.25)  # gain about the image mean
GRAY_BRIGHTNESS = (-12.0, 12.0)  # offset in levels
GRAY_NOISE = (4.0, 8.0)
GRAY_BLUR = (0.5, 1.0)

THERMAL_PERSON_LEVEL = (190.0, 235.0)
THERMAL_PERSON_TEXTURE = (5.0, 12.0)  # std of the smooth texture on the body
THERMAL_PERSON_DETAIL = (0.05, 0.15)  # weight of the body's own (high-passed) shading
THERMAL_EDGE_FRAC = (0.004, 0.008)  # soft edge of the warm region
THERMAL_BG_LOW = (40.0, 70.0)  # black of the background
THERMAL_BG_RANGE = (25.0, 50.0)  # background span above its black (so it stays below 120)
THERMAL_BG_BLUR_FRAC = (0.01, 0.02)
THERMAL_BG_TEXTURE = (3.0, 7.0)
THERMAL_NOISE = (3.0, 6.0)
THERMAL_BLUR = (0.6, 1.2)
THERMAL_FALLBACK_RANGE = ((30.0, 60.0), (170.0, 215.0))  # black and white of the no-mask (inverted) look

NIGHT_DARKEN = (0.15, 0.35)
NIGHT_SATURATION = (0.3, 0.6)  # fraction of the colour (distance from the luminance) kept
NIGHT_TINT = ((0.6, 0.8), (0.95, 1.05), (1.1, 1.3))  # R, G, B gains: a blue/green cast
NIGHT_NOISE = (8.0, 15.0)  # after darkening, before the gain
NIGHT_BLUR = (0.5, 0.9)
NIGHT_TARGET_MEAN = (55.0, 85.0)  # the auto-gain's target mean brightness
NIGHT_MAX_GAIN = 8.0


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 image (kernel size from sigma; borders reflected, not darkened)."""
    if sigma <= 0:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def _luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 ITU-R BT.601 luma (OpenCV's RGB2GRAY weights 0.299, 0.587, 0.114), in levels 0-255."""
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, std: float) -> np.ndarray:
    """Low-frequency noise: white noise blurred by ``sigma`` px, rescaled to standard deviation ``std``."""
    noise = _blur(rng.standard_normal(shape).astype(np.float32), sigma)
    # Blurring shrinks the std by an amount that depends on sigma; rescale so ``std`` means what it says.
    return noise * np.float32(std / max(float(noise.std()), 1e-6))


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return (rng.standard_normal(shape) * sigma).astype(np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _three_channels(gray: np.ndarray) -> np.ndarray:
    return np.repeat(_to_uint8(gray)[..., None], 3, axis=2)


def _check_mask(mask: np.ndarray | None, image: np.ndarray) -> np.ndarray | None:
    """The mask as float32 in {0, 1}, or None; raises ValueError on another shape or dtype."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.dtype not in (np.uint8, np.bool_):
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask must be an (H, W) uint8 or bool array, got {got}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be (H, W) = {image.shape[:2]} like the image, got {mask.shape}")
    return (mask > 0).astype(np.float32)


def _grayscale(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Monochrome camera: luminance through a random gamma and contrast, optics blur, then sensor noise."""
    gamma, contrast = _uniform(rng, GRAY_GAMMA), _uniform(rng, GRAY_CONTRAST)
    brightness, blur, noise = _uniform(rng, GRAY_BRIGHTNESS), _uniform(rng, GRAY_BLUR), _uniform(rng, GRAY_NOISE)
    y = 255.0 * (_luminance(image) / 255.0) ** gamma  # another tone curve than the renderer's sRGB
    y = y.mean() + contrast * (y - y.mean()) + brightness
    # Blur (optics) before noise (sensor), so the noise keeps the sigma it was drawn with.
    y = _blur(np.clip(y, 0, 255).astype(np.float32), blur)
    return _three_channels(y + _sensor_noise(rng, y.shape, noise))


def _thermal(image: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None) -> np.ndarray:
    """White-hot long-wave infrared: a warm, bright person over a dark, flat, blurred scene (see
    :func:`apply_domain_shift` for the no-mask fallback)."""
    h, w = image.shape[:2]
    short = min(h, w)
    lum = _luminance(image)
    if mask is None:
        # Without the mask nobody can be made warm; an inverted, flattened luminance at least turns the usual
        # dark-clothes-on-light-background contrast around, as white-hot imagery often does.
        low, high = _uniform(rng, THERMAL_FALLBACK_RANGE[0]), _uniform(rng, THERMAL_FALLBACK_RANGE[1])
        y = _blur(low + (high - low) * (255.0 - lum) / 255.0, max(1.0, _uniform(rng, THERMAL_BG_BLUR_FRAC) * short))
    else:
        # Background: the scene's luminance, heavily blurred (thermal cameras see little texture and have few
        # pixels), squeezed into a narrow dark band (everything is near ambient temperature).
        low, span = _uniform(rng, THERMAL_BG_LOW), _uniform(rng, THERMAL_BG_RANGE)
        background = _blur(lum, max(1.5, _uniform(rng, THERMAL_BG_BLUR_FRAC) * short))
        background = low + span * background / 255.0
        background += _smooth_noise(rng, (h, w), max(2.0, 0.03 * short), _uniform(rng, THERMAL_BG_TEXTURE))
        # Person: a bright level with smooth blotches (skin vs. clothing, warmer trunk), plus a faint trace of
        # the render's own shading so limbs in front of the body do not vanish entirely.
        level, detail = _uniform(rng, THERMAL_PERSON_LEVEL), _uniform(rng, THERMAL_PERSON_DETAIL)
        person = level + _smooth_noise(rng, (h, w), max(2.0, 0.04 * short), _uniform(rng, THERMAL_PERSON_TEXTURE))
        person += detail * (lum - _blur(lum, max(2.0, 0.02 * short)))
        # A soft edge: heat and the camera's blur spread the body's outline over a pixel or two.
        weight = _blur(mask, max(0.5, _uniform(rng, THERMAL_EDGE_FRAC) * short))
        y = weight * person + (1.0 - weight) * background
    y = _blur(y.astype(np.float32), _uniform(rng, THERMAL_BLUR))
    return _three_channels(y + _sensor_noise(rng, y.shape, _uniform(rng, THERMAL_NOISE)))


def _night(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low light: little signal, a blue/green cast, strong noise, then the camera's auto-gain amplifying it."""
    darken, saturation = _uniform(rng, NIGHT_DARKEN), _uniform(rng, NIGHT_SATURATION)
    tint = np.array([_uniform(rng, bounds) for bounds in NIGHT_TINT], np.float32)
    noise, blur, target = _uniform(rng, NIGHT_NOISE), _uniform(rng, NIGHT_BLUR), _uniform(rng, NIGHT_TARGET_MEAN)
    # Colours fade in dim light (little signal per colour channel); then few photons, under a bluish-green
    # moon- or street-light cast.
    lum = _luminance(image)[..., None]
    x = (lum + saturation * (image.astype(np.float32) - lum)) * darken * tint
    # Noise at the dark level (shot and read noise dominate at low light), per channel like a colour sensor.
    x = x + _sensor_noise(rng, x.shape, noise)
    x = _blur(x, blur)  # the camera's demosaicing / denoising smears the noise into blotches
    # Auto-gain: lift the mean to a moderate brightness, which amplifies the noise with the signal.
    gain = float(np.clip(target / max(float(x.mean()), 1e-3), 1.0, NIGHT_MAX_GAIN))
    return _to_uint8(x * gain)


def apply_domain_shift(image: np.ndarray, kind: str, rng: np.random.Generator, mask: np.ndarray | None = None,
                       strength: float = 1.0) -> np.ndarray:
    """Make ``image`` look as if taken by another kind of camera.

    Args:
        image: (H, W, 3) uint8 RGB.
        kind: one of :data:`DOMAIN_SHIFTS`:

            - ``"grayscale"``: BT.601 luminance, gamma 0.7-1.4, contrast x0.75-1.25 about the mean, brightness
              +-12 levels, Gaussian blur sigma 0.5-1.0 px, Gaussian sensor noise sigma 4-8 levels; 3 equal channels.
            - ``"thermal"``: white-hot long-wave IR; 3 equal channels. With ``mask``: the person at 190-235 with
              smooth texture (std 5-12) and a soft edge; the background is the luminance blurred by 1-2 % of the
              image's short side and mapped into about 40-120; then blur 0.6-1.2 px and noise sigma 3-6.
              Without ``mask`` people cannot be made warm (nothing says where they are), so it falls back to an
              inverted, flattened and blurred luminance (black 30-60, white 170-215) with the same blur and noise.
              An all-zero mask gives the background alone.
            - ``"night"``: colour; 30-60 % of the saturation kept, x0.15-0.35 darker, R/G/B gains
              0.6-0.8 / 0.95-1.05 / 1.1-1.3, per-channel noise sigma 8-15 at the dark level, blur 0.5-0.9 px,
              then a gain (1-8) bringing the mean to 55-85.
            - ``"none"``: a copy of the image.
        rng: the generator every random choice is drawn from (reproducible with a seed).
        mask: optional (H, W) uint8 or bool person mask, non-zero on the person; only ``"thermal"`` uses it, but
            it is checked for every kind.
        strength: in [0, 1]: the output is ``strength * shifted + (1 - strength) * image`` (0 gives the input back,
            after drawing the same random numbers as 1 would).

    Returns:
        (H, W, 3) uint8 RGB, a new array.

    Raises:
        ValueError: ``image`` is not (H, W, 3) uint8, ``mask`` has another size or dtype, ``kind`` is unknown, or
            ``strength`` is outside [0, 1].
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    check_image(image)
    weight = _check_mask(mask, image)
    if kind not in DOMAIN_SHIFTS:
        raise ValueError(f"unknown domain shift {kind!r}; expected one of {', '.join(DOMAIN_SHIFTS)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if not 0.0 <= strength <= 1.0:  # also rejects NaN
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if kind == "none":
        return image.copy()
    if kind == "grayscale":
        shifted = _grayscale(image, rng)
    elif kind == "thermal":
        shifted = _thermal(image, rng, weight)
    else:
        shifted = _night(image, rng)
    if strength == 1.0:
        return shifted
    return _to_uint8(strength * shifted.astype(np.float32) + (1.0 - strength) * image.astype(np.float32))


def shift_batch(images: Sequence[np.ndarray] | np.ndarray, kind: str, seed: int,
                masks: Sequence[np.ndarray | None] | np.ndarray | None = None, strength: float = 1.0
                ) -> list[np.ndarray] | np.ndarray:
    """Shift every image with one generator seeded by ``seed``, in order (the same seed gives the same images;
    each image still gets its own random parameters).

    Args:
        images: a list of (H, W, 3) uint8 RGB images (sizes may differ) or an (N, H, W, 3) uint8 array.
        kind: one of :data:`DOMAIN_SHIFTS`.
        seed: seed of ``numpy.random.default_rng``.
        masks: None, or one mask (or None) per image, as in :func:`apply_domain_shift`.
        strength: as in :func:`apply_domain_shift`.

    Returns:
        An (N, H, W, 3) array when ``images`` is an array, else a list.
    """
    if masks is not None and len(masks) != len(images):
        raise ValueError(f"masks must be one per image: got {len(masks)} masks for {len(images)} images")
    rng = np.random.default_rng(seed)
    shifted = [apply_domain_shift(image, kind, rng, mask=None if masks is None else masks[i], strength=strength)
               for i, image in enumerate(images)]
    if isinstance(images, np.ndarray):
        return np.stack(shifted) if shifted else images.copy()
    return shifted
