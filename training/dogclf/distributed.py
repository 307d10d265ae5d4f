"""Process-group setup from what SageMaker or torchrun provides.

- torchrun (or any launcher) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT: use them.
- Several SageMaker hosts (SM_HOSTS) without a launcher: one process per host, rank = index of
  SM_CURRENT_HOST in the sorted host list, master = the first host. (For more than one GPU per host,
  launch with torchrun, e.g. the estimator's ``distribution={"torch_distributed": {"enabled": True}}``.)
- Otherwise a single process, no process group.
Backend: nccl when CUDA is available, gloo otherwise. Only rank 0 writes artifacts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dogclf import sm_env

DEFAULT_MASTER_PORT = "29500"


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_from_env() -> DistContext:
    use_cuda = torch.cuda.is_available() and sm_env.num_gpus() > 0
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    else:
        hosts = sorted(sm_env.hosts())
        if len(hosts) <= 1:
            device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
            return DistContext(rank=0, world_size=1, local_rank=0, device=device)
        rank, world_size, local_rank = hosts.index(sm_env.current_host()), len(hosts), 0
        os.environ.setdefault("MASTER_ADDR", hosts[0])
        os.environ.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        backend="nccl" if use_cuda else "gloo", init_method="env://", rank=rank, world_size=world_size
    )
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def all_reduce_sum(values: list[float], context: DistContext) -> list[float]:
    """Sum numbers over all ranks (identity in a single process)."""
    if not context.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()
