"""Self-supervised fine-tuning end to end at toy size: unlabelled people from a video, both stages, a loadable
copy whose card names its data, a resumed run, and clear errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lowres_hps.apis.adaptation import AdaptationError
from lowres_hps.apis.registry import ModelCard, load_model, read_card, save_checkpoint
from lowres_hps.apis.selfsup import load_backgrounds, selfsup_body3d, unlabelled_dataset
from lowres_hps.apis.unlabelled import collect_unlabelled_people
from lowres_hps.methods.sspse import SSPSEConfig
from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model
from lowres_hps.models.sspse import SSPSEHeadsConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_apis_unlabelled import FOREGROUND, walker_detector, walker_video  # noqa: E402


@pytest.fixture()
def people(tmp_path) -> Path:
    path, _ = collect_unlabelled_people([walker_video(tmp_path / "walker.avi")], tmp_path / "people",
                                        walker_detector, detect_every=1, foreground=FOREGROUND)
    return path


def tiny_estimator(tmp_path) -> Body3DEstimator:
    config = Body3DConfig(canvas=64, hidden=32, iterations=2)
    card = ModelCard.from_config("tiny_rsc", config, training_data=["synthlr_train"])
    return load_model(save_checkpoint(build_body3d_model(config, pretrained=False), card, tmp_path / "tiny.safetensors"))


def small_heads(estimator) -> SSPSEHeadsConfig:
    return SSPSEHeadsConfig(feature_dim=estimator.model.backbone.feature_dim, num_faces=int(estimator.body.faces.shape[0]),
                            patch=16, disc_size=32, hidden=16, decoder_channels=16, disc_channels=8, texture_rank=4)


def test_unlabelled_people_are_cropped_at_every_range_with_masks(people):
    dataset = unlabelled_dataset([people], canvas=64)
    item = dataset[0]
    assert item["images"].shape == (5, 3, 64, 64) and item["has_silhouette"] == 1
    assert item["silhouette"].sum() > 20


def test_files_without_masks_are_refused(tmp_path, people):
    data = json.loads(people.read_text())
    for ann in data["annotations"]:
        ann.pop("segmentation")
    bare = tmp_path / "people" / "bare.json"
    bare.write_text(json.dumps(data))
    with pytest.raises(AdaptationError, match="bare.json"):
        unlabelled_dataset([bare], canvas=64)


def test_backgrounds_are_patches_of_the_folder(tmp_path):
    folder = tmp_path / "bg"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 100, np.uint8))
    (folder / "broken.jpg").write_bytes(b"no image")
    patches = load_backgrounds(folder, 16, per_image=3)
    assert patches.shape == (3, 3, 16, 16) and torch.allclose(patches, torch.full_like(patches, 100 / 255), atol=0.01)
    with pytest.raises(AdaptationError, match="no readable images"):
        load_backgrounds(tmp_path / "people", 16)


def test_selfsup_writes_a_loadable_copy_and_resumes(tmp_path, people):
    torch.set_num_threads(1)
    estimator = tiny_estimator(tmp_path)
    dataset = unlabelled_dataset([people], canvas=64)
    before = {k: v.clone() for k, v in estimator.model.state_dict().items()}
    kwargs = dict(work_dir=tmp_path / "work", config=SSPSEConfig(render_size=32), heads=small_heads(estimator),
                  pretrain_steps=2, steps=2, batch_size=4, lr=1e-4, progress_bar=False, amp=False,
                  trained_on={"sources": ["walker.avi"]})
    out, _ = selfsup_body3d(estimator, dataset, tmp_path / "tuned.safetensors", **kwargs)
    card = read_card(out)
    assert card.extra["adapted_from"] == "tiny_rsc" and "walker.avi" in card.notes
    how = card.extra["adaptation"]
    assert how["sources"] == ["walker.avi"] and how["pretext"] == ["jigsaw", "rotation", "inpainting"]
    assert how["steps"] == 2 and how["supervision"] == "self"
    tuned = load_model(out)
    assert any(not torch.equal(before[k], v) for k, v in tuned.model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in estimator.model.state_dict().items())  # the start untouched
    for stage in ("pretrain", "mesh"):
        assert (tmp_path / "work" / stage / "metrics.csv").is_file()
    again, _ = selfsup_body3d(estimator, dataset, tmp_path / "again.safetensors", **kwargs)  # resumes: finished
    resumed = load_model(again).model.state_dict()
    assert all(torch.equal(resumed[k], v) for k, v in tuned.model.state_dict().items())
    # T2 alone from the saved T1 parts (one T1 shared by several ablations)
    parts = tmp_path / "work" / "pretrain" / "model.safetensors"
    shared, _ = selfsup_body3d(estimator, dataset, tmp_path / "shared.safetensors", **{
        **kwargs, "work_dir": tmp_path / "work2", "pretrained_parts": parts})
    assert read_card(shared).extra["adaptation"]["pretrain_steps"] == 0
    assert not (tmp_path / "work2" / "pretrain").exists()
    with pytest.raises(AdaptationError, match="fewer than one batch"):
        selfsup_body3d(estimator, dataset, tmp_path / "x.safetensors", work_dir=tmp_path / "w2",
                       batch_size=len(dataset) + 1)
