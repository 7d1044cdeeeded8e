"""CroppedReader: small in-memory crops whose keypoints and boxes still land on the image content."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lowres_hps.data import CocoKeypointsReader
from lowres_hps.data.crop_cache import CroppedReader, InMemorySample
from lowres_hps.data.keypoint_dataset import TopDownKeypointDataset
from lowres_hps.imaging.io import write_image_rgb
from lowres_hps.imaging.protocol import LowResProtocol

# Two people, each in its own image: a green box (edges on pixel edges) with red dots at some keypoints.
# "tall" is 200 px tall (shrunk 4x by max_height=50); "short" is 40 px tall (kept at its resolution).
PEOPLE = {
    "tall": {"size": (400, 300), "box": (99.5, 49.5, 100.0, 200.0), "dots": [(120, 80), (180, 230), (150, 150)],
             "scale": 0.25},
    "short": {"size": (120, 100), "box": (39.5, 39.5, 20.0, 40.0), "dots": [(45, 45), (55, 75)], "scale": 1.0},
}
MAX_HEIGHT = 50.0


@pytest.fixture
def reader(tmp_path):
    images, annotations = [], []
    for index, (name, person) in enumerate(PEOPLE.items(), start=1):
        height, width = person["size"]
        image = np.zeros((height, width, 3), np.uint8)
        x, y, w, h = person["box"]
        image[int(y + 0.5):int(y + h + 0.5), int(x + 0.5):int(x + w + 0.5), 1] = 200
        keypoints = np.zeros((17, 3))
        radius = 4 if person["scale"] < 1 else 1  # still a few pixels after shrinking
        for k, (dx, dy) in enumerate(person["dots"]):
            image[dy - radius:dy + radius + 1, dx - radius:dx + radius + 1, 0] = 255
            keypoints[k] = (dx, dy, 2)
        keypoints[10] = (x, y, 2)            # the box's corners, no dot
        keypoints[11] = (x + w, y + h, 1)
        keypoints[12] = (x + 5, y + 5, 0)    # unlabelled
        write_image_rgb(tmp_path / f"{name}.png", image)
        images.append({"id": index, "file_name": f"{name}.png", "height": height, "width": width})
        annotations.append({"id": 10 + index, "image_id": index, "category_id": 1, "iscrowd": 0,
                            "bbox": list(person["box"]), "keypoints": keypoints.reshape(-1).tolist(),
                            "num_keypoints": int((keypoints[:, 2] > 0).sum())})
    path = tmp_path / "people.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}]}))
    return CocoKeypointsReader(path, tmp_path)


def _centroid(channel: np.ndarray, around: np.ndarray, radius: int = 4) -> np.ndarray:
    x, y = np.round(around).astype(int)
    window = channel[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].astype(np.float64)
    ys, xs = np.mgrid[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
    ys, xs = ys[:window.shape[0], :window.shape[1]], xs[:window.shape[0], :window.shape[1]]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def test_length_convention_and_fields_are_kept(reader):
    cached = CroppedReader(reader, max_height=MAX_HEIGHT)
    assert len(cached) == len(reader) == 2
    assert (cached.convention, cached.dataset, cached.image_root) == (reader.convention, reader.dataset, reader.image_root)
    for original, sample in zip(reader, cached):
        assert isinstance(sample, InMemorySample)
        assert (sample.image_path, sample.ann_id, sample.image_id, sample.convention) == (
            original.image_path, original.ann_id, original.image_id, original.convention)
        assert sample.load_image() is sample.pixels and sample.pixels.dtype == np.uint8
        np.testing.assert_array_equal(sample.keypoints2d[:, 2], original.keypoints2d[:, 2])
        assert (sample.keypoints2d[12] == 0).all()  # unlabelled stays zero
    # 2 x the box's longer side, shrunk so the box is at most 50 px tall.
    assert cached[0].pixels.shape == (100, 100, 3) and cached[1].pixels.shape == (80, 80, 3)
    assert cached[0].bbox[3] == pytest.approx(MAX_HEIGHT) and cached[1].bbox[3] == pytest.approx(40.0)


@pytest.mark.parametrize("name", list(PEOPLE))
def test_dots_land_on_the_mapped_keypoints(reader, name):
    index = list(PEOPLE).index(name)
    sample = CroppedReader(reader, max_height=MAX_HEIGHT)[index]
    red = sample.pixels[..., 0]
    for k in range(len(PEOPLE[name]["dots"])):
        centroid = _centroid(red, sample.keypoints2d[k, :2])
        assert np.abs(centroid - sample.keypoints2d[k, :2]).max() < 0.25, (k, centroid, sample.keypoints2d[k])


@pytest.mark.parametrize("name", list(PEOPLE))
def test_box_maps_as_the_keypoints_and_the_content(reader, name):
    index = list(PEOPLE).index(name)
    sample = CroppedReader(reader, max_height=MAX_HEIGHT)[index]
    x, y, w, h = sample.bbox
    np.testing.assert_allclose([x, y], sample.keypoints2d[10, :2], atol=1e-4)
    np.testing.assert_allclose([x + w, y + h], sample.keypoints2d[11, :2], atol=1e-4)
    scale = PEOPLE[name]["scale"]
    np.testing.assert_allclose([w, h], np.array(PEOPLE[name]["box"][2:]) * scale, rtol=1e-6)
    # The green box's pixels: their centroid is the box centre, their mass its area.
    green = sample.pixels[..., 1].astype(np.float64) / 200
    ys, xs = np.mgrid[0:green.shape[0], 0:green.shape[1]]
    centroid = np.array([(green * xs).sum(), (green * ys).sum()]) / green.sum()
    np.testing.assert_allclose(centroid, [x + w / 2, y + h / 2], atol=0.05)
    assert green.sum() == pytest.approx(w * h, rel=0.02)


def test_training_crops_match_the_uncached_ones(reader):
    protocol = LowResProtocol(input_size=(64, 48), setting="native")
    plain = TopDownKeypointDataset([reader], protocol)
    cached = TopDownKeypointDataset([CroppedReader(reader, max_height=MAX_HEIGHT)], protocol)
    for index in range(len(reader)):
        a, b = plain[index], cached[index]
        assert torch.equal(a["visible"], b["visible"]) and a["visible"].sum() >= 3
        labelled = a["visible"] > 0  # unlabelled joints are zeros, which each crop maps elsewhere
        torch.testing.assert_close(b["keypoints"][labelled], a["keypoints"][labelled], atol=1e-3, rtol=0)
        assert (a["image"].float() - b["image"].float()).abs().mean() < 3.0


def test_bad_arguments(reader):
    with pytest.raises(ValueError, match="max_height must be > 0 and margin >= 1"):
        CroppedReader(reader, max_height=0)
    with pytest.raises(ValueError, match="margin >= 1"):
        CroppedReader(reader, margin=0.5)
