"""Multi-resolution person crops for 3D regression: item layout, range indices, and labels that stay
consistent with the crop camera under the rotation augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import COCO17
from lowres_hps.data import SynthLRReader
from lowres_hps.data.multires_dataset import MultiResAugmentConfig, MultiResolutionDataset, crop_rotation_3d
from lowres_hps.data.synth.generator import SynthConfig
from lowres_hps.data.synth.writer import generate_dataset
from lowres_hps.geometry.camera import perspective_project
from lowres_hps.geometry.transforms import apply_affine
from lowres_hps.imaging.protocol import RESOLUTION_RANGES, input_range_index

CANVAS = 64


@pytest.fixture(scope="module")
def synthlr(tmp_path_factory, anny_body) -> SynthLRReader:
    """Two SynthLR crops generated for the test (3D keypoints, Anny pose vectors and cameras)."""
    folder = tmp_path_factory.mktemp("synthlr")
    generate_dataset(folder, 2, seed=5, config=SynthConfig(layout="crops", occluder_probability=0.0),
                     workers=1, progress=False)
    return SynthLRReader(folder)


def dataset(reader, **kwargs) -> MultiResolutionDataset:
    return MultiResolutionDataset([reader], canvas=CANVAS, **kwargs)


def test_item_layout(synthlr):
    np.random.seed(0)
    torch.manual_seed(0)
    data = dataset(synthlr, augment=MultiResAugmentConfig(scale=(0.9, 1.1), rotation_deg=20, color_jitter=0.2,
                                                          noise_std=2.0))
    assert len(data) == 2
    item = data[1]
    expected = {"images": ((5, 3, CANVAS, CANVAS), torch.uint8), "person_heights": ((5,), torch.float32),
                "range_index": ((5,), torch.int64), "keypoints2d": ((17, 2), torch.float32),
                "visible2d": ((17,), torch.float32), "keypoints3d": ((17, 3), torch.float32),
                "visible3d": ((17,), torch.float32), "has_3d": ((), torch.float32),
                "pose_vector": ((126,), torch.float32), "has_params": ((), torch.float32)}
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape and item[key].dtype == dtype, key
    assert item["index"] == 1 and item["has_3d"] == 1 and item["has_params"] == 1
    assert item["visible2d"].sum() > 10 and item["visible3d"].sum() == 17
    # Lower resolutions lose detail: each image is smoother than the source-resolution one.
    detail = [float((img.float()[:, 1:] - img.float()[:, :-1]).abs().mean()) for img in item["images"]]
    assert detail[4] < detail[0]
    # The trainer's default collate stacks items.
    batch = torch.utils.data.default_collate([data[0], data[1]])
    assert batch["images"].shape == (2, 5, 3, CANVAS, CANVAS) and batch["has_3d"].shape == (2,)


def test_range_index_follows_the_person_heights(synthlr):
    data = dataset(synthlr)
    for seed in range(3):
        torch.manual_seed(seed)
        item = data[0]
        heights, ranges = item["person_heights"], item["range_index"]
        torch.testing.assert_close(ranges, input_range_index(heights.double()))
        assert ranges[0] == 0 and ranges.tolist() == sorted(ranges.tolist())  # source first, then lower
        # Range i draws its height in RESOLUTION_RANGES[i], capped by the source person's height.
        for i in range(1, 5):
            low, high = RESOLUTION_RANGES[i]
            assert heights[i] == heights[0] or low <= heights[i] < high
        assert (heights[2:] < heights[0]).all()


def test_fixed_person_heights(synthlr):
    data = dataset(synthlr, person_heights=[0, 96, 52, 32])
    assert data.heights() == [None, 96.0, 52.0, 32.0]
    item = data[0]
    source = float(item["person_heights"][0])
    assert source > 150  # the generated crops show people about 180 px tall
    torch.testing.assert_close(item["person_heights"][1:], torch.tensor([96.0, 52.0, 32.0]))
    assert item["range_index"].tolist() == [input_range_index(source), 2, 3, 4]
    # Without augmentation the labels are deterministic.
    torch.testing.assert_close(item["keypoints2d"], data[0]["keypoints2d"])
    with pytest.raises(ValueError, match="num_ranges"):
        dataset(synthlr, num_ranges=6)


def test_2d_labels_are_the_source_keypoints_through_the_crop(synthlr):
    data = dataset(synthlr)
    item, sample = data[0], synthlr[0]
    crop = data.protocol(sample.load_image(), sample.bbox)
    expected = apply_affine(torch.from_numpy(sample.keypoints2d[:, :2]).double(), crop.affine).float()
    labelled = torch.from_numpy(sample.keypoints2d[:, 2] > 0)
    torch.testing.assert_close(item["keypoints2d"][labelled], expected[labelled], atol=1e-4, rtol=0)
    assert torch.equal(item["visible2d"] > 0, labelled)


def _fit_affine(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least-squares (2, 3) affine taking (N, 2) ``source`` to ``target``."""
    design = torch.cat([source, torch.ones(len(source), 1, dtype=source.dtype)], dim=1)
    return torch.linalg.lstsq(design, target).solution.T


def test_rotated_3d_labels_project_onto_the_rotated_2d_labels(synthlr):
    """The 3D keypoints (camera coordinates) through the SynthLR camera carried into the crop land on the
    crop's 2D keypoints: :func:`crop_rotation_3d` turns them the way the image turns."""
    data = dataset(synthlr, augment=MultiResAugmentConfig(rotation_deg=60, rotation_probability=1.0))
    angles = []
    for seed in range(4):
        np.random.seed(seed)
        index = seed % 2
        item, sample = data[index], synthlr[index]
        visible = (item["visible2d"] > 0) & torch.from_numpy(sample.keypoints2d[:, 2] > 0)
        # The crop affine, recovered from the 2D labels alone: a rotation and a uniform scale.
        image_points = torch.from_numpy(sample.keypoints2d[:, :2]).double()
        affine = _fit_affine(image_points[visible], item["keypoints2d"].double()[visible])
        matrix = affine[:, :2]
        scale = float(torch.linalg.det(matrix).sqrt())
        angles.append(float(torch.rad2deg(torch.atan2(matrix[0, 1], matrix[0, 0]))))
        # The crop camera: focal scaled, principal point mapped by the affine.
        focal = scale * torch.from_numpy(sample.camera["focal"]).double()
        centre = apply_affine(torch.from_numpy(sample.camera["center"]).double()[None], affine)[0]
        projected = perspective_project(item["keypoints3d"].double(), focal, centre)
        torch.testing.assert_close(projected[visible], item["keypoints2d"].double()[visible], atol=0.02, rtol=0)
        # The same without the 3D rotation misses by pixels once the crop is turned.
        unrotated = item["keypoints3d"].double() @ crop_rotation_3d(angles[-1], torch.float64)
        missed = perspective_project(unrotated, focal, centre)
        if abs(angles[-1]) > 5:
            assert (missed[visible] - item["keypoints2d"].double()[visible]).norm(dim=-1).max() > 1.0
    assert max(abs(a) for a in angles) > 10  # the augmentation did rotate


def test_rotated_root_turns_the_body_like_its_keypoints(synthlr, anny_body):
    from lowres_hps.methods.rsc import hips_root

    data = dataset(synthlr, augment=MultiResAugmentConfig(rotation_deg=60, rotation_probability=1.0))
    for seed in range(2):
        np.random.seed(seed)
        item = data[seed]
        keypoints, _ = anny_body.forward_vector(item["pose_vector"][None]).keypoints("coco17")
        predicted = keypoints[0] - hips_root(keypoints[0])
        expected = item["keypoints3d"] - hips_root(item["keypoints3d"])
        torch.testing.assert_close(predicted, expected, atol=1e-4, rtol=0)


def test_crop_rotation_3d_is_a_turn_about_the_optical_axis():
    rotation = crop_rotation_3d(90.0, torch.float64)
    # Counter-clockwise on screen (y down): the image right (+x) goes to the image top (-y).
    torch.testing.assert_close(rotation @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                               torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(rotation[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert crop_rotation_3d(0.0).dtype == torch.float32
    torch.testing.assert_close(crop_rotation_3d(0.0), torch.eye(3))


class Edited:
    """The SynthLR people, each sample changed by ``edit(sample)`` (another kind of source)."""

    convention = "coco17"

    def __init__(self, reader, edit) -> None:
        self.reader, self.edit = reader, edit

    def __len__(self):
        return len(self.reader)

    def __getitem__(self, index):
        sample = self.reader[index]
        self.edit(sample)
        return sample


def test_2d_only_sources_have_no_3d_labels(synthlr):
    def two_d_only(sample):  # like LSP or COCO
        sample.keypoints3d, sample.body_params, sample.body_model = None, None, None

    item = MultiResolutionDataset([Edited(synthlr, two_d_only)], canvas=CANVAS)[0]
    assert item["has_3d"] == 0 and item["has_params"] == 0
    assert item["visible3d"].sum() == 0 and item["pose_vector"].abs().sum() == 0
    assert item["visible2d"].sum() > 10


def _item(data, index: int, seed: int) -> dict:
    np.random.seed(seed)
    torch.manual_seed(seed)
    return data[index]


def test_flip_mirrors_every_image_and_label(synthlr):
    """A flipped item is the unflipped one (same draws) mirrored: images, 2D and 3D keypoints with left and
    right swapped, and the pose vector through flip_pose_vector."""
    from lowres_hps.body import ANNY_POSE_SPEC, flip_pose_vector

    common = dict(scale=(0.9, 1.1), rotation_deg=40, rotation_probability=1.0)
    plain = dataset(synthlr, augment=MultiResAugmentConfig(**common))
    flipped = dataset(synthlr, augment=MultiResAugmentConfig(flip_probability=1.0, **common))
    perm = COCO17.flip_permutation
    for seed in range(2):
        a, b = _item(plain, seed, seed), _item(flipped, seed, seed)
        torch.testing.assert_close(b["person_heights"], a["person_heights"])
        assert torch.equal(b["images"], a["images"].flip(-1))  # every resolution
        expected2d = a["keypoints2d"][perm].clone()
        expected2d[:, 0] = CANVAS - 1 - expected2d[:, 0]
        torch.testing.assert_close(b["keypoints2d"], expected2d)
        assert torch.equal(b["visible2d"], a["visible2d"][perm])
        torch.testing.assert_close(b["keypoints3d"], a["keypoints3d"][perm] * torch.tensor([-1.0, 1.0, 1.0]))
        assert torch.equal(b["visible3d"], a["visible3d"][perm]) and b["has_3d"] == 1
        torch.testing.assert_close(b["pose_vector"], flip_pose_vector(a["pose_vector"], ANNY_POSE_SPEC))
        assert b["has_params"] == 1


def test_flipped_crops_are_the_crops_of_the_mirrored_source(synthlr):
    """Mirroring the finished crops equals cropping and degrading the mirrored source image (to rounding):
    the protocol's resizes are symmetric, so every resolution flips consistently."""
    from lowres_hps.body import ANNY_POSE_SPEC, flip_pose_vector

    class Mirrored:
        """The SynthLR people in the mirrored images, with left and right swapped."""

        convention = "coco17"

        def __len__(self):
            return len(synthlr)

        def __getitem__(self, index):
            sample = synthlr[index]
            image = np.ascontiguousarray(sample.load_image()[:, ::-1])
            width = image.shape[1]
            sample.load_image = lambda: image
            sample.bbox = np.array([width - 1 - sample.bbox[0] - sample.bbox[2], *sample.bbox[1:]], np.float32)
            perm = COCO17.flip_permutation
            sample.keypoints2d = sample.keypoints2d[perm] * np.array([-1, 1, 1], np.float32) + [width - 1, 0, 0]
            sample.keypoints3d = sample.keypoints3d[perm] * np.array([-1, 1, 1, 1], np.float32)
            vector = flip_pose_vector(torch.from_numpy(sample.body_params["pose_vector"]), ANNY_POSE_SPEC)
            sample.body_params = {**sample.body_params, "pose_vector": vector.numpy()}
            return sample

    heights = [0, 40, 20]
    flipped = dataset(synthlr, person_heights=heights, augment=MultiResAugmentConfig(rotation_probability=0.0,
                                                                                    flip_probability=1.0))
    mirrored = dataset(Mirrored(), person_heights=heights)
    for index in range(2):
        a, b = flipped[index], mirrored[index]
        assert (a["images"].int() - b["images"].int()).abs().max() <= 1
        torch.testing.assert_close(a["keypoints2d"], b["keypoints2d"], atol=1e-4, rtol=0)
        for key in ("visible2d", "keypoints3d", "visible3d", "pose_vector", "person_heights"):
            torch.testing.assert_close(a[key], b[key], msg=key)


def test_flipped_pose_vector_projects_onto_the_flipped_2d_labels(synthlr, anny_body):
    """The flipped (and rotated) pose vector's Anny body, placed at the mirrored root, lands on the flipped
    3D keypoints (to Anny's mirror asymmetry, ~1 mm) and, through the crop camera, on the flipped 2D keypoints."""
    data = dataset(synthlr, augment=MultiResAugmentConfig(rotation_deg=60, rotation_probability=1.0,
                                                          flip_probability=1.0))
    for seed in range(2):
        item, sample = _item(data, seed, seed), synthlr[seed]
        # The crop's 3D frame (mirror times rotation), recovered from the 3D labels.
        source3d = torch.from_numpy(sample.keypoints3d[:, :3]).double()[COCO17.flip_permutation]
        frame = torch.linalg.lstsq(source3d, item["keypoints3d"].double()).solution.T
        assert torch.linalg.det(frame) < 0  # a reflection
        translation = frame @ torch.from_numpy(sample.body_params["translation"]).double()
        with torch.no_grad():
            output = anny_body.forward_vector(item["pose_vector"][None], translation.float()[None])
        keypoints, _ = output.keypoints("coco17")
        torch.testing.assert_close(keypoints[0], item["keypoints3d"], atol=3e-3, rtol=0)
        # The crop camera, from the 2D labels: a mirrored similarity of the source image.
        visible = (item["visible2d"] > 0) & torch.from_numpy(sample.keypoints2d[:, 2] > 0)[COCO17.flip_permutation]
        image_points = torch.from_numpy(sample.keypoints2d[:, :2]).double()[COCO17.flip_permutation]
        affine = _fit_affine(image_points[visible], item["keypoints2d"].double()[visible])
        assert torch.linalg.det(affine[:, :2]) < 0
        focal = float(torch.linalg.det(affine[:, :2]).abs().sqrt()) * torch.from_numpy(sample.camera["focal"]).double()
        centre = apply_affine(torch.from_numpy(sample.camera["center"]).double()[None], affine)[0]
        projected = perspective_project(keypoints[0].double(), focal, centre)
        torch.testing.assert_close(projected[visible], item["keypoints2d"].double()[visible], atol=0.1, rtol=0)


def test_no_flip_draws_nothing(synthlr):
    """flip_probability 0 (the default) draws nothing: the numpy stream advances by the box and colour draws
    alone, as before flips existed, so older configs reproduce their items exactly."""
    from lowres_hps.data.keypoint_dataset import draw_box_augmentation

    common = dict(scale=(0.9, 1.1), rotation_deg=20, color_jitter=0.1)

    def next_draw(config):
        _item(dataset(synthlr, augment=config), 0, 3)
        return np.random.rand()

    np.random.seed(3)
    draw_box_augmentation(np.asarray(synthlr[0].bbox, np.float64), (0.9, 1.1), 20, 0.6)
    np.random.uniform(size=2)  # colour gain and bias
    expected = np.random.rand()
    assert next_draw(MultiResAugmentConfig(**common)) == expected
    assert next_draw(MultiResAugmentConfig(flip_probability=0.0, **common)) == expected
    assert next_draw(MultiResAugmentConfig(flip_probability=1e-12, **common)) != expected  # draws, never flips


@pytest.mark.parametrize("num_betas", [10, 16])
def test_flip_smpl_pose_vectors(synthlr, num_betas):
    """SMPL labels flip with the SMPL pairing, whatever the number of betas."""
    import roma

    from lowres_hps.body import flip_pose_vector
    from lowres_hps.body.pose import _smpl_pose_spec

    spec = _smpl_pose_spec("smpl", 24, num_betas)
    generator = torch.Generator().manual_seed(0)
    vector = spec.join(roma.random_rotmat(24), torch.randn(num_betas, generator=generator))

    class WithSMPL:
        """The first SynthLR person, labelled with an SMPL pose vector."""

        convention = "coco17"

        def __len__(self):
            return 1

        def __getitem__(self, index):
            sample = synthlr[index]
            sample.body_model, sample.body_params = "smpl", {"pose_vector": vector.numpy()}
            return sample

    data = MultiResolutionDataset([WithSMPL()], canvas=CANVAS, body_model="smpl", pose_size=spec.vector_size,
                                  augment=MultiResAugmentConfig(rotation_probability=0.0, flip_probability=1.0))
    item = data[0]
    assert item["has_params"] == 1
    torch.testing.assert_close(item["pose_vector"], flip_pose_vector(vector, spec), atol=1e-6, rtol=0)


def test_teacher_3d_is_weak_not_ground_truth(synthlr):
    def teacher_3d(sample):  # 3D keypoints of a teacher, like BlazePose's on COCO
        sample.body_params, sample.body_model = None, None
        sample.extra["keypoints3d_weak"] = True

    item = MultiResolutionDataset([Edited(synthlr, teacher_3d)], canvas=CANVAS)[0]
    assert item["has_3d"] == 0 and item["has_weak3d"] == 1 and item["visible3d"].sum() > 0
    assert dataset(synthlr)[0]["has_weak3d"] == 0


def test_masks_are_cropped_like_the_images_and_flipped_with_them(tmp_path_factory, anny_body):
    out = tmp_path_factory.mktemp("synthlr_masks")
    generate_dataset(out, 2, seed=1, config=SynthConfig(layout="crops"), workers=1, progress=False)
    reader = SynthLRReader(out, load_masks=True)
    data = MultiResolutionDataset([reader], canvas=64, person_heights=[0, 32], with_masks=True)
    item = data[0]
    mask = item["silhouette"]
    assert mask.shape == (64, 64) and item["has_silhouette"] == 1 and set(mask.unique().tolist()) == {0.0, 1.0}
    # The labelled keypoints sit on the person's mask.
    points = item["keypoints2d"][item["visible2d"] > 0].round().long().clamp(0, 63)
    assert mask[points[:, 1], points[:, 0]].float().mean() > 0.8
    flipped = MultiResolutionDataset([reader], canvas=64, person_heights=[0], with_masks=True,
                                     augment=MultiResAugmentConfig(flip_probability=1.0))
    np.random.seed(0)
    torch.testing.assert_close(flipped[0]["silhouette"], mask.flip(-1))
    without = MultiResolutionDataset([SynthLRReader(out)], canvas=64, person_heights=[0], with_masks=True)
    assert without[0]["has_silhouette"] == 0 and without[0]["silhouette"].sum() == 0


def test_image_transform_sees_the_mask_and_is_the_same_at_every_read(synthlr):
    seen = []

    def darken(image, mask, rng):
        seen.append(mask)
        return (image * rng.uniform(0.2, 0.5)).astype(np.uint8)

    plain = dataset(synthlr, person_heights=[0])
    shifted = MultiResolutionDataset([synthlr], canvas=64, person_heights=[0], image_transform=darken, transform_seed=3)
    first, again = shifted[1]["images"], shifted[1]["images"]
    assert torch.equal(first, again)
    assert first.float().mean() < 0.6 * plain[1]["images"].float().mean()
    other = MultiResolutionDataset([synthlr], canvas=64, person_heights=[0], image_transform=darken, transform_seed=4)
    assert not torch.equal(other[1]["images"], first)
    assert len(seen) == 3
