import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import COCO17
from lowres_hps.data.keypoint_dataset import AugmentConfig, TopDownKeypointDataset
from lowres_hps.data.sample import PersonSample
from lowres_hps.imaging.io import write_image_rgb
from lowres_hps.imaging.protocol import LowResProtocol


class _OneImageReader:
    """A reader double: one image with bright dots at the keypoints, in LSP-14 order."""

    convention = "lsp14"

    def __init__(self, path, keypoints):
        self.path, self.keypoints = path, keypoints

    def __len__(self):
        return 1

    def __getitem__(self, index):
        bbox = np.array([40, 20, 80, 160], np.float32)
        return PersonSample(self.path, bbox, self.keypoints, "lsp14")


@pytest.fixture
def reader(tmp_path):
    rng = np.random.default_rng(0)
    keypoints = np.zeros((14, 3), np.float32)
    keypoints[:, 0] = rng.uniform(50, 110, 14)
    keypoints[:, 1] = rng.uniform(30, 170, 14)
    keypoints[:, 2] = 2
    keypoints[13, 2] = 0  # head top unlabelled
    image = np.zeros((200, 160, 3), np.uint8)
    image[np.round(keypoints[0, 1]).astype(int), np.round(keypoints[0, 0]).astype(int)] = 255  # right ankle
    write_image_rgb(tmp_path / "im.png", image)
    return _OneImageReader(tmp_path / "im.png", keypoints)


def test_evaluation_crop_maps_keypoints_and_convention(reader):
    dataset = TopDownKeypointDataset([reader], LowResProtocol(input_size=(128, 96), setting="native"))
    item = dataset[0]
    assert item["image"].shape == (3, 128, 96) and item["image"].dtype == torch.uint8
    assert item["keypoints"].shape == (17, 2)
    # LSP has no face points: they carry no weight in COCO-17.
    for name in ("nose", "left_eye", "right_ear"):
        assert item["visible"][COCO17.index(name)] == 0
    ankle = item["keypoints"][COCO17.index("right_ankle")]
    # The dot lands where the mapped keypoint says (brightest pixel of the crop near it).
    brightness = item["image"].float().sum(0)
    row, col = divmod(int(brightness.argmax()), brightness.shape[1])
    assert abs(col - ankle[0]) <= 1.5 and abs(row - ankle[1]) <= 1.5


def test_flip_swaps_sides_and_mirrors(reader):
    protocol = LowResProtocol(input_size=(128, 96), setting="native")
    plain = TopDownKeypointDataset([reader], protocol)[0]
    flipped = TopDownKeypointDataset([reader], protocol, augment=AugmentConfig(flip_probability=1.0))[0]
    left, right = COCO17.index("left_knee"), COCO17.index("right_knee")
    assert torch.allclose(flipped["keypoints"][left, 0], 95 - plain["keypoints"][right, 0], atol=1e-4)
    assert torch.allclose(flipped["keypoints"][left, 1], plain["keypoints"][right, 1], atol=1e-4)
    assert torch.equal(flipped["image"], plain["image"].flip(-1))


def test_augmentation_is_reproducible_under_a_seed(reader):
    dataset = TopDownKeypointDataset([reader], LowResProtocol(input_size=(64, 48), setting="native"),
                                     augment=AugmentConfig(scale=(0.7, 1.3), rotation_deg=40, flip_probability=0.5,
                                                           color_jitter=0.2))
    np.random.seed(3)
    first = dataset[0]
    np.random.seed(3)
    second = dataset[0]
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["keypoints"], second["keypoints"])


@pytest.mark.shared_data
def test_real_lsp_crops(shared_data):
    from lowres_hps.data import LspReader

    reader = LspReader(shared_data / "lspet_400" / "joints.mat", indices=range(5))
    dataset = TopDownKeypointDataset([reader], LowResProtocol(input_size=(64, 48), setting="native"))
    for index in range(len(dataset)):
        item = dataset[index]
        kept = item["visible"] > 0
        assert kept.sum() >= 6
        points = item["keypoints"][kept]
        assert points[:, 0].min() >= -0.5 and points[:, 0].max() <= 47.5
