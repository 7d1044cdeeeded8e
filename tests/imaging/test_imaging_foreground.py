"""Background subtraction on synthetic static-camera videos (seeded, small, no data files)."""
import cv2
import numpy as np
import pytest
import torch

from lowres_hps.imaging.foreground import (
    CameraMotionError,
    ForegroundConfig,
    ForegroundExtractor,
    foreground_masks,
    person_silhouettes,
    warp_mask,
)
from lowres_hps.imaging.protocol import LowResProtocol

H, W = 96, 128


def _smooth_noise(shape, sigma, rng):
    noise = cv2.GaussianBlur(rng.uniform(0, 255, shape).astype(np.float32), (0, 0), sigma)
    return (noise - noise.mean()) / noise.std()


class _Scene:
    """A static camera: a fixed textured background, sensor noise (sigma 3) and two textured "people".

    The people carry their own texture (like clothing): a uniform colour lingering on a pixel is absorbed by
    MOG2 early in a video, when its automatic learning rate ``1 / (2 * frames)`` is still high.
    """

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.background = _smooth_noise((H, W, 3), 2.0, self.rng) * 40 + 120
        self.texture = _smooth_noise((60, 40, 3), 1.5, self.rng) * 30 + np.array([200, 60, 40])

    def people(self, t):
        """(H, W) uint8 truth of frame ``t``: a rectangle going right, an ellipse going left, in other rows."""
        shapes = []
        rect = np.zeros((H, W), np.uint8)
        x = -20 + 3 * t
        cv2.rectangle(rect, (x, 10), (x + 15, 49), 1, -1)
        shapes.append((rect, x, 10))
        ellipse = np.zeros((H, W), np.uint8)
        x = W - 2 * t
        cv2.ellipse(ellipse, (x + 9, 65), (9, 20), 0, 0, 360, 1, -1)
        shapes.append((ellipse, x, 45))
        return shapes

    def frame(self, t=None, image=None):
        """(frame (H, W, 3) uint8, truth (H, W) uint8); no people when ``t`` is None."""
        image = self.background.copy() if image is None else image.astype(np.float64)
        truth = np.zeros((H, W), np.uint8)
        for shape, x0, y0 in ([] if t is None else self.people(t)):
            ys, xs = np.nonzero(shape)
            image[ys, xs] = self.texture[ys - y0, xs - x0]
            truth |= shape
        image = image + self.rng.normal(0.0, 3.0, image.shape)
        return np.clip(image, 0, 255).round().astype(np.uint8), truth


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("method", ["mog2", "knn"])
def test_masks_match_the_moving_people(method):
    scene = _Scene()
    frames, truths = zip(*(scene.frame(t) for t in range(50)))
    ious = []
    for index, mask in foreground_masks(frames, ForegroundConfig(method=method, warmup_frames=25)):
        if index < 25:
            assert mask is None  # warm-up
            continue
        assert mask.shape == (H, W) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        ious.append(_iou(mask, truths[index]))
    assert len(ious) == 25 and min(ious) > 0.8, np.round(ious, 2)


def test_warm_up_returns_nothing_and_counts_frames():
    scene = _Scene()
    extractor = ForegroundExtractor(ForegroundConfig(warmup_frames=5))
    assert [extractor.apply(scene.frame()[0]) for _ in range(5)] == [None] * 5
    assert extractor.frames_seen == 5 and extractor.last_fraction is None
    frame, truth = scene.frame(20)
    mask = extractor.apply(frame)
    assert mask is not None and _iou(mask, truth) > 0.8
    assert extractor.last_fraction == pytest.approx(mask.mean())

    # warm_up() learns an empty scene; those frames count towards warmup_frames.
    extractor = ForegroundExtractor(ForegroundConfig(warmup_frames=30))
    assert extractor.warm_up(scene.frame()[0] for _ in range(30)) == 30
    assert extractor.frames_seen == 30
    assert _iou(extractor.apply(frame), truth) > 0.8


def test_moving_camera_raises_with_the_frame_index():
    scene = _Scene()
    extractor = ForegroundExtractor(ForegroundConfig(warmup_frames=25, max_bad_frames=10))
    extractor.warm_up(scene.frame()[0] for _ in range(25))  # frames 0..24
    with pytest.raises(CameraMotionError, match="static camera") as error:
        for shift in range(3, 3 * 20, 3):  # the camera pans 3 px a frame from frame 25 on
            extractor.apply(scene.frame(image=np.roll(scene.background, shift, axis=1))[0])
    message = str(error.value)
    assert "10 consecutive frames" in message and "frames 25 to 34" in message and "at frame 34" in message
    assert "foreground" in message and extractor.last_fraction > 0.4


def test_a_flash_frame_is_skipped_without_raising():
    scene = _Scene()
    extractor = ForegroundExtractor(ForegroundConfig(warmup_frames=25, max_bad_frames=2))
    extractor.warm_up(scene.frame()[0] for _ in range(25))
    assert extractor.apply(np.full((H, W, 3), 255, np.uint8)) is None  # the whole frame changed
    assert extractor.last_fraction > 0.4
    frame, truth = scene.frame(20)
    mask = extractor.apply(frame)  # one bad frame in a row is below max_bad_frames: no error, and it resets
    assert mask is not None and _iou(mask, truth) > 0.8
    assert extractor.apply(np.full((H, W, 3), 255, np.uint8)) is None


@pytest.mark.parametrize("method", ["mog2", "knn"])
def test_shadows_are_background(method):
    """A moving region at 0.6x the background's brightness is OpenCV's shadow (127), hence background.

    OpenCV's shadow test accepts darkening down to ``shadowThreshold`` (0.5): at 0.6x it marks nearly every
    pixel of the region as shadow in this set-up, for both MOG2 and KNN. Without ``detect_shadows`` the same
    region is foreground.
    """
    scene = _Scene()
    masks = {}
    for detect_shadows in (True, False):
        extractor = ForegroundExtractor(ForegroundConfig(method=method, detect_shadows=detect_shadows))
        extractor.warm_up(scene.frame()[0] for _ in range(30))
        image = scene.background.copy()
        shadow = np.zeros((H, W), bool)
        shadow[60:90, 70:110] = True
        image[shadow] *= 0.6
        frame, truth = scene.frame(10, image=image)  # a person with a shadow on the floor beside it
        shadow &= truth == 0
        masks[detect_shadows] = mask = extractor.apply(frame)
        assert mask is not None
    assert masks[True][shadow].mean() < 0.02 and _iou(masks[True], truth) > 0.8
    assert masks[False][shadow].mean() > 0.95


def test_cleaning_removes_speckle_and_small_parts_and_fills_holes():
    extractor = ForegroundExtractor(ForegroundConfig(open_kernel=3, close_kernel=5, min_area=20))
    raw = np.zeros((H, W), np.uint8)
    raw[20:60, 30:50] = 255  # a person ...
    raw[38:40, 39:41] = 0  # ... with a small hole
    raw[70:80, 70:90] = 127  # a shadow
    raw[85:88, 10:13] = 255  # a 3 x 3 blob: a cross after the opening, 5 px < min_area
    noise = np.random.default_rng(1).random((H, W)) < 0.01
    noise[15:65, 25:55] = False
    raw[noise] = 255  # isolated single pixels
    mask = extractor.clean(raw)
    expected = np.zeros((H, W), np.uint8)
    expected[20:60, 30:50] = 1
    expected[[20, 20, 59, 59], [30, 49, 30, 49]] = 0  # the 3 x 3 ellipse is a cross: opening rounds the corners
    np.testing.assert_array_equal(mask, expected)

    # End to end: salt noise in a frame is in the uncleaned mask but not in the cleaned one.
    scene = _Scene()
    frame, truth = scene.frame(20)
    salt = np.random.default_rng(2).random((H, W)) < 0.005
    salt[cv2.dilate(truth, np.ones((5, 5), np.uint8)) > 0] = False
    frame[salt] = 255
    empty = [scene.frame()[0] for _ in range(25)]
    masks = {}
    for name, config in [("raw", ForegroundConfig(open_kernel=0, close_kernel=0, min_area=0)),
                         ("clean", ForegroundConfig())]:
        extractor = ForegroundExtractor(config)
        extractor.warm_up(empty)
        masks[name] = extractor.apply(frame)
    assert masks["raw"][salt].mean() > 0.9
    assert masks["clean"][salt].sum() == 0 and _iou(masks["clean"], truth) > 0.8


def test_person_silhouettes_split_touching_people_and_drop_empty_boxes():
    mask = np.zeros((H, W), np.uint8)
    mask[20:80, 20:40] = 1  # person 0
    mask[20:80, 60:80] = 1  # person 1
    mask[40:44, 40:60] = 1  # their hands touch: one connected component
    mask[5:10, 100:105] = 1  # a speck in the middle of box 3
    boxes = np.array([[19.5, 19.5, 30.0, 60.0],  # person 0 (and the left half of the bridge)
                      [50.5, 19.5, 30.0, 60.0],  # person 1
                      [90.0, 60.0, 30.0, 30.0],  # nobody
                      [87.5, -7.5, 30.0, 30.0]])  # the speck: 25 px of 30 x 23 in-image box px: < 5%
    silhouettes, fill = person_silhouettes(mask, boxes, margin=0.1, min_fill=0.05)
    assert silhouettes.shape == (4, H, W) and silhouettes.dtype == np.uint8 and fill.shape == (4,)
    assert silhouettes[0, 20:80, 20:40].all() and silhouettes[1, 20:80, 60:80].all()
    assert not silhouettes[0, :, 55:].any() and not silhouettes[1, :, :45].any()
    # The bridge is split at the midpoint of the two centres (x = 50): the nearer centre wins.
    assert silhouettes[0, 40:44, 40:50].all() and silhouettes[1, 40:44, 51:60].all()
    assert (silhouettes[:2].sum(0) <= 1).all()
    assert fill[0] == pytest.approx((1200 + 4 * 10) / (30 * 60))  # person 0 and its share of the bridge
    assert fill[2] == 0 and not silhouettes[2].any()
    assert fill[3] == pytest.approx(25 / (30 * 23)) and fill[3] < 0.05 and not silhouettes[3].any()


def test_person_silhouettes_box_partly_outside_and_margin():
    mask = np.zeros((H, W), np.uint8)
    mask[30:70, 0:10] = 1  # a person entering at the left edge
    mask[30:70, 22:24] = 1  # someone else's arm, just outside person 0's box, inside its margin
    mask[30:70, 30:34] = 1  # a part that only a margin of 0.5 reaches
    silhouettes, fill = person_silhouettes(mask, np.array([[-10.5, 29.5, 20.0, 40.0]]))
    # Box pixels in the image: columns 0..9, rows 30..69, all person: fill 1; the arm does not reach the
    # box's middle 50%, so it is not this person's.
    assert fill[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(silhouettes[0], (np.arange(W) < 10)[None] & mask.astype(bool))
    bridge = mask.copy()
    bridge[50, 10:30] = 1  # now all three touch: the enlarged box cuts the component
    for margin, right_edge in [(0.1, 12), (0.5, 20)]:  # box x range [-10.5, 9.5) + margin * 20 px: x < 11.5, 19.5
        silhouettes, _ = person_silhouettes(bridge, np.array([[-10.5, 29.5, 20.0, 40.0]]), margin=margin)
        np.testing.assert_array_equal(silhouettes[0], (np.arange(W) < right_edge)[None] & bridge.astype(bool))
    silhouettes, fill = person_silhouettes(mask, np.zeros((0, 4)))
    assert silhouettes.shape == (0, H, W) and fill.shape == (0,)


def test_warp_mask_translation_matches_slicing():
    mask = (np.random.default_rng(3).random((H, W)) < 0.5).astype(np.uint8)
    affine = np.array([[1.0, 0.0, -10.0], [0.0, 1.0, -5.0]])  # crop pixel (u, v) = image pixel (u + 10, v + 5)
    np.testing.assert_array_equal(warp_mask(mask, affine, (20, 30)), mask[5:25, 10:40])
    square = torch.tensor(np.vstack([affine, [0.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(warp_mask(mask.astype(bool), square, (20, 30)), mask[5:25, 10:40])
    # Beyond the image the crop is 0.
    outside = warp_mask(np.ones((H, W), np.uint8), np.array([[1.0, 0, 20], [0, 1.0, 0]]), (H, W))
    assert not outside[:, :20].any() and outside[:, 20:].all()


@pytest.mark.parametrize(("setting", "input_size", "rotation"), [("upsample", (224, 224), 0.0),
                                                                  ("native", (64, 48), 0.0),
                                                                  ("native", (64, 48), 15.0)])
def test_warp_mask_lines_up_with_the_protocol_crop(setting, input_size, rotation):
    """The mask warped with ``LowResCrop.affine`` agrees with the protocol's own crop of the mask as an image."""
    mask = np.zeros((400, 300), np.uint8)
    cv2.ellipse(mask, (150, 200), (40, 150), 10, 0, 360, 1, -1)  # a person, 300 px tall
    cv2.rectangle(mask, (100, 120), (200, 135), 1, -1)  # arms
    image = np.repeat(mask[..., None] * 255, 3, axis=2)
    protocol = LowResProtocol(input_size=input_size, setting=setting)
    crop = protocol(image, np.array([105.0, 45.0, 90.0, 310.0]), rotation_deg=rotation)
    expected = (crop.image[0].numpy() >= 128).astype(np.uint8)
    warped = warp_mask(mask, crop.affine, input_size)
    assert warped.shape == input_size and expected.sum() > 0.1 * expected.size
    assert _iou(warped, expected) > 0.95
    # Disagreements lie on the outline only.
    outline = cv2.dilate(expected, np.ones((3, 3), np.uint8)) - cv2.erode(expected, np.ones((3, 3), np.uint8))
    assert not (warped != expected)[outline == 0].any()


def test_bad_input_raises_clear_errors():
    for bad in [dict(method="gmm"), dict(history=0), dict(var_threshold=-1.0), dict(dist2_threshold=0.0),
                dict(learning_rate=2.0), dict(warmup_frames=-1), dict(open_kernel=4), dict(close_kernel=-1),
                dict(min_area=1.5), dict(max_foreground_fraction=0.0), dict(max_bad_frames=0),
                dict(detect_shadows="yes")]:
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            ForegroundConfig(**bad)
    extractor = ForegroundExtractor(ForegroundConfig(warmup_frames=0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        extractor.apply(np.zeros((H, W, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        extractor.apply(np.zeros((H, W), np.uint8))
    assert extractor.frames_seen == 0
    extractor.apply(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="same size.*frame 1 is 48 x 64.*first frame was 96 x 128"):
        extractor.apply(np.zeros((48, 64, 3), np.uint8))
    mask = np.zeros((H, W), np.uint8)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        person_silhouettes(mask, np.zeros(4))
    with pytest.raises(ValueError, match="positive w and h"):
        person_silhouettes(mask, np.array([[0.0, 0.0, 0.0, 10.0]]))
    with pytest.raises(ValueError, match="0/1"):
        person_silhouettes(mask + 255, np.zeros((0, 4)))
    with pytest.raises(ValueError, match="perspective"):
        warp_mask(mask, np.array([[1.0, 0, 0], [0, 1, 0], [0.1, 0, 1]]), (10, 10))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        warp_mask(mask, np.eye(2), (10, 10))
    with pytest.raises(ValueError, match="output_size"):
        warp_mask(mask, np.eye(3), (0, 10))
