"""MILI training: the loss's terms and switches, one training run end to end, evaluation."""
from __future__ import annotations

import math

import pytest
import torch

from lowres_hps.data.synth.generator import SynthConfig
from lowres_hps.data.synth.writer import generate_dataset
from lowres_hps.methods.mili import MILILoss, evaluate_mili, keypoint_roi_targets, mili_task
from lowres_hps.models.mili import MILIConfig, build_mili_model

TINY = dict(width_mult=0.35, pretrained=None, roi_size=(8, 6), roi_channels=16, hidden=32, body_canvas=32)
AUGMENT = {"size": [64, 96], "scale": [0.2, 0.3], "max_people": 4}


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory, anny_body):
    out = tmp_path_factory.mktemp("mili_scenes")
    generate_dataset(out, 2, seed=5, config=SynthConfig(layout="scenes", people_per_scene=(2, 3)), workers=1,
                     progress=False)
    return out


@pytest.fixture(scope="module")
def batch(scenes_dir):
    task = mili_task(TINY, scenes=[str(scenes_dir)], augment={**AUGMENT, "centre_crop": True})
    return torch.utils.data.default_collate([task.train_dataset[i] for i in range(2)])


def test_full_loss_has_every_term_and_reaches_the_network(anny_body, batch):
    torch.manual_seed(0)
    net = build_mili_model(MILIConfig(**TINY))
    loss_fn = MILILoss(net.config, anny_body, queue_size=8)
    loss, logs = loss_fn(net, batch)
    assert math.isfinite(loss.item())
    assert {"loss_center", "loss_box", "loss_offset", "loss_keypoints", "loss_mask", "loss_params", "loss_3d",
            "loss_2d", "loss_cs", "loss_roi", "loss_res"} <= set(logs)
    loss.backward()
    assert net.roi_heads.regressor.mlp[0].weight.grad.abs().sum() > 0
    assert net.restoration.decoder[-1].weight.grad.abs().sum() > 0
    assert net.attention[1].conv.weight.grad.abs().sum() > 0
    assert net.attention[0].conv.weight.grad is None  # the high branch runs without gradient
    assert loss_fn.queue.count == 2  # this batch's low-resolution features are the next negatives


def test_switches_drop_their_terms(anny_body, batch):
    net = build_mili_model(MILIConfig(**TINY))
    _, logs = MILILoss(net.config, anny_body, two_branch=False, occlusion=False)(net, batch)
    assert not {"loss_cs", "loss_roi", "loss_res", "loss_mask"} & set(logs)
    _, logs = MILILoss(net.config, anny_body, contrastive=False, roi_mse=False)(net, batch)
    assert "loss_res" in logs and "loss_cs" not in logs and "loss_roi" not in logs
    _, logs = MILILoss(net.config, anny_body, high_supervised=True)(net, batch)
    assert "high_loss_center" in logs
    with pytest.raises(ValueError, match="mask head"):
        MILILoss(MILIConfig(**TINY, mask_head=False), anny_body)
    with pytest.raises(ValueError, match="restoration network"):
        MILILoss(MILIConfig(**TINY, restoration=False), anny_body)


def test_keypoint_targets_sit_on_the_roi_grid():
    rois = torch.tensor([[0.0, 10.0, 20.0, 26.0, 52.0]])  # 16 x 32 px
    keypoints = torch.tensor([[[17.5, 35.5, 2.0], [100.0, 35.0, 2.0], [17.5, 35.5, 0.0]]])
    targets, weight = keypoint_roi_targets(keypoints, rois, (16, 8))
    assert weight.tolist() == [[1.0, 0.0, 0.0]]  # outside the box, unlabelled
    # x: (17.5 + 0.5 - 10) * 8 / 16 - 0.5 = 3.5, y: (35.5 + 0.5 - 20) * 16 / 32 - 0.5 = 7.5: the 4 cells around.
    peak = targets[0, 0]
    assert peak[7:9, 3:5].min() == peak.max()


def test_training_runs_end_to_end_and_evaluates(tmp_path, scenes_dir, anny_body):
    from lowres_hps.engine.config import TrainConfig
    from lowres_hps.engine.trainer import Trainer
    from lowres_hps.core.config import load_config

    cfg = load_config({"task": "lowres_hps.methods.mili:mili_task",
                       "task_args": {"model": TINY, "scenes": [str(scenes_dir)], "augment": AUGMENT,
                                     "val_scenes": str(scenes_dir), "frozen": []},
                       "trainer": {"out_dir": str(tmp_path / "run"), "epochs": 1, "batch_size": 2, "num_workers": 0,
                                   "optim": {"name": "adam", "lr": 1e-4}, "val_every_epochs": 1}}, TrainConfig)
    task = mili_task(**cfg.task_args)
    metrics = Trainer(cfg, task).fit()
    assert {"box_ap", "box_ap50", "matched_3d"} <= set(metrics)
    assert 0.0 <= metrics["box_ap50"] <= 1.0
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_evaluation_scores_a_perfect_detector(anny_body, batch):
    """A network whose detect() returns the ground truth scores box AP 1 and its bodies' errors."""
    net = build_mili_model(MILIConfig(**TINY))
    valid = batch["valid"]

    def perfect(images, min_score=0.0, max_people=None):
        out = []
        for i in range(images.shape[0]):
            n = int(valid[i].sum())
            out.append({"boxes": batch["boxes"][i][valid[i]], "scores": torch.linspace(0.9, 0.5, n),
                        "pose_vector": batch["pose_vector"][i][valid[i]]})
        return out

    net.detect = perfect
    metrics = evaluate_mili(net, anny_body, [batch])
    assert metrics["box_ap50"] == pytest.approx(1.0) and metrics["matched_3d"] == 1.0
    # The true pose vectors give the labelled 3D keypoints back (SynthLR's own body).
    assert metrics["mpjpe_mm"] < 1.0 and metrics["pck3d"] == 1.0
