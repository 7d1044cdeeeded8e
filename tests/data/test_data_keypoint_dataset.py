import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import COCO17
from lowres_hps.data.keypoint_dataset import AugmentConfig, TopDownKeypointDataset, camera_effects, random_erase
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


# --- camera effects and random erasing -------------------------------------------------------------------


def _textured(h=21, w=15, seed=0):
    """(3, h, w) uint8 with fine texture (what blur, noise and JPEG change)."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(40, 216, (3, h, w), dtype=np.uint8))


def test_camera_effects_defaults_change_nothing():
    image = _textured()
    out = camera_effects(image)
    assert out.shape == image.shape and out.dtype == torch.uint8 and torch.equal(out, image)


def test_camera_blur_low_passes():
    image = _textured()
    blurred = camera_effects(image, blur_sigma=1.0)
    assert blurred.shape == (3, 21, 15) and blurred.dtype == torch.uint8
    roughness = [x.float().diff(dim=-1).abs().mean().item() for x in (image, blurred)]
    assert roughness[1] < 0.5 * roughness[0]
    torch.testing.assert_close(blurred.float().mean(), image.float().mean(), atol=2.0, rtol=0)


def test_camera_noise_is_seeded_and_of_its_strength():
    image = torch.full((3, 40, 30), 128, dtype=torch.uint8)
    noisy = camera_effects(image, noise_std=8.0, seed=1)
    assert torch.equal(noisy, camera_effects(image, noise_std=8.0, seed=1))
    assert not torch.equal(noisy, camera_effects(image, noise_std=8.0, seed=2))
    assert abs((noisy.float() - 128).std().item() - 8.0) < 0.6
    assert abs((noisy.float() - 128).mean().item()) < 0.6


def test_camera_jpeg_and_grayscale():
    image = _textured(32, 24)
    compressed = camera_effects(image, jpeg_quality=20)
    assert compressed.shape == image.shape and compressed.dtype == torch.uint8
    assert not torch.equal(compressed, image)
    assert torch.equal(compressed, camera_effects(image, jpeg_quality=20))  # deterministic
    error = [(camera_effects(image, jpeg_quality=q).float() - image.float()).abs().mean().item() for q in (20, 95)]
    assert error[0] > error[1]  # lower quality, larger error
    # Colour order survives the BGR round trip: a red image stays red.
    red = torch.zeros(3, 16, 16, dtype=torch.uint8)
    red[0] = 200
    red_jpeg = camera_effects(red, jpeg_quality=90).float().mean((1, 2))
    assert red_jpeg[0] > 150 and red_jpeg[2] < 50
    gray = camera_effects(image, grayscale=True)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    luma = 0.299 * image[0].float() + 0.587 * image[1].float() + 0.114 * image[2].float()
    assert (gray[0].float() - luma).abs().max() <= 1.0


def test_camera_transform_is_none_without_effects():
    assert AugmentConfig().camera_transform() is None
    assert AugmentConfig(blur_probability=0.0, noise_probability=0.0, jpeg_probability=0.0,
                         grayscale_probability=0.0).camera_transform() is None


def test_camera_transform_draws_reproducibly():
    config = AugmentConfig(blur_probability=0.5, noise_probability=1.0, jpeg_probability=1.0, grayscale_probability=0.5)
    image = _textured(24, 18)
    results = []
    for _ in range(2):
        np.random.seed(11)
        transform = config.camera_transform()
        results.append(transform(image))
        assert torch.equal(transform(image), results[-1])  # its noise is drawn once, with the transform
    assert torch.equal(results[0], results[1])
    assert results[0].shape == image.shape and results[0].dtype == torch.uint8
    assert not torch.equal(results[0], image)
    np.random.seed(12)
    assert not torch.equal(config.camera_transform()(image), results[0])


def test_random_erase_replaces_one_rectangle():
    image = torch.full((3, 64, 48), 7, dtype=torch.uint8)
    np.random.seed(0)
    erased = random_erase(image, (0.1, 0.2))
    assert erased.shape == image.shape and erased.dtype == torch.uint8
    assert (image == 7).all()  # the input is left alone
    changed = (erased != 7).any(0)
    rows, cols = torch.nonzero(changed, as_tuple=True)
    box = changed[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert box.float().mean() > 0.9  # one filled rectangle (a noise pixel may equal 7 by chance)
    assert 0.08 * 64 * 48 <= box.numel() <= 0.22 * 64 * 48
    np.random.seed(0)
    assert torch.equal(random_erase(image, (0.1, 0.2)), erased)
    # Nothing fits in a 1-pixel-wide image: unchanged.
    thin = torch.zeros(3, 10, 1, dtype=torch.uint8)
    assert torch.equal(random_erase(thin, (0.1, 0.2)), thin)


def test_dataset_applies_camera_effects_and_erasing_reproducibly(reader):
    protocol = LowResProtocol(input_size=(64, 48), setting="native")
    plain = TopDownKeypointDataset([reader], protocol, augment=AugmentConfig())
    noisy = TopDownKeypointDataset([reader], protocol, augment=AugmentConfig(noise_probability=1.0,
                                                                            noise_std=(20.0, 20.0)))
    erased = TopDownKeypointDataset([reader], protocol, augment=AugmentConfig(erase_probability=1.0))
    np.random.seed(5)
    reference = plain[0]
    for dataset in (noisy, erased):
        np.random.seed(5)
        first = dataset[0]
        np.random.seed(5)
        again = dataset[0]
        assert torch.equal(first["image"], again["image"])
        assert first["image"].shape == (3, 64, 48) and first["image"].dtype == torch.uint8
        assert not torch.equal(first["image"], reference["image"])
        # Pixels change, geometry does not.
        assert torch.equal(first["keypoints"], reference["keypoints"])
        assert torch.equal(first["visible"], reference["visible"])


def test_a_source_can_keep_its_own_training_heights(reader):
    class Recording(LowResProtocol):
        heights: list = []

        def __call__(self, *args, person_height=None, **kwargs):
            self.heights.append(person_height)
            return super().__call__(*args, person_height=person_height, **kwargs)

    protocol = Recording(input_size=(128, 96), setting="upsample")
    augment = AugmentConfig(person_heights=(12, 16), person_height_probability=1.0)
    TopDownKeypointDataset([reader], protocol, augment=augment)[0]
    reader.train_person_heights = (40, 41)
    TopDownKeypointDataset([reader], protocol, augment=augment)[0]
    assert 12 <= protocol.heights[0] <= 16 and protocol.heights[1] in (40, 41)
