"""The RSC-Net task: loss terms and their switches, progressive ranges, real 3D sets, and a short training run."""
from __future__ import annotations

import math

import pytest
import torch

from lowres_hps.body.keypoints import get_convention
from lowres_hps.data.synth.generator import SynthConfig
from lowres_hps.data.synth.writer import generate_dataset
from lowres_hps.core.config import load_config
from lowres_hps.engine import TrainConfig, Trainer, build_task
from lowres_hps.apis.registry import load_run
from lowres_hps.methods.rsc import RSCLoss, hips_root, rsc_task
from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model

TINY = {"canvas": 64, "hidden": 32, "iterations": 2}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory, anny_body):
    out = tmp_path_factory.mktemp("synthlr")
    generate_dataset(out, 2, seed=0, config=SynthConfig(layout="crops"), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def synth_batch(synth_dir):
    """Two SynthLR people at all five resolutions, collated."""
    task = rsc_task(TINY, synthlr=[str(synth_dir)], augment={"rotation_deg": 20})
    return torch.utils.data.default_collate([task.train_dataset[i] for i in range(2)])


def make_loss(anny_body, **kwargs) -> tuple[torch.nn.Module, RSCLoss]:
    cfg = Body3DConfig(**TINY)
    return build_body3d_model(cfg), RSCLoss(cfg, anny_body, queue_size=64, **kwargs)


def test_full_loss_is_finite_and_reaches_every_parameter(anny_body, synth_batch):
    model, loss_fn = make_loss(anny_body, range_schedule=None)
    loss, logs = loss_fn(model, synth_batch)
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert set(logs) == {"loss_params", "loss_3d", "loss_2d", "resolutions", "loss_ss", "loss_feat", "loss_camera_floor"}
    assert logs["resolutions"].item() == 5
    assert all(v.item() >= 0 for v in logs.values())
    lam = loss_fn.lambdas
    total = (lam["params"] * logs["loss_params"] + lam["3d"] * logs["loss_3d"] + lam["2d"] * logs["loss_2d"]
             + lam["ss"] * logs["loss_ss"] + lam["feat"] * logs["loss_feat"]
             + lam["camera_floor"] * logs["loss_camera_floor"])
    assert loss.item() == pytest.approx(total.item(), rel=1e-5)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["backbone.alpha"].abs().sum() > 0
    # The contrastive queue took this batch's features (2 people x 5 resolutions) as negatives for the next.
    assert loss_fn.queue.count == 10 and loss_fn.queue.features.shape == (64, 512)
    _, logs = loss_fn(model, synth_batch)
    assert logs["loss_feat"] > 0 and loss_fn.queue.count == 20


def test_progressive_training_adds_lower_resolutions(anny_body, synth_batch):
    model, loss_fn = make_loss(anny_body, range_schedule=[0, 0, 1, 2, 3], feature_loss=None)
    assert loss_fn.active == [0, 1]
    _, logs = loss_fn(model, synth_batch)
    assert logs["resolutions"].item() == 2
    for epoch, active in ((1, [0, 1, 2]), (2, [0, 1, 2, 3]), (3, [0, 1, 2, 3, 4]), (9, [0, 1, 2, 3, 4])):
        loss_fn.on_epoch_start(epoch)
        assert loss_fn.active == active
    _, logs = loss_fn(model, synth_batch)
    assert logs["resolutions"].item() == 5
    loss_fn.on_epoch_start(0)  # resuming at an earlier epoch gives that epoch's ranges
    assert loss_fn.active == [0, 1]


def test_ranges_per_step_trains_a_random_subset_of_the_active_ranges(anny_body, synth_batch):
    model, loss_fn = make_loss(anny_body, range_schedule=None, feature_loss=None, ranges_per_step=2)
    torch.manual_seed(0)
    draws = [loss_fn.step_ranges() for _ in range(40)]
    assert all(len(d) == 2 and d == sorted(d) and len(set(d)) == 2 for d in draws)
    assert set().union(*draws) == {0, 1, 2, 3, 4}
    torch.manual_seed(0)
    assert [loss_fn.step_ranges() for _ in range(40)] == draws  # the trainer's seed fixes the draw
    _, logs = loss_fn(model, synth_batch)
    assert logs["resolutions"].item() == 2 and math.isfinite(logs["loss_ss"].item())
    # Never more than the active ranges: progressive training's first epoch has two.
    _, early = make_loss(anny_body, range_schedule=[0, 0, 1, 2, 3], ranges_per_step=3)
    assert early.step_ranges() == [0, 1]
    for bad in (0, 6):
        with pytest.raises(ValueError, match="ranges_per_step must be between 1 and 5"):
            make_loss(anny_body, ranges_per_step=bad)


def test_camera_floor_grows_a_collapsed_scale_back(anny_body, synth_batch):
    # Below MIN_CAMERA_SCALE the projection's clamp gives the scale no gradient; the floor's hinge does.
    grads = {}
    for weight in (1.0, 0.0):
        torch.manual_seed(0)
        model, loss_fn = make_loss(anny_body, self_supervision=None, feature_loss=None, range_schedule=None,
                                   lambda_camera_floor=weight)
        model.eval()  # no dropout: the two runs differ only by the floor
        start = model.regressor.mean_params.detach().clone()
        start[-3] = -0.2  # a collapsed crop scale
        model.regressor.set_mean_params(start)
        model.regressor.mean_params.requires_grad_(True)
        loss, logs = loss_fn(model, synth_batch)
        assert logs["loss_camera_floor"] > 0.1 if weight else "loss_camera_floor" not in logs
        grads[weight] = torch.autograd.grad(loss, model.regressor.mean_params)[0][-3]
    assert grads[1.0] - grads[0.0] < -0.5  # descent raises the scale: the hinge's slope, -2 x (0.25 + 0.2)
    _, logs = make_loss(anny_body)[1](build_body3d_model(Body3DConfig(**TINY)), synth_batch)
    assert logs["loss_camera_floor"] == 0  # scales near 1 cost nothing


def test_switches_and_their_errors(anny_body, synth_batch):
    model, plain = make_loss(anny_body, self_supervision=None, feature_loss=None, range_schedule=None)
    _, logs = plain(model, synth_batch)
    assert set(logs) == {"loss_params", "loss_3d", "loss_2d", "resolutions", "loss_camera_floor"}
    for form in ("symmetric", "highest"):
        _, logs = make_loss(anny_body, self_supervision=form, feature_loss="cosine")[1](model, synth_batch)
        assert math.isfinite(logs["loss_ss"].item()) and math.isfinite(logs["loss_feat"].item())
    with pytest.raises(ValueError, match="self_supervision must be one of"):
        make_loss(anny_body, self_supervision="both")
    with pytest.raises(ValueError, match="feature_loss must be one of"):
        make_loss(anny_body, feature_loss="l1")
    with pytest.raises(ValueError, match="one epoch per range"):
        make_loss(anny_body, range_schedule=[0, 1])


def test_a_missing_label_drops_its_term(anny_body, synth_batch):
    model, loss_fn = make_loss(anny_body, range_schedule=None, feature_loss=None)
    model.eval()  # no dropout: the two calls below see the same outputs
    two_d = dict(synth_batch, has_3d=torch.zeros(2), has_params=torch.zeros(2))
    loss, logs = loss_fn(model, two_d)
    assert logs["loss_3d"].item() == 0 and logs["loss_params"].item() == 0 and logs["loss_2d"].item() > 0
    # The 3D labels of a 2D-only person do not matter, its 2D labels do.
    scrambled = dict(two_d, keypoints3d=torch.randn(2, 17, 3), pose_vector=torch.randn(2, 126))
    assert loss_fn(model, scrambled)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    moved = dict(two_d, keypoints2d=two_d["keypoints2d"] + 5.0)
    assert loss_fn(model, moved)[0].item() != pytest.approx(loss.item(), rel=1e-3)
    # One person with 3D labels: the 3D terms average over that person only.
    one = dict(synth_batch, has_3d=torch.tensor([1.0, 0.0]), has_params=torch.tensor([1.0, 0.0]))
    _, logs_one = loss_fn(model, one)
    _, logs_first = loss_fn(model, {k: v[:1] for k, v in synth_batch.items()})
    assert logs_one["loss_3d"].item() == pytest.approx(logs_first["loss_3d"].item(), rel=1e-4)
    assert logs_one["loss_params"].item() == pytest.approx(logs_first["loss_params"].item(), rel=1e-4)


def test_3d_term_is_zero_for_the_labels_own_body(anny_body, synth_batch):
    """The 3D and parameter terms vanish when the network outputs the labelled pose."""
    _, loss_fn = make_loss(anny_body, range_schedule=None, self_supervision=None, feature_loss=None)
    labels = synth_batch["pose_vector"]

    class Oracle(torch.nn.Module):
        def forward(self, images, range_index):
            n = images.shape[0]
            pose = labels.repeat_interleave(n // len(labels), dim=0)
            return {"pose_vector": pose, "camera": torch.tensor([[0.9, 0.0, 0.0]]).expand(n, 3),
                    "features": torch.zeros(n, 4)}

    _, logs = loss_fn(Oracle(), synth_batch)
    assert logs["loss_params"].item() == 0
    assert logs["loss_3d"].item() < 1e-8


def test_no_data_is_an_error():
    with pytest.raises(ValueError, match="no training data"):
        rsc_task(TINY)


@pytest.mark.shared_data
def test_human36m_and_mpi_inf_3dhp_feed_the_same_trainer(shared_data, anny_body):
    root = shared_data / "mmpose_testdata"
    sources = [{"format": "spin", "path": str(root / "h36m/test_h36m_body3d.npz")},
               {"format": "spin", "path": str(root / "mpi_inf_3dhp/test_3dhp_train.npz")}]
    task = rsc_task(TINY, extra_datasets=sources, feature_loss=None, range_schedule=None)
    dataset = task.train_dataset
    assert len(dataset) == 4 + 2
    readers = dataset.readers
    items = [dataset[0], dataset[4]]  # a Human3.6M and an MPI-INF-3DHP person
    coco_names = dataset.convention.names
    for item, reader in zip(items, readers):
        sample = reader[0]
        assert item["has_3d"] == 1 and item["has_params"] == 0  # SMPL parameters do not label an Anny network
        source = sample.convention3d
        source_names = list(get_convention(source).names)
        # The body joints both conventions have carry over; the face points COCO has and they lack are unlabelled.
        for k, name in enumerate(coco_names):
            if name in source_names:
                assert item["visible3d"][k] == 1, (source, name)
                torch.testing.assert_close(item["keypoints3d"][k], torch.from_numpy(
                    sample.keypoints3d[source_names.index(name), :3]), atol=1e-6, rtol=0)
            else:
                assert item["visible3d"][k] == 0, (source, name)
        assert item["visible3d"].sum() == 12 and item["visible2d"].sum() >= 10
    batch = torch.utils.data.default_collate(items)
    loss, logs = task.loss(task.model, batch)
    assert logs["loss_3d"] > 0 and logs["loss_params"] == 0 and math.isfinite(loss.item())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in task.model.parameters())


def test_train_writes_a_loadable_model(tmp_path, synth_dir, anny_body):
    config = load_config({
        "task": "lowres_hps.methods.rsc:rsc_task",
        "task_args": {"model": TINY, "synthlr": [str(synth_dir)], "range_schedule": [0, 0, 1, 2, 2],
                      "queue_size": 32, "val_synthlr": str(synth_dir), "val_heights": [96, 32], "val_max": 2},
        "trainer": {"out_dir": str(tmp_path / "run"), "epochs": 2, "batch_size": 2, "progress_bar": False,
                    "optim": {"name": "adam", "lr": 1e-4}},
    }, TrainConfig)
    task = build_task(config.task, config.task_args)
    metrics = Trainer(config, task).fit()
    assert task.loss.active == [0, 1, 2]  # the second epoch added range 2
    assert set(metrics) == {"mpjpe_mm@96", "pa_mpjpe_mm@96", "mpjpe_mm@32", "pa_mpjpe_mm@32"}
    assert all(math.isfinite(v) and v > 0 for v in metrics.values())
    assert (tmp_path / "run" / "model.safetensors").is_file()
    estimator = load_run(tmp_path / "run", body=anny_body)
    assert isinstance(estimator, Body3DEstimator) and estimator.config.canvas == 64
    trained = task.model.state_dict()
    for name, value in estimator.model.state_dict().items():
        torch.testing.assert_close(value, trained[name], msg=name)
    bodies = estimator.predict_bodies(torch.zeros(2, 3, 64, 64, dtype=torch.uint8), torch.tensor([0, 3]),
                                      with_vertices=False)
    assert bodies.keypoints3d.shape == (2, 17, 3) and torch.isfinite(bodies.keypoints3d).all()
    assert hips_root(bodies.keypoints3d).shape == (2, 1, 3)


@pytest.mark.parametrize("name", ["rsc_move_c128", "rsc_move_c128_ft", "rsc_move_c128_ft2", "rsc_move_c128_ft3",
                                  "rsc_move_c128_ft4", "rsc_move_c128_ft5", "rsc_move_c128_eft", "rsc_move_c128_eft4", "rsc_r18_c64", "rsc_r18_c128", "rsc_paper"])
def test_shipped_configs_are_valid(name):
    import inspect
    from pathlib import Path

    from lowres_hps.data.multires_dataset import MultiResAugmentConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "hps3d" / f"{name}.yaml"
    config = load_config(path, TrainConfig)
    assert config.task == "lowres_hps.methods.rsc:rsc_task"
    assert set(config.task_args) <= set(inspect.signature(rsc_task).parameters)
    model = load_config(config.task_args["model"], Body3DConfig)
    schedule = config.task_args["range_schedule"]
    assert model.resolution_aware and (schedule is None or model.num_ranges == len(schedule))
    load_config(config.task_args["augment"], MultiResAugmentConfig)


def test_trunk_starts_from_a_2d_keypoint_checkpoint(tmp_path):
    import safetensors.torch

    from lowres_hps.methods.rsc import load_trunk_from_pose2d
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    pose2d = build_pose_model(Pose2DConfig(backbone="resnet18", input_size=(64, 48)), pretrained=False)
    path = tmp_path / "pose2d.safetensors"
    safetensors.torch.save_model(pose2d, str(path))
    network = build_body3d_model(Body3DConfig(canvas=64), pretrained=False)
    assert load_trunk_from_pose2d(network, path) == 120
    # nn.Sequential position 6 of the 2D trunk is torchvision's layer3.
    torch.testing.assert_close(network.backbone.trunk.layer3[1].conv2.weight, pose2d.backbone.trunk[6][1].conv2.weight)
    torch.testing.assert_close(network.backbone.trunk.bn1.running_var, pose2d.backbone.trunk[1].running_var)
    with pytest.raises(ValueError, match="no ResNet trunk matching"):
        load_trunk_from_pose2d(build_body3d_model(Body3DConfig(backbone="resnet50", canvas=64), pretrained=False), path)


def test_movenet_trunk_starts_from_a_2d_movenet_checkpoint(tmp_path):
    import safetensors.torch

    from lowres_hps.methods.rsc import load_trunk_from_pose2d
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    cfg2d = Pose2DConfig(backbone="movenet_lightning", backbone_params={"pretrained": "none"}, head="movenet",
                         input_size=(64, 64), codec="cal", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    pose2d = build_pose_model(cfg2d, pretrained=False)
    path = tmp_path / "lrmove.safetensors"
    safetensors.torch.save_model(pose2d, str(path))
    network = build_body3d_model(Body3DConfig(backbone="movenet_lightning", canvas=64), pretrained=False)
    assert network.config.mean == (0.5, 0.5, 0.5)  # MoveNet's normalisation by default
    assert load_trunk_from_pose2d(network, path) == 126  # trunk + FPN (121) and the heatmap head (5)
    torch.testing.assert_close(network.backbone.features.blocks[3].depthwise.weight,
                               pose2d.backbone.features.blocks[3].depthwise.weight)
    torch.testing.assert_close(network.backbone.heatmap.out.bias, pose2d.head.heatmap.out.bias)
    resnet = tmp_path / "r18.safetensors"
    safetensors.torch.save_model(build_pose_model(Pose2DConfig(backbone="resnet18", input_size=(64, 48)),
                                                  pretrained=False), str(resnet))
    with pytest.raises(ValueError, match="not a 2D MoveNet-lightning keypoint model"):
        load_trunk_from_pose2d(network, resnet)


def test_whole_network_starts_from_a_3d_checkpoint(tmp_path):
    import safetensors.torch

    from lowres_hps.methods.rsc import load_network_weights
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    cfg = Body3DConfig(canvas=64, hidden=32, iterations=2)
    source = build_body3d_model(cfg, pretrained=False)
    path = tmp_path / "rsc.safetensors"
    safetensors.torch.save_file({k: v.half() for k, v in source.state_dict().items()}, str(path))  # a shipped fp16
    network = build_body3d_model(cfg, pretrained=False)
    assert load_network_weights(network, path) == len(source.state_dict())
    torch.testing.assert_close(network.regressor.mean_params, source.regressor.mean_params.half().float())
    assert network.backbone.trunk.conv1.weight.dtype == torch.float32
    other = build_body3d_model(Body3DConfig(canvas=64, hidden=16, iterations=2), pretrained=False)
    with pytest.raises(ValueError, match=r"rsc.safetensors does not fit this Body3DNet.*another shape"):
        load_network_weights(other, path)


def test_weak_3d_term_compares_bone_directions_of_teacher_people_only(anny_body, synth_batch):
    model, loss_fn = make_loss(anny_body, range_schedule=None, feature_loss=None, self_supervision=None,
                               lambda_weak3d=2.0)
    model.eval()
    # Person 0 keeps ground-truth 3D; person 1's 3D is a teacher's (weak): it leaves the 3D term.
    batch = dict(synth_batch, has_3d=torch.tensor([1.0, 0.0]), has_weak3d=torch.tensor([0.0, 1.0]))
    loss, logs = loss_fn(model, batch)
    assert logs["loss_weak3d"].item() > 0
    _, logs_first = loss_fn(model, {k: v[:1] for k, v in synth_batch.items()})
    assert logs["loss_3d"].item() == pytest.approx(logs_first["loss_3d"].item(), rel=1e-4)
    # Only directions count: the teacher's keypoints scaled and moved give the same weak term.
    moved = dict(batch, keypoints3d=batch["keypoints3d"] * 0.5 + 0.3)
    _, logs_moved = loss_fn(model, moved)
    assert logs_moved["loss_weak3d"].item() == pytest.approx(logs["loss_weak3d"].item(), rel=1e-4)
    assert loss.item() == pytest.approx((loss_fn(model, dict(batch, has_weak3d=torch.zeros(2)))[0]
                                         + 2.0 * logs["loss_weak3d"]).item(), rel=1e-5)


def test_body_runs_in_float32_under_mixed_precision(anny_body, synth_batch, monkeypatch):
    model, loss_fn = make_loss(anny_body, range_schedule=None, feature_loss=None, self_supervision=None)
    model.eval()
    seen = []
    forward_vector = anny_body.forward_vector

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return forward_vector(*args, **kwargs)

    monkeypatch.setattr(anny_body, "forward_vector", spy)
    _, logs = loss_fn(model, synth_batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, logs_amp = loss_fn(model, synth_batch)
    assert seen == [False, False]  # skinning in bf16 would move keypoints by centimetres
    assert logs_amp["loss_3d"].dtype == torch.float32
    assert logs_amp["loss_3d"].item() == pytest.approx(logs["loss_3d"].item(), rel=0.05)
