"""Silhouette adaptation from a video: people cut with their silhouettes, the ones that touch left out, a moving
camera refused, and an adapted copy written with a card that says what it was adapted on."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from lowres_hps.apis.adaptation import AdaptationError, adapt_body3d, collect_silhouette_crops, touching_boxes
from lowres_hps.apis.registry import ModelCard, load_model, read_card, save_checkpoint
from lowres_hps.data.silhouette_crops import SilhouetteCrops, save_silhouette_crops
from lowres_hps.imaging.foreground import ForegroundConfig
from lowres_hps.methods.sta import SilhouetteAdaptConfig, SilhouetteAdaptLoss
from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model

H, W = 120, 200


def _background() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, size=(H // 8, W // 8, 3)).astype(np.uint8)
    import cv2

    return cv2.resize(base, (W, H), interpolation=cv2.INTER_LINEAR)


def walkers(frames: int = 60, meet: bool = False):
    """A static camera, and two textured 'people' (16 x 40 px) walking; with ``meet`` they walk side by side, touching."""
    background = _background()
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 255, size=(40, 16, 3)).astype(np.uint8)
    for index in range(frames):
        frame = background.copy()
        frame = np.clip(frame.astype(np.int16) + rng.integers(-3, 4, size=frame.shape), 0, 255).astype(np.uint8)
        x1 = 10 + 2 * index % (W - 40)
        x2 = x1 + 17 if meet else W - 30 - (2 * index % (W - 60))
        boxes = []
        for x in (x1, x2):
            frame[60:100, x:x + 16] = texture
            boxes.append([x, 60, 16, 40])
        yield index, frame, np.array(boxes, np.float64)


def write_walkers_video(path, frames: int = 80):
    """The walkers as an MJPG video file."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    for _, frame, _ in walkers(frames):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def walkers_detector():
    """A detector for the walkers' (decoded) video: they are where a frame differs from the empty scene."""
    import cv2

    background = _background().astype(int)

    def detect(frame):
        changed = (np.abs(frame.astype(int) - background).max(-1) > 40).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(changed)
        boxes = np.array([s[:4] for s in stats[1:] if s[4] > 100], np.float64).reshape(-1, 4)
        return boxes, np.full(len(boxes), 0.9)

    return detect


class TrueBoxes:
    """A detector that knows where the people are (the frames' own boxes)."""

    def __init__(self, data):
        self.data = data

    def __call__(self, frame):
        boxes = next(b for _, f, b in self.data if f is frame)
        return boxes, np.full(len(boxes), 0.9)


def _collect(meet=False, detect_every=1, frames=60):
    data = list(walkers(frames, meet))
    return collect_silhouette_crops(((i, f) for i, f, _ in data), TrueBoxes(data), 64, source="walkers",
                                    foreground=ForegroundConfig(warmup_frames=10), detect_every=detect_every)


def test_touching_boxes():
    boxes = np.array([[0, 0, 10, 10], [10.2, 0, 10, 10], [50, 50, 10, 10]])
    assert touching_boxes(boxes).tolist() == [True, True, False]
    assert touching_boxes(np.zeros((0, 4))).tolist() == []


def test_people_are_cut_with_their_silhouettes():
    crops, report = _collect()
    assert report.frames_read == 60 and report.frames_with_masks == 50 and report.frames_detected == 50
    assert len(crops) == report.people > 60
    item = crops[0]
    assert item["images"].shape == (1, 3, 64, 64) and item["silhouette"].shape == (64, 64)
    # The person is 40 px tall in a crop of 1.25 x 40 px: the silhouette spans ~80% of the crop's height.
    rows = item["silhouette"].sum(1).nonzero()
    assert 0.65 < (rows.max() - rows.min() + 1).item() / 64 < 0.9
    assert 0.1 < item["silhouette"].mean().item() < 0.4
    assert "people" in report.summary()


def test_people_who_touch_are_left_out():
    crops, report = _collect(meet=True)
    assert len(crops) == 0 and report.rejected["touching another person"] == 2 * 50


def test_a_moving_camera_is_a_clear_error():
    def panning():
        background = _background()
        for index in range(40):
            yield index, np.roll(background, 5 * index, axis=1)

    with pytest.raises(AdaptationError, match="static camera"):
        collect_silhouette_crops(panning(), lambda f: (np.zeros((0, 4)), np.zeros(0)), 64, source="pan",
                                 foreground=ForegroundConfig(warmup_frames=5, max_bad_frames=5))


def test_crops_file_round_trip(tmp_path):
    crops, _ = _collect(frames=30)
    path = save_silhouette_crops(tmp_path / "crops.npz", crops.images.numpy(), crops.range_index.numpy(),
                                 crops.silhouettes.numpy(), crops.frames)
    again = SilhouetteCrops.load(path)
    assert len(again) == len(crops) and torch.equal(again.silhouettes, crops.silhouettes)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(Exception, match="bad.npz"):
        SilhouetteCrops.load(tmp_path / "bad.npz")


def test_adaptation_writes_a_loadable_copy_with_its_card(tmp_path, anny_body):
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    network = build_body3d_model(config, pretrained=False)
    card = ModelCard.from_config("tiny_rsc", config, training_data=["synthlr_train"])
    source = save_checkpoint(network, card, tmp_path / "tiny.safetensors")
    estimator = load_model(source)
    crops, _ = _collect(frames=30)
    before = {k: v.clone() for k, v in estimator.model.state_dict().items()}
    out, _ = adapt_body3d(estimator, crops, tmp_path / "adapted.safetensors", work_dir=tmp_path / "work",
                          config=SilhouetteAdaptConfig(render_size=32, fit_every=2, fit_steps=1), steps=2,
                          batch_size=4, lr=1e-4, adapted_on={"source": "walkers", "frames": "1-30"},
                          progress_bar=False)
    adapted_card = read_card(out)
    assert adapted_card.extra["adapted_from"] == "tiny_rsc"
    how = adapted_card.extra["adaptation"]
    assert how["source"] == "walkers" and how["steps"] == 2 and how["losses"] == "ours"
    adapted = load_model(out)
    assert isinstance(adapted, Body3DEstimator)
    assert any(not torch.equal(before[k], v) for k, v in adapted.model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in estimator.model.state_dict().items())  # the source untouched
    assert (tmp_path / "work" / "metrics.csv").is_file()
    with pytest.raises(AdaptationError, match="fewer than one batch"):
        adapt_body3d(estimator, SilhouetteCrops(crops.images[:2].numpy(), crops.range_index[:2].numpy(),
                                                crops.silhouettes[:2].numpy()),
                     tmp_path / "x.safetensors", work_dir=tmp_path / "w2", batch_size=4)


def test_backbone_only_adaptation_keeps_the_regressor(tmp_path, anny_body):
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    network = build_body3d_model(config, pretrained=False)
    source = save_checkpoint(network, ModelCard.from_config("tiny_rsc", config), tmp_path / "tiny.safetensors")
    estimator = load_model(source)
    crops, _ = _collect(frames=30)
    before = {k: v.clone() for k, v in estimator.model.state_dict().items()}
    out, _ = adapt_body3d(estimator, crops, tmp_path / "adapted.safetensors", work_dir=tmp_path / "work",
                          config=SilhouetteAdaptConfig(render_size=32, fit_every=0), steps=2, batch_size=4, lr=1e-3,
                          progress_bar=False, trainable="backbone")
    after = load_model(out).model.state_dict()
    assert all(torch.equal(before[k], v) for k, v in after.items() if k.startswith("regressor."))
    assert any(not torch.equal(before[k], v) for k, v in after.items() if k.startswith("backbone."))
    assert read_card(out).extra["adaptation"]["trainable"] == "backbone"
    with pytest.raises(AdaptationError, match="trainable must be one of all, backbone"):
        adapt_body3d(estimator, crops, tmp_path / "x.safetensors", work_dir=tmp_path / "w2", batch_size=4,
                     trainable="head")


def test_held_out_people_choose_what_is_kept(tmp_path, anny_body, monkeypatch):
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    network = build_body3d_model(config, pretrained=False)
    source = save_checkpoint(network, ModelCard.from_config("tiny_rsc", config), tmp_path / "tiny.safetensors")
    estimator = load_model(source)
    crops, _ = _collect(frames=30)
    train, held_out = Subset(crops, range(0, len(crops), 2)), Subset(crops, range(1, len(crops), 2))
    silhouettes = SilhouetteAdaptConfig(render_size=32, fit_every=0)
    real = SilhouetteAdaptLoss.evaluate
    measured = real(SilhouetteAdaptLoss(silhouettes, estimator.config, anny_body,
                                        torch.tensor(anny_body.pose_spec.rest_shape)),
                    estimator.model.eval(), torch.utils.data.DataLoader(held_out, batch_size=4))
    assert 0 <= measured["silhouette_iou"] <= 1 and measured["silhouette_loss"] > 0

    def scripted(values):  # the source first, then one value per pass
        remaining = list(values)
        return lambda self, model, batches: {"silhouette_iou": remaining.pop(0), "silhouette_loss": 1.0}

    passes = math.ceil(4 / (len(train) // 4))
    monkeypatch.setattr(SilhouetteAdaptLoss, "evaluate", scripted([0.5] + [0.4] * passes))
    out, metrics = adapt_body3d(estimator, train, tmp_path / "worse.safetensors", work_dir=tmp_path / "w1",
                                config=silhouettes, steps=4, batch_size=4, lr=1e-2, progress_bar=False,
                                val_dataset=held_out)
    kept = read_card(out).extra["adaptation"]["validation"]
    assert kept == {"people": len(held_out), "metric": "silhouette_iou", "before": 0.5, "best": 0.4,
                    "kept": "the source's weights (no pass beat them)"}
    assert metrics["kept"] == kept["kept"]
    after = load_model(out).model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in estimator.model.state_dict().items())

    monkeypatch.setattr(SilhouetteAdaptLoss, "evaluate", scripted([0.5, 0.6] + [0.55] * passes))
    out, _ = adapt_body3d(estimator, train, tmp_path / "better.safetensors", work_dir=tmp_path / "w2",
                          config=silhouettes, steps=4, batch_size=4, lr=1e-2, progress_bar=False,
                          val_dataset=held_out)
    kept = read_card(out).extra["adaptation"]["validation"]
    assert kept["best"] == 0.6 and kept["kept"] == f"pass 1 of {passes}"
    after = load_model(out).model.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in estimator.model.state_dict().items())
