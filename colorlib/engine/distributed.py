"""Several processes under torchrun: which one this is, the process group, the global batch's losses.

Under `torchrun` each rank trains on its shard of every global batch with DistributedDataParallel;
on GPUs batch norm statistics are synchronised across ranks (SyncBatchNorm) so that N processes
compute what one process does on the whole batch. PyTorch's SyncBatchNorm has no CPU kernel, so
multi-process CPU runs (gloo, for testing) keep per-rank statistics, which is plain DDP's
behaviour; with instance or no normalization the N-process step equals the one-process step.
Only rank 0 writes the run directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..runs.config import ConfigError


@dataclass
class Dist:
    """This process's place in a torchrun job (world_size 1 without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Dist":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))


    def start(self, device: torch.device, batch_size: int) -> torch.device:
        """Join the process group (NCCL on CUDA, gloo on CPU); the device this rank trains on."""
        import torch.distributed as td
        if not td.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
            td.init_process_group(backend)
        if batch_size % self.world_size:
            raise ConfigError(f"batch_size={batch_size} must divide evenly over {self.world_size} processes")
        return device

    def mean(self, losses: torch.Tensor) -> torch.Tensor:
        """The global batch's losses, not this rank's shard (in place; unchanged for one process)."""
        if self.world_size > 1:
            import torch.distributed as td
            td.all_reduce(losses)  # SUM: gloo has no AVG
            losses /= self.world_size
        return losses

    def wrap(self, module, device: torch.device):
        """DistributedDataParallel around `module` under torchrun, else `module` itself."""
        if self.world_size == 1:
            return module
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None)

    def leave(self, wait: bool) -> None:
        """Wait until rank 0 has written everything, then leave the process group (a rank that exits
        with gloo threads still running aborts the whole job)."""
        import torch.distributed as td
        if self.world_size > 1 and td.is_initialized():
            try:
                if wait:
                    td.barrier()
            finally:
                td.destroy_process_group()
