"""Data-parallel training over processes with torch.distributed (torchrun environment).

One process per device; ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Without
them everything degrades to a single process and no process group is created.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

__all__ = [
    "DistributedContext",
    "init_distributed",
    "destroy_distributed",
    "resolve_device",
    "per_rank_batch_size",
    "barrier",
    "all_reduce_mean",
    "all_gather_objects",
    "ResumableDistributedSampler",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, checkpoints and weights."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device is indexed by ``local_rank``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistributedContext:
    """Read the torchrun environment and, for several processes, join the process group.

    Backend: NCCL for CUDA devices, gloo otherwise. Calling it again returns the same context
    (the existing process group is reused). Pair it with :func:`destroy_distributed`.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world_size})")
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def destroy_distributed() -> None:
    """Leave the process group, if any (safe to call in every process, and more than once)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def per_rank_batch_size(global_batch_size: int, world_size: int) -> int:
    """The batch of each process; the global batch must split evenly (DDP averages gradients)."""
    if global_batch_size % world_size != 0:
        raise ValueError(
            f"the global batch size {global_batch_size} is not divisible by the {world_size} processes"
        )
    return global_batch_size // world_size


def barrier() -> None:
    """Wait for all processes (no-op for a single process)."""
    if _active():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_mean(values: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the processes (every process must pass the same keys)."""
    keys = sorted(values)
    if not _active() or not keys:
        return {k: float(values[k]) for k in keys}
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    packed /= dist.get_world_size()
    return dict(zip(keys, packed.tolist()))


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every process, by rank (``[obj]`` for a single process)."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (same per-epoch order, same split over ranks) that can start an
    epoch part-way through, to resume mid-epoch without loading the skipped samples.

    Rank ``r`` gets positions ``r, r + W, r + 2W, ...`` of the epoch's permutation, so with a
    per-rank batch ``B / W`` the ranks' ``k``-th batches together are exactly positions
    ``[k B, (k + 1) B)``: the batch a single process with batch ``B`` would see, as a set.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.start_index = 0

    def set_start_index(self, start_index: int) -> None:
        """Skip the first ``start_index`` samples of this rank in the current epoch."""
        if not 0 <= start_index <= self.num_samples:
            raise ValueError(f"start_index must be in [0, {self.num_samples}], got {start_index}")
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start_index, None)

    def __len__(self) -> int:
        return self.num_samples - self.start_index
