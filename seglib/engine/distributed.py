"""
# Several GPUs or machines: torchrun + DistributedDataParallel

The source articles wrap the model in `nn.DataParallel`: one process drives every GPU,
scatters each batch and gathers the outputs on GPU 0, which becomes the bottleneck,
and BatchNorm statistics are per GPU. PyTorch recommends DistributedDataParallel (DDP):

- `torchrun --nproc-per-node N -m seglib.train ...` starts N processes and sets the
  environment variables `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR/PORT`;
- each process joins a process group (NCCL on CUDA, gloo on CPU), owns one device,
  and reads its own shard of the data (`DistributedSampler`, reshuffled per epoch by
  `set_epoch`);
- DDP all-reduces (averages) the gradients during `backward`, so every replica takes
  the same optimizer step and the weights stay identical;
- optionally `SyncBatchNorm` computes BatchNorm statistics over the global batch
  (useful when the per-GPU batch is small, as in segmentation);
- only rank 0 prints, writes `metrics.csv` and checkpoints; metrics are computed from
  confusion matrices summed over all ranks.

Nothing here runs on import; `fit` uses DDP only when a process group is initialised.
Taught in `notebooks/06_training.ipynb` ("more than one GPU").
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

__all__ = [
    "init_from_env",
    "cleanup",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "wrap_model",
    "unwrap",
    "broadcast_buffers",
    "distribute_loader",
    "ShardSampler",
]


def is_distributed() -> bool:
    """True inside an initialised process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 without DDP)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without DDP)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that logs and writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without DDP)."""
    if is_distributed():
        dist.barrier()


def init_from_env(device: str | None = None) -> torch.device | None:
    """Join the process group described by torchrun's environment variables.

    Returns this process's device (`cuda:LOCAL_RANK` with NCCL, else CPU with gloo), or
    None when `WORLD_SIZE` is unset or 1 (a plain single-process run).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dev


def cleanup() -> None:
    """Leave the process group if one is active."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """Wrap in DDP (and convert BatchNorm to SyncBatchNorm if asked); no-op without DDP."""
    if not is_distributed():
        return model
    if sync_bn and device.type != "cuda":
        raise ValueError(
            f"sync_bn needs CUDA devices (PyTorch's SyncBatchNorm is GPU-only), got {device}; "
            "drop --sync-bn on CPU"
        )
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (what checkpoints store)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank (no-op without DDP).

    DDP broadcasts buffers at the start of each forward, so after the last training step
    every rank holds its own running statistics; evaluating the unwrapped model (and
    checkpointing rank 0's) needs them equal again.
    """
    if not is_distributed():
        return
    for buf in unwrap(model).buffers():
        dist.broadcast(buf, src=0)


class ShardSampler(Sampler[int]):
    """Every `world_size`-th index from `rank`, in order, without padding.

    `DistributedSampler` repeats samples to make shards equal, which would count some
    validation images twice; validation only needs disjoint shards.
    """

    def __init__(self, n: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, n, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def distribute_loader(loader: DataLoader, train: bool, seed: int = 0) -> DataLoader:
    """Rebuild `loader` so that each rank reads its own shard (no-op without DDP).

    Training uses `DistributedSampler` (shuffled, equal shard sizes, `set_epoch` each
    epoch); validation a `ShardSampler` (disjoint shards, nothing counted twice).
    """
    if not is_distributed() or isinstance(loader.sampler, DistributedSampler | ShardSampler):
        return loader
    dataset = loader.dataset
    generator = None
    if train:  # worker seeds per rank; `fit` re-seeds it every epoch from (seed, epoch, rank)
        generator = torch.Generator().manual_seed(seed + (rank() << 32))
        shuffle = not isinstance(loader.sampler, torch.utils.data.SequentialSampler)
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=False)
    else:
        sampler = ShardSampler(len(dataset), rank(), world_size())
    return DataLoader(
        dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        persistent_workers=loader.persistent_workers,
        worker_init_fn=loader.worker_init_fn,
        generator=generator,
    )
