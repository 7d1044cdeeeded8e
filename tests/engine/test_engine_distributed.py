from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # the toy task, also under --import-mode=importlib

from engine_toy_task import read_weights, run_cli, toy_config_dict, train_in_process  # noqa: E402

from lowres_hps.core.config import load_config  # noqa: E402
from lowres_hps.engine import TrainConfig  # noqa: E402
from lowres_hps.engine.distributed import (  # noqa: E402
    ResumableDistributedSampler,
    all_gather_objects,
    all_reduce_mean,
    init_distributed,
    per_rank_batch_size,
    resolve_device,
)
from lowres_hps.engine.logging import MetricLogger  # noqa: E402


def _batches(sampler, batch_size):
    indices = list(sampler)
    return [indices[i:i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_share_the_single_process_global_batches(shuffle, world_size):
    dataset, global_batch, epoch = list(range(50)), 8, 3
    single = ResumableDistributedSampler(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=5, drop_last=True)
    single.set_epoch(epoch)
    expected = _batches(single, global_batch)
    per_rank = []
    for rank in range(world_size):
        sampler = ResumableDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                              seed=5, drop_last=True)
        sampler.set_epoch(epoch)
        per_rank.append(_batches(sampler, global_batch // world_size))
    steps = min(len(b) for b in per_rank)
    assert steps == len(expected) == 50 // global_batch
    for step in range(steps):
        union = sorted(i for rank_batches in per_rank for i in rank_batches[step])
        assert union == sorted(expected[step])


def test_sampler_starts_mid_epoch_with_the_same_order():
    sampler = ResumableDistributedSampler(list(range(20)), num_replicas=2, rank=1, shuffle=True, seed=0)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_start_index(6)
    assert list(sampler) == full[6:] and len(sampler) == len(full) - 6
    sampler.set_epoch(5)
    sampler.set_start_index(0)
    assert list(sampler) != full  # another epoch, another order
    with pytest.raises(ValueError, match="start_index"):
        sampler.set_start_index(11)


def test_per_rank_batch_size():
    assert per_rank_batch_size(32, 4) == 8
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        per_rank_batch_size(32, 3)


def test_single_process_context(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu")
    assert (context.rank, context.world_size, context.is_main, context.is_distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    assert all_reduce_mean({"b": 2, "a": 1.5}, context.device) == {"a": 1.5, "b": 2.0}
    assert all_gather_objects({"x": 1}) == [{"x": 1}]
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="RANK=2"):
        init_distributed("cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_two_gloo_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (per-rank batch 4) ends where 1 process (batch 8) ends."""
    settings = {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0}, "shuffle": True, "epochs": 2}
    task_args = {"noise": 0.3}  # augmentations are seeded per sample: the same for any number of processes
    single_cfg = load_config(toy_config_dict(tmp_path / "single", task_args, **settings), TrainConfig)
    train_in_process(single_cfg)

    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(toy_config_dict(tmp_path / "unused", task_args, **settings)))
    result = run_cli([str(config_path), "--out", str(tmp_path / "ddp")], nproc=2)
    assert result.returncode == 0, result.stderr[-3000:]

    single = read_weights(tmp_path / "single" / "model.safetensors")
    ddp = read_weights(tmp_path / "ddp" / "model.safetensors")
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=0, atol=1e-5)
    initial = train_in_process(load_config(toy_config_dict(tmp_path / "zero", epochs=0), TrainConfig)).model
    assert not torch.allclose(initial[0].weight, single["0.weight"], atol=1e-3)  # it did train

    # Logged losses are averaged over the ranks: the same as the single process's.
    _, single_rows = MetricLogger.read(tmp_path / "single" / "metrics.csv")
    _, ddp_rows = MetricLogger.read(tmp_path / "ddp" / "metrics.csv")
    assert [r["step"] for r in ddp_rows] == [r["step"] for r in single_rows]
    for a, b in zip(single_rows, ddp_rows):
        for key in ("loss", "val/mse"):
            if a[key]:
                assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4)
