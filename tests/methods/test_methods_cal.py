"""The CAL task: every switchable part gives a finite, differentiable loss; training and reloading a run."""
import math

import pytest
import torch

from lowres_hps.data.synth.generator import SynthConfig
from lowres_hps.data.synth.writer import generate_dataset
from lowres_hps.core.config import load_config
from lowres_hps.engine import TrainConfig, Trainer
from lowres_hps.apis.registry import load_run
from lowres_hps.methods.cal import cal_task

TINY = {"backbone": "resnet18", "backbone_params": {"neck_channels": 16}, "input_size": [64, 48], "stride": 4,
        "codec": "cal", "codec_params": {"radius": 2.0, "sigma": 1.0}, "flip_test": False}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory, anny_body):
    out = tmp_path_factory.mktemp("synthlr")
    generate_dataset(out, 4, seed=0, config=SynthConfig(layout="crops"), workers=1, progress=False)
    return out


def _batch(task, size=4):
    items = [task.train_dataset[i] for i in range(size)]
    return {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in ("image", "keypoints", "visible")}


@pytest.mark.parametrize("codec, heatmap_loss, offset_loss, weighting, stage2, expect_offset", [
    ("msra", "l2", "l1", "codec", None, False),
    ("udp", "ce", "smooth_l1", "codec", None, True),
    ("cal", "l2", "l1", "codec", None, True),
    ("cal", "l2", "l2", "binary", 0, True),
    ("cal", "l2", "l1", "codec", 0, True),
])
def test_every_row_gives_a_finite_loss_with_gradients(synth_dir, codec, heatmap_loss, offset_loss, weighting, stage2,
                                                     expect_offset):
    params = {"sigma": 1.0} if codec == "msra" else {"radius": 2.0}
    model = {**TINY, "codec": codec, "codec_params": params}
    task = cal_task(model, synthlr=[str(synth_dir)], heatmap_loss=heatmap_loss, offset_loss=offset_loss,
                    offset_weighting=weighting, stage2_epoch=stage2, augment={"rotation_deg": 20, "flip_probability": 0.5})
    task.on_epoch_start(0)
    loss, logs = task.loss(task.model, _batch(task))
    assert math.isfinite(loss.item()) and ("loss_offset" in logs) == expect_offset
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in task.model.parameters() if p.requires_grad)


def test_two_stage_switches_to_mixed_gaussian_masks(synth_dir):
    task = cal_task(TINY, synthlr=[str(synth_dir)], stage2_epoch=1)
    task.on_epoch_start(0)
    assert not task.loss.use_mgm
    task.on_epoch_start(1)
    assert task.loss.use_mgm


def test_train_then_reload_the_run(tmp_path, synth_dir):
    config = load_config({
        "task": "lowres_hps.methods.cal:cal_task",
        "task_args": {"model": TINY, "synthlr": [str(synth_dir)], "stage2_epoch": 1, "val_synthlr": str(synth_dir)},
        "trainer": {"out_dir": str(tmp_path / "run"), "epochs": 2, "batch_size": 2, "progress_bar": False,
                    "optim": {"name": "adam", "lr": 1e-3}},
    }, TrainConfig)
    from lowres_hps.engine import build_task

    metrics = Trainer(config, build_task(config.task, config.task_args)).fit()
    assert 0.0 <= metrics["pck@0.1"] <= 1.0
    estimator = load_run(tmp_path / "run")
    keypoints, scores = estimator(torch.zeros(2, 3, 64, 48, dtype=torch.uint8))
    assert keypoints.shape == (2, 17, 2) and scores.shape == (2, 17)
    dark = load_run(tmp_path / "run", config_changes={"codec": "cal"})
    assert dark.codec.__class__.__name__ == "CALCodec"


def test_no_data_is_an_error():
    with pytest.raises(ValueError, match="no training data"):
        cal_task(TINY)


@pytest.mark.shared_data
def test_other_datasets_join_through_the_readers(shared_data, synth_dir):
    mpii = {"format": "mpii", "path": str(shared_data / "mmpose_testdata/mpii/test_mpii.json"),
            "images": str(shared_data / "mmpose_testdata/mpii")}
    task = cal_task(TINY, synthlr=[str(synth_dir)], extra_datasets=[mpii])
    assert len(task.train_dataset) == 4 + 5
    item = task.train_dataset[len(task.train_dataset) - 1]  # an MPII person, mapped to COCO-17
    assert item["visible"].sum() >= 8
    with pytest.raises(ValueError, match="'format' and 'path'"):
        cal_task(TINY, synthlr=[str(synth_dir)], extra_datasets=[{"path": "x"}])


def test_a_source_can_be_cut_to_a_fixed_random_subset(synth_dir):
    subset = [{"format": "synthlr", "path": str(synth_dir), "max_people": 3}]
    first, second = (cal_task(TINY, extra_datasets=subset) for _ in range(2))
    assert len(first.train_dataset) == 3
    ids = [[dataset.train_dataset.readers[0][i].ann_id for i in range(3)] for dataset in (first, second)]
    assert ids[0] == ids[1]  # the same people on every run
    assert len(cal_task(TINY, extra_datasets=[{**subset[0], "max_people": 40}]).train_dataset) == 4
    with pytest.raises(ValueError, match="max_people"):
        cal_task(TINY, extra_datasets=[{**subset[0], "max_people": 0}])
    heights = cal_task(TINY, extra_datasets=[{**subset[0], "person_heights": [32, 128]}])
    assert heights.train_dataset.readers[0].train_person_heights == (32, 128)
    with pytest.raises(ValueError, match="person_heights of .* must be"):
        cal_task(TINY, extra_datasets=[{**subset[0], "person_heights": [50, 20]}])


def test_fine_tuning_starts_from_a_checkpoint(synth_dir, tmp_path):
    import safetensors.torch

    source = cal_task(TINY, synthlr=[str(synth_dir)])
    path = tmp_path / "kp2d.safetensors"
    safetensors.torch.save_file({k: v.half() for k, v in source.model.state_dict().items()}, str(path))
    tuned = cal_task(TINY, synthlr=[str(synth_dir)], init_from=str(path))
    for key, value in source.model.state_dict().items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value.half().to(value.dtype))
    other = {**TINY, "backbone_params": {"neck_channels": 8}}
    with pytest.raises(ValueError, match="kp2d.safetensors does not fit"):
        cal_task(other, synthlr=[str(synth_dir)], init_from=str(path))


def test_heatmap_term_sums_over_pixels_as_the_equations(synth_dir):
    summed = cal_task(TINY, synthlr=[str(synth_dir)])
    averaged = cal_task(TINY, synthlr=[str(synth_dir)], heatmap_reduction="mean")
    averaged.model.load_state_dict(summed.model.state_dict())
    batch = _batch(summed)
    _, logs_sum = summed.loss(summed.model, batch)
    _, logs_mean = averaged.loss(averaged.model, batch)
    heatmap_pixels = 16 * 12  # 64 x 48 input at stride 4
    torch.testing.assert_close(logs_sum["loss_heatmap"], logs_mean["loss_heatmap"] * heatmap_pixels)
    torch.testing.assert_close(logs_sum["loss_offset"], logs_mean["loss_offset"])
    with pytest.raises(ValueError, match="heatmap_reduction"):
        cal_task(TINY, synthlr=[str(synth_dir)], heatmap_reduction="max")


def test_upsample_setting_degrades_people_and_validates_on_any_dataset(synth_dir):
    task = cal_task(TINY, synthlr=[str(synth_dir)], protocol_setting="upsample", crop_cache_height=64,
                    augment={"person_heights": [12, 24], "person_height_probability": 1.0, "noise_probability": 1.0},
                    val_datasets=[{"format": "synthlr", "path": str(synth_dir)}], val_person_height=16)
    item = task.train_dataset[0]
    assert item["image"].shape == (3, 64, 48) and task.val_dataset is not None
    with torch.no_grad():
        metrics = task.evaluate(task.model.eval(), [_batch(task, 2)])
    assert set(metrics) == {"pck@0.1", "mean_error_px"}
