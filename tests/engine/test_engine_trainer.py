from __future__ import annotations

import math
import random
import sys
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # the toy task, also under --import-mode=importlib

from engine_toy_task import (  # noqa: E402
    TOY_TASK,
    ToyRegression,
    make_toy_task,
    read_weights,
    run_cli,
    toy_config_dict,
    train_in_process,
)

from lowres_hps.cli import main as cli_main  # noqa: E402
from lowres_hps.engine import (  # noqa: E402
    LRSchedule,
    MetricLogger,
    OptimConfig,
    SampleSeededDataset,
    TrainConfig,
    Trainer,
    base_lr,
    batch_to_device,
    build_optimizer,
    build_task,
    import_object,
    load_checkpoint,
    load_config,
    load_weights,
    seed_everything,
)

STEPS_PER_EPOCH = 6  # 48 samples, global batch 8


def _config(tmp_path, name="run", task_args=None, **trainer) -> TrainConfig:
    return load_config(toy_config_dict(tmp_path / name, task_args, **trainer), TrainConfig)


def _record_losses(task, record):
    original = task.loss

    def loss(model, batch):
        value, logs = original(model, batch)
        record.append((value.detach().float().item(), value.dtype))
        return value, logs

    task.loss = loss
    return task


def test_metrics_csv_weights_and_config(tmp_path, device):
    cfg = _config(tmp_path, epochs=2, log_every=4, device=device.type,
                  optim={"name": "sgd", "lr": 0.05, "momentum": 0.0, "schedule": "cosine", "warmup_steps": 2})
    seed_everything(cfg.trainer.seed)
    losses: list = []
    task = _record_losses(build_task(cfg.task, cfg.task_args), losses)
    trainer = Trainer(cfg, task)
    val = trainer.fit()
    run = tmp_path / "run"

    columns, rows = MetricLogger.read(run / "metrics.csv")
    assert columns == ["step", "epoch", "loss", "lr", "mae", "val/mse"]
    train_rows = [r for r in rows if r["loss"]]
    val_rows = [r for r in rows if r["val/mse"]]
    assert [(int(r["step"]), int(r["epoch"])) for r in train_rows] == [(4, 0), (8, 1), (12, 1)]
    assert [(int(r["step"]), int(r["epoch"])) for r in val_rows] == [(6, 0), (12, 1)]
    assert all(r["mae"] and not r["val/mse"] for r in train_rows)
    assert float(val_rows[-1]["val/mse"]) == pytest.approx(val["mse"])
    # Each row: mean loss of the steps since the previous row, and the lr of its last step.
    assert len(losses) == 12
    schedule = LRSchedule("cosine", total_steps=12, warmup_steps=2)
    for row, end in zip(train_rows, (4, 8, 12)):
        assert float(row["loss"]) == pytest.approx(np.mean([v for v, _ in losses[end - 4:end]]), rel=1e-6)
        assert float(row["lr"]) == pytest.approx(0.05 * schedule(end - 1))

    assert load_config(run / "config.yaml", TrainConfig) == cfg
    state = load_checkpoint(run / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (2, 0, 12)
    fresh = make_toy_task().model
    metadata = load_weights(fresh, run / "model.safetensors")
    assert yaml.safe_load(metadata["config"]) == yaml.safe_load(yaml.safe_dump(state["config"]))
    for a, b in zip(fresh.state_dict().values(), trainer.model.state_dict().values()):
        assert torch.equal(a, b.cpu())


def test_amp_autocasts_and_stays_finite(tmp_path, device):
    cfg = _config(tmp_path, amp=True, device=device.type, epochs=1, log_every=3)
    seed_everything(0)
    record: list = []
    task = make_toy_task()
    original = task.loss

    def loss(model, batch):
        record.append(model(batch["x"]).dtype)
        return original(model, batch)

    task.loss = loss
    trainer = Trainer(cfg, task)
    trainer.fit()
    expected_dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
    assert record and set(record) == {expected_dtype}
    assert trainer.scaler.is_enabled() == (device.type == "cuda")  # GradScaler only for float16
    _, rows = MetricLogger.read(tmp_path / "run" / "metrics.csv")
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_after_a_crash_mid_epoch_matches_an_uninterrupted_run(tmp_path, num_workers):
    settings = dict(epochs=2, ckpt_every_steps=4, num_workers=num_workers, shuffle=True, log_every=1)
    task_args = {"dropout": 0.2, "noise": 0.3}  # model and data randomness must both be restored
    reference = train_in_process(_config(tmp_path, "reference", task_args, **settings))

    crashing = _config(tmp_path, "crashed", task_args, **settings)
    seed_everything(crashing.trainer.seed)
    task = build_task(crashing.task, task_args)
    calls = 0
    original = task.loss

    def loss(model, batch):
        nonlocal calls
        calls += 1
        if calls == 10:  # epoch 1, its 4th batch; the last checkpoint is at step 8
            raise RuntimeError("simulated crash")
        return original(model, batch)

    task.loss = loss
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(crashing, task).fit()
    state = load_checkpoint(tmp_path / "crashed" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 8)

    resumed = train_in_process(crashing, resume=True)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert (tmp_path / "crashed" / "metrics.csv").read_text() == (tmp_path / "reference" / "metrics.csv").read_text()


def test_killed_process_resumes_exactly(tmp_path):
    """A CLI run killed (os._exit) mid-epoch, then `--resume`d, ends bit-for-bit where an
    uninterrupted run ends."""
    task_args = {"dropout": 0.2, "noise": 0.3}
    settings = dict(epochs=2, ckpt_every_steps=4, shuffle=True)
    reference_cfg = _config(tmp_path, "reference", task_args, **settings)
    train_in_process(reference_cfg)

    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(toy_config_dict(tmp_path / "run", task_args, **settings)))
    killed = run_cli([str(config_path), "task_args.exit_after_loss_calls=10"])
    assert killed.returncode == 17, killed.stderr[-3000:]
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and 0 < state["step_in_epoch"] < STEPS_PER_EPOCH
    assert not (tmp_path / "run" / "model.safetensors").exists()

    resumed = run_cli([str(config_path), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = read_weights(tmp_path / "reference" / "model.safetensors")
    result = read_weights(tmp_path / "run" / "model.safetensors")
    for name in reference:
        torch.testing.assert_close(result[name], reference[name], rtol=0, atol=1e-6)
    _, reference_rows = MetricLogger.read(tmp_path / "reference" / "metrics.csv")
    _, rows = MetricLogger.read(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows] == [r["step"] for r in reference_rows]  # no step logged twice


def test_augmentations_change_with_the_epoch_not_with_the_workers(tmp_path):
    seen = {}
    for num_workers in (0, 2):
        cfg = _config(tmp_path, f"workers{num_workers}", {"noise": 0.5}, epochs=2, num_workers=num_workers)
        task = make_toy_task(noise=0.5)
        inputs = seen[num_workers] = {}
        original = task.loss

        def loss(model, batch, inputs=inputs, epoch=iter(range(2 * STEPS_PER_EPOCH))):
            step_epoch = next(epoch) // STEPS_PER_EPOCH
            for index, x in zip(batch["index"].tolist(), batch["x"]):
                inputs[step_epoch, index] = x.clone()
            return original(model, batch)

        task.loss = loss
        Trainer(cfg, task).fit()
    assert seen[0].keys() == seen[2].keys() and len(seen[0]) == 2 * 48
    assert all(torch.equal(seen[0][k], seen[2][k]) for k in seen[0])
    assert not any(torch.equal(seen[0][0, i], seen[0][1, i]) for i in range(48))


def test_fresh_run_refuses_an_existing_checkpoint_and_resume_needs_one(tmp_path):
    cfg = _config(tmp_path, epochs=1)
    train_in_process(cfg)
    with pytest.raises(ValueError, match="--resume"):
        train_in_process(cfg)
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train_in_process(_config(tmp_path, "empty", epochs=1), resume=True)


def test_resume_with_more_epochs_continues(tmp_path):
    train_in_process(_config(tmp_path, epochs=1))
    with pytest.warns(UserWarning, match="changed config: trainer.epochs"):
        trainer = train_in_process(_config(tmp_path, epochs=2), resume=True)
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    _, rows = MetricLogger.read(tmp_path / "run" / "metrics.csv")
    steps = [int(r["step"]) for r in rows if r["loss"]]
    assert steps == list(range(2, 2 * STEPS_PER_EPOCH + 1, 2))
    # The run folder's config is the one the run finished with; the first one is kept.
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["trainer"]["epochs"] == 2
    before = tmp_path / "run" / f"config.before_step{STEPS_PER_EPOCH}.yaml"
    assert yaml.safe_load(before.read_text())["trainer"]["epochs"] == 1


def test_bad_losses_are_reported(tmp_path):
    task = make_toy_task()
    task.loss = lambda model, batch: ((model(batch["x"]) - batch["y"]).square(), {})
    with pytest.raises(ValueError, match="scalar tensor"):
        Trainer(_config(tmp_path, "a"), task).fit()
    task = make_toy_task()
    task.loss = lambda model, batch: (model(batch["x"]).sum() * float("nan"), {})
    with pytest.raises(FloatingPointError, match="step 2"):
        Trainer(_config(tmp_path, "b"), task).fit()


def test_dataset_smaller_than_a_batch(tmp_path):
    with pytest.raises(ValueError, match="smaller than one global batch"):
        Trainer(_config(tmp_path, batch_size=64), make_toy_task())


def test_lr_schedules():
    constant = LRSchedule("constant", total_steps=10, warmup_steps=4, warmup_start_factor=0.2)
    assert [constant(s) for s in (0, 2, 4, 9)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    cosine = LRSchedule("cosine", total_steps=12, warmup_steps=2, min_lr_factor=0.1)
    assert cosine(2) == pytest.approx(1.0)
    assert cosine(7) == pytest.approx(0.55)
    assert cosine(12) == pytest.approx(0.1) and cosine(20) == pytest.approx(0.1)
    step = LRSchedule("step", total_steps=30, milestone_steps=(10, 20), gamma=0.5)
    assert [step(s) for s in (0, 9, 10, 19, 20, 29)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_scheduler_milestones_are_in_epochs(tmp_path):
    cfg = _config(tmp_path, epochs=0, optim={"name": "sgd", "lr": 1.0, "schedule": "step", "milestones": [1]})
    trainer = Trainer(cfg, make_toy_task())
    for _ in range(STEPS_PER_EPOCH):
        assert trainer.scheduler.get_last_lr()[0] == pytest.approx(1.0)
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.1)


@pytest.mark.parametrize(
    "name, kind", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_optimizers(tmp_path, name, kind):
    trainer = Trainer(_config(tmp_path, optim={"name": name, "lr": 0.5, "weight_decay": 0.1}), make_toy_task())
    assert isinstance(trainer.optimizer, kind)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.1
    assert OptimConfig(name=name).name == name


def test_lr_mult_scales_groups_by_longest_name_prefix_and_keeps_the_logged_base_lr():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1), torch.nn.Linear(1, 1))
    cfg = OptimConfig(name="adam", lr=1e-2, lr_mult={"0": 0.1, "0.bias": 0.5, "2": 0.0})
    optimizer = build_optimizer(model.named_parameters(), cfg)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model[0].weight)] == pytest.approx(1e-3)
    assert lr_of[id(model[0].bias)] == pytest.approx(5e-3)
    assert lr_of[id(model[1].weight)] == pytest.approx(1e-2)
    assert id(model[2].weight) not in lr_of  # factor 0: not trained
    assert base_lr(optimizer) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="named parameters"):
        build_optimizer(model.parameters(), cfg)
    with pytest.raises(ValueError, match="lr_mult"):
        OptimConfig(lr_mult={"0": -1.0})


def test_sample_seeded_dataset_depends_only_on_seed_epoch_and_index():
    dataset = SampleSeededDataset(ToyRegression(8, 3, noise=1.0, data_seed=0), seed=7)
    first = dataset[3]["x"]
    torch.manual_seed(123)  # the global state does not matter
    assert torch.equal(dataset[3]["x"], first)
    assert not torch.equal(dataset[4]["x"], first)
    dataset.epoch = 1
    assert not torch.equal(dataset[3]["x"], first)
    # ...and in the main process the caller's RNG streams are left as they were.
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    dataset[5]
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_batch_to_device_moves_nested_tensors(device):
    Pair = namedtuple("Pair", "a b")

    @dataclass
    class Sample:
        image: torch.Tensor
        name: str

    batch = {"x": torch.ones(2), "list": [torch.zeros(1), "text"], "pair": Pair(torch.ones(1), 3),
             "sample": Sample(torch.ones(1), "s")}
    moved = batch_to_device(batch, device)
    assert moved["x"].device.type == device.type and moved["list"][0].device.type == device.type
    assert moved["list"][1] == "text"
    assert isinstance(moved["pair"], Pair) and moved["pair"].a.device.type == device.type and moved["pair"].b == 3
    assert isinstance(moved["sample"], Sample) and moved["sample"].image.device.type == device.type


def test_import_object_and_build_task(tmp_path):
    assert import_object(TOY_TASK) is make_toy_task
    assert isinstance(build_task(TOY_TASK, {"hidden": 3}).model[0].weight, torch.nn.Parameter)
    task_file = tmp_path / "my_task.py"
    task_file.write_text("from engine_toy_task import make_toy_task\n\n\ndef make(**kw):\n"
                         "    return make_toy_task(**kw)\n")
    assert build_task(f"{task_file}:make", {"hidden": 5}).model[0].out_features == 5
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        import_object("no_such_module:f")
    with pytest.raises(ValueError, match="has no 'nothing'"):
        import_object("engine_toy_task:nothing")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        import_object(f"{tmp_path / 'missing.py'}:f")
    with pytest.raises(ValueError, match="task_args do not fit.*'hiden'"):
        build_task(TOY_TASK, {"hiden": 3})
    with pytest.raises(ValueError, match="returned dict"):
        build_task("builtins:dict", {"x": 1.5})


def test_on_epoch_start_sees_every_epoch_also_after_resume(tmp_path):
    cfg = load_config(toy_config_dict(tmp_path / "run", epochs=2), TrainConfig)
    seen = []
    task = make_toy_task()
    task.on_epoch_start = seen.append
    Trainer(cfg, task).fit()
    assert seen == [0, 1]
    more = load_config(toy_config_dict(tmp_path / "run", epochs=3), TrainConfig)
    task = make_toy_task()
    task.on_epoch_start = seen.append
    Trainer(more, task).fit(resume=True)
    assert seen == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# Damaged last.pt and leftovers of a killed save (issue 9)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_truncated_last_pt_resumes_from_the_previous_checkpoint(tmp_path):
    settings = dict(epochs=2, ckpt_every_steps=4)
    reference = train_in_process(_config(tmp_path, "reference", **settings))
    crashing = _config(tmp_path, "crashed", **settings)
    seed_everything(crashing.trainer.seed)
    task = build_task(crashing.task, crashing.task_args)
    original, calls = task.loss, 0

    def loss(model, batch):
        nonlocal calls
        calls += 1
        if calls == 10:
            raise RuntimeError("simulated crash")
        return original(model, batch)

    task.loss = loss
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(crashing, task).fit()
    run = tmp_path / "crashed"
    assert load_checkpoint(run / "last.pt")["global_step"] == 8
    assert load_checkpoint(run / "previous.pt")["global_step"] == 6
    _truncate(run / "last.pt")

    with pytest.warns(UserWarning, match=r"truncated or damaged.*resuming from the checkpoint before it.*step 6"):
        resumed = train_in_process(crashing, resume=True)
    for name, value in reference.model.state_dict().items():  # resumed exactly, from step 6
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert (run / "last.damaged.pt").exists() and load_checkpoint(run / "last.pt")["global_step"] == 12


def test_truncated_last_pt_without_a_previous_one_is_a_one_line_error(tmp_path, capsys):
    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(toy_config_dict(tmp_path / "run", epochs=1)))
    assert cli_main(["train", str(config_path)]) == 0
    assert not (tmp_path / "run" / "previous.pt").exists()  # one save only: nothing to fall back to
    _truncate(tmp_path / "run" / "last.pt")
    capsys.readouterr()
    assert cli_main(["train", str(config_path), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt" in err[0] and "no earlier checkpoint" in err[0]


@pytest.mark.parametrize("resume", [False, True])
def test_leftover_temporary_of_a_killed_save_is_removed_on_start(tmp_path, resume):
    cfg = _config(tmp_path, epochs=1)
    run = tmp_path / "run"
    if resume:
        train_in_process(cfg)
    run.mkdir(exist_ok=True)
    leftovers = [run / ".last.pt.x8y7z6.tmp", run / ".model.safetensors.q1w2.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 4096)  # what a SIGKILL during torch.save leaves
    train_in_process(cfg, resume=resume)  # resuming a finished run: nothing to train, the start cleans up
    assert not any(path.exists() for path in leftovers)
    assert not list(run.glob(".*.tmp"))


def _scripted_validation(task, values, snapshots):
    """Validation that reports ``values`` in turn (as "score") and records the weights it saw."""
    remaining = list(values)

    def evaluate(model, batches):
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"score": remaining.pop(0)}

    task.evaluate = evaluate
    return task


@pytest.mark.parametrize("mode, best_epoch", [("min", 2), ("max", 3)])
def test_keep_best_writes_the_best_epochs_weights_and_remembers_them_over_a_resume(tmp_path, mode, best_epoch):
    cfg = _config(tmp_path, epochs=2, keep_best="score", keep_best_mode=mode)
    snapshots: list = []
    seed_everything(cfg.trainer.seed)
    trainer = Trainer(cfg, _scripted_validation(build_task(cfg.task, cfg.task_args), [0.5, 0.2], snapshots))
    trainer.fit()
    # more epochs, resumed: the best so far must survive in last.pt
    cfg3 = _config(tmp_path, epochs=3, keep_best="score", keep_best_mode=mode)
    seed_everything(cfg3.trainer.seed)
    trainer = Trainer(cfg3, _scripted_validation(build_task(cfg3.task, cfg3.task_args), [0.9], snapshots))
    with pytest.warns(UserWarning, match="changed config"):
        trainer.fit(resume=True)
    assert trainer.best["epoch"] == best_epoch
    assert trainer.best["value"] == {"min": 0.2, "max": 0.9}[mode]
    best = read_weights(tmp_path / "run" / "best.safetensors")
    for name, value in snapshots[best_epoch - 1].items():
        torch.testing.assert_close(best[name], value.cpu())
    other = snapshots[best_epoch % 3]  # another epoch: the weights did move
    assert any(not torch.equal(best[n], v.cpu()) for n, v in other.items())


def test_keep_best_names_the_metrics_it_could_have_used(tmp_path):
    cfg = _config(tmp_path, epochs=1, keep_best="iou")
    with pytest.raises(KeyError, match="keep_best is 'iou'.*mse"):
        train_in_process(cfg)
    with pytest.raises(ValueError, match="keep_best_mode"):
        _config(tmp_path, keep_best="mse", keep_best_mode="best")
    with pytest.raises(ValueError, match="keep_best needs validation"):
        _config(tmp_path, keep_best="mse", val_every_epochs=0)
