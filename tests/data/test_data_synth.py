"""SynthLR: label consistency, determinism, readers, and the synth command."""
import filecmp
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from lowres_hps.cli import main
from lowres_hps.data import SynthLRReader
from lowres_hps.data.synth.generator import SynthConfig, SynthGenerator
from lowres_hps.data.synth.poses import KEY_POSES, PoseSampler, key_pose_vector
from lowres_hps.data.synth.writer import generate_dataset


@pytest.fixture(scope="module")
def crop_generator(anny_body):
    return SynthGenerator(SynthConfig(layout="crops", occluder_probability=0.5))


@pytest.fixture(scope="module")
def scene_generator(anny_body):
    return SynthGenerator(SynthConfig(layout="scenes", people_per_scene=(4, 8)))


def _labelled_samples(crop_generator, scene_generator):
    return [crop_generator.sample(7, i) for i in range(8)] + [scene_generator.sample(7, i) for i in range(2)]


def test_labels_agree_with_masks_and_depth(crop_generator, scene_generator):
    inside, visible_total, occluded_total = 0, 0, 0
    for sample in _labelled_samples(crop_generator, scene_generator):
        height, width = sample.depth.shape
        for person in sample.people:
            keypoints = person.keypoints2d
            cols = np.round(keypoints[:, 0]).astype(int).clip(0, width - 1)
            rows = np.round(keypoints[:, 1]).astype(int).clip(0, height - 1)
            visible = keypoints[:, 2] == 2
            inside += int(person.mask[rows[visible], cols[visible]].sum())
            visible_total += int(visible.sum())
            occluded = keypoints[:, 2] == 1
            occluded_total += int(occluded.sum())
            # An occluded keypoint lies behind the front-most surface at its pixel.
            assert np.all(sample.depth[rows[occluded], cols[occluded]] < person.keypoints3d[occluded, 2])
            # Keypoints outside the image are unlabelled.
            outside = (person.projected2d[:, 0] < -0.5) | (person.projected2d[:, 0] > width - 0.5) \
                | (person.projected2d[:, 1] < -0.5) | (person.projected2d[:, 1] > height - 0.5)
            assert np.all(keypoints[outside, 2] == 0)
    assert visible_total > 100 and occluded_total > 5
    assert inside / visible_total >= 0.98


def test_crop_layout_frames_the_person(crop_generator):
    sample = crop_generator.sample(3, 0)
    assert sample.image.shape == (224, 224, 3) and len(sample.people) == 1
    person = sample.people[0]
    projected = person.projected2d
    # The person box enlarged by 1.25 roughly fills the crop.
    extent = (projected.max(0) - projected.min(0)).max()
    assert 100 < extent < 224
    # 2D keypoints are the 3D keypoints through the camera.
    reprojected = sample.focal * person.keypoints3d[:, :2] / person.keypoints3d[:, 2:] + np.array(sample.principal_point)
    np.testing.assert_allclose(reprojected, projected, atol=1e-3)


def test_body_parameters_reproduce_the_3d_keypoints(crop_generator, scene_generator, anny_body):
    for sample in (crop_generator.sample(11, 0), scene_generator.sample(11, 0)):
        for person in sample.people[:3]:
            output = anny_body.forward_vector(torch.from_numpy(person.pose_vector)[None],
                                              translation=torch.from_numpy(person.translation)[None])
            coco, _ = output.keypoints("coco17")
            np.testing.assert_allclose(coco[0].detach().numpy(), person.keypoints3d, atol=2e-3)


def test_key_poses_are_plausible_and_interpenetration_is_rejected(anny_body):
    sampler = PoseSampler(anny_body)
    spec = anny_body.pose_spec
    rest_shape = torch.tensor(spec.rest_shape)
    for name in KEY_POSES:
        vector = torch.cat([key_pose_vector(name, spec).float(), rest_shape])[None]
        assert sampler.is_plausible(anny_body.forward_vector(vector)), name
    # Both arms swung far across the chest pass through each other.
    crossed = {"left_shoulder": (-80.0, -70.0, 0.0), "right_shoulder": (-80.0, 70.0, 0.0)}
    import lowres_hps.data.synth.poses as poses
    poses.KEY_POSES["_crossed"] = crossed
    try:
        vector = torch.cat([key_pose_vector("_crossed", spec).float(), rest_shape])[None]
    finally:
        del poses.KEY_POSES["_crossed"]
    assert not sampler.is_plausible(anny_body.forward_vector(vector))


def test_same_seed_same_bytes_with_one_or_two_workers(tmp_path, anny_body):
    config = SynthConfig(layout="crops")
    generate_dataset(tmp_path / "a", 4, seed=3, config=config, workers=1, progress=False)
    generate_dataset(tmp_path / "b", 4, seed=3, config=config, workers=2, progress=False)
    comparison = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files = ["annotations.json", "annotations_3d.npz"]
    assert filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)[0] == files
    for sub in ("images", "labels"):
        names = sorted(p.name for p in (tmp_path / "a" / sub).iterdir())
        match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a" / sub, tmp_path / "b" / sub, names, shallow=False)
        assert not mismatch and not errors and len(match) == len(names) > 0
    assert not comparison.left_only and not comparison.right_only
    # A different seed gives different data.
    generate_dataset(tmp_path / "c", 1, seed=4, config=config, workers=1, progress=False)
    assert (tmp_path / "a" / "images" / "000000000.jpg").read_bytes() != (tmp_path / "c" / "images" / "000000000.jpg").read_bytes()


def test_output_loads_in_pycocotools_and_the_readers(tmp_path, anny_body):
    generate_dataset(tmp_path, 3, seed=1, config=SynthConfig(layout="scenes", people_per_scene=(2, 3)),
                     workers=1, progress=False)
    coco = COCO(str(tmp_path / "annotations.json"))
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(coco.getImgIds()) == 3 and len(annotations) >= 3
    for ann in annotations:
        mask = coco.annToMask(ann)
        assert mask.sum() == pytest.approx(ann["area"])
        x, y, w, h = ann["bbox"]
        rows, cols = np.nonzero(mask)
        assert cols.min() == x and rows.min() == y and cols.max() - cols.min() + 1 == w
    reader = SynthLRReader(tmp_path, load_masks=True)
    assert len(reader) == len(annotations) and not reader.skipped
    sample = reader[0]
    assert sample.keypoints3d.shape == (17, 4) and sample.body_params["pose_vector"].shape == (126,)
    assert sample.mask.sum() > 0 and sample.load_image().shape == (512, 832, 3)
    # The body-part map labels exactly the people's pixels.
    from lowres_hps.imaging.io import read_image_rgb  # noqa: F401  (images load through the project reader)
    import cv2
    image_entry = coco.loadImgs(sample.image_id)[0]
    parts = cv2.imread(str(tmp_path / image_entry["part_map"]), cv2.IMREAD_UNCHANGED)
    instances = cv2.imread(str(tmp_path / image_entry["instance_map"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(parts > 0, instances > 0)


def test_synth_command_preview_and_errors(tmp_path, capsys, anny_body):
    assert main(["synth", "--count", "2", "--preview", str(tmp_path / "sheet.png")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (tmp_path / "sheet.png").stat().st_size > 1000 and summary["preview"].endswith("sheet.png")
    assert main(["synth", "--out", str(tmp_path / "x"), "--backgrounds", str(tmp_path / "none")]) == 2
    assert "backgrounds folder not found" in capsys.readouterr().err


def test_sequences_keep_identities_and_move_people_steadily(anny_body):
    generator = SynthGenerator(SynthConfig(layout="scenes", scene_size=(128, 192), people_per_scene=(2, 3),
                                           scene_focal=(150.0, 300.0), occluder_probability=0.0))
    frames = generator.sequence(5, 0, num_frames=4, fps=5.0)
    again = generator.sequence(5, 0, num_frames=4, fps=5.0)
    assert len(frames) == 4 and np.array_equal(frames[-1].image, again[-1].image)  # a function of (seed, index)
    assert not np.array_equal(frames[0].image, frames[-1].image)  # the people moved
    tracks: dict[int, list[np.ndarray]] = {}
    for frame in frames:
        ids = [p.person_id for p in frame.people]
        assert len(ids) == len(set(ids)) and all(i >= 0 for i in ids)
        for person in frame.people:
            tracks.setdefault(person.person_id, []).append(person.projected2d.mean(axis=0))
    steady = [np.stack(c) for c in tracks.values() if len(c) == 4]
    assert steady, "some person should stay in view for the whole sequence"
    for centres in steady:  # constant velocity: equal steps (perspective makes them nearly equal)
        steps = np.diff(centres, axis=0)
        assert np.linalg.norm(steps, axis=1).min() > 0.5
        np.testing.assert_allclose(steps, np.broadcast_to(steps.mean(axis=0), steps.shape),
                                   atol=0.15 * np.linalg.norm(steps.mean(axis=0)) + 0.2)
    with pytest.raises(ValueError, match="num_frames"):
        generator.sequence(5, 0, num_frames=0)
    with pytest.raises(ValueError, match="headings"):
        generator.sequence(5, 0, num_frames=2, headings="north")


def test_sequences_in_any_direction_walk_towards_and_away_from_the_camera(anny_body):
    generator = SynthGenerator(SynthConfig(layout="scenes", scene_size=(128, 192), people_per_scene=(4, 4),
                                           scene_focal=(150.0, 300.0), occluder_probability=0.0))
    depth_speeds = []
    for seed in range(4):
        frames = generator.sequence(seed, 0, num_frames=2, fps=1.0, headings="any")
        first = {p.person_id: p.translation for p in frames[0].people}
        depth_speeds += [abs(p.translation[2] - first[p.person_id][2]) / max(
            np.linalg.norm(p.translation - first[p.person_id]), 1e-9) for p in frames[1].people if p.person_id in first]
    assert max(depth_speeds) > 0.7  # someone walks mostly along the camera's axis (across: at most sin 0.5 = 0.48)
