"""Scene samples for multi-person training: people grouped by image, two resolutions, aligned labels."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.data import SynthLRReader
from lowres_hps.data.scenes import SceneAugmentConfig, SceneDataset
from lowres_hps.data.synth.generator import SynthConfig
from lowres_hps.data.synth.writer import generate_dataset


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, anny_body):
    out = tmp_path_factory.mktemp("scenes")
    generate_dataset(out, 2, seed=3, config=SynthConfig(layout="scenes", people_per_scene=(3, 4)), workers=1,
                     progress=False)
    return SynthLRReader(out, load_masks=True)


def test_one_sample_per_image_with_every_label(scenes):
    data = SceneDataset([scenes], SceneAugmentConfig(size=(256, 416), centre_crop=True))
    assert len(data) == 2
    sample = data[0]
    assert sample["image_high"].shape == sample["image_low"].shape == (3, 256, 416)
    n = int(sample["valid"].sum())
    assert 1 <= n <= 4
    for key in ("has_mask", "has_params", "has_3d"):
        assert sample[key][:n].tolist() == [1.0] * n and sample[key][n:].sum() == 0
    assert sample["masks"].shape == (16, 64, 104) and sample["keypoints3d"].shape == (16, 17, 3)
    # 3D keypoints come hips-rooted.
    hips = sample["keypoints3d"][:n, [11, 12]].mean(1)
    assert hips.abs().max() < 1e-5


def test_boxes_keypoints_and_masks_stay_aligned(scenes):
    np.random.seed(1)
    data = SceneDataset([scenes], SceneAugmentConfig(size=(256, 384), scale=(0.5, 0.9)))
    sample = data[1]
    for i in range(int(sample["valid"].sum())):
        x, y, w, h = sample["boxes"][i].tolist()
        kp = sample["keypoints2d"][i]
        seen = kp[:, 2] > 0
        if seen.any():  # labelled keypoints lie in the box (SynthLR boxes hold the whole body)
            assert (kp[seen, 0] >= x - 1).all() and (kp[seen, 0] <= x + w + 1).all()
            assert (kp[seen, 1] >= y - 1).all() and (kp[seen, 1] <= y + h + 1).all()
        mask = sample["masks"][i]
        if mask.sum() > 1:  # the mask's mass sits inside the box (at a quarter of the resolution)
            ys, xs = np.nonzero(mask.numpy() > 0.5)
            assert xs.min() * 4 >= x - 6 and xs.max() * 4 <= x + w + 6
            assert ys.min() * 4 >= y - 6 and ys.max() * 4 <= y + h + 6


def test_the_low_resolution_image_is_the_high_one_blurred(scenes):
    data = SceneDataset([scenes], SceneAugmentConfig(size=(256, 384), centre_crop=True, low_factor=(4.0, 4.0)))
    sample = data[0]
    high, low = sample["image_high"].float(), sample["image_low"].float()
    assert (high - low).abs().mean() < 30  # the same picture
    detail = lambda img: (img[:, :, 1:] - img[:, :, :-1]).abs().mean()  # noqa: E731
    assert detail(low) < 0.7 * detail(high)
    assert sample["low_factor"].item() == 4.0


def test_full_samples_keep_the_largest_people(scenes):
    data = SceneDataset([scenes], SceneAugmentConfig(size=(256, 416), centre_crop=True, max_people=1))
    sample = data[0]
    assert int(sample["valid"].sum()) == 1


def test_bad_configs_and_readers():
    with pytest.raises(ValueError, match="multiples of 32"):
        SceneAugmentConfig(size=(250, 384))
    with pytest.raises(ValueError, match="low_factor"):
        SceneAugmentConfig(low_factor=(0.5, 2.0))
    with pytest.raises(TypeError, match="image_ids"):
        SceneDataset([object()])
