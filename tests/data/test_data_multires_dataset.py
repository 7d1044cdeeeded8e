"""Multi-resolution person crops for 3D regression: item layout, range indices, and labels that stay
consistent with the crop camera under the rotation augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

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


def test_2d_only_sources_have_no_3d_labels(synthlr):
    class TwoDOnly:
        """The SynthLR people without their 3D side (like LSP or COCO)."""

        convention = "coco17"

        def __len__(self):
            return len(synthlr)

        def __getitem__(self, index):
            sample = synthlr[index]
            sample.keypoints3d, sample.body_params, sample.body_model = None, None, None
            return sample

    item = MultiResolutionDataset([TwoDOnly()], canvas=CANVAS)[0]
    assert item["has_3d"] == 0 and item["has_params"] == 0
    assert item["visible3d"].sum() == 0 and item["pose_vector"].abs().sum() == 0
    assert item["visible2d"].sum() > 10


def test_teacher_3d_is_weak_not_ground_truth(synthlr):
    class Teacher3D:
        """The SynthLR people with their 3D keypoints marked as a teacher's (like BlazePose on COCO)."""

        convention = "coco17"

        def __len__(self):
            return len(synthlr)

        def __getitem__(self, index):
            sample = synthlr[index]
            sample.body_params, sample.body_model = None, None
            sample.extra["keypoints3d_weak"] = True
            return sample

    item = MultiResolutionDataset([Teacher3D()], canvas=CANVAS)[0]
    assert item["has_3d"] == 0 and item["has_weak3d"] == 1 and item["visible3d"].sum() > 0
    assert dataset(synthlr)[0]["has_weak3d"] == 0
