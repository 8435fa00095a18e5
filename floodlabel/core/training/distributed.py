"""Decoder fine-tuning on several processes: `torchrun --nproc-per-node N -m floodlabel finetune DATA --out PATH`.

torchrun starts N copies of the command with RANK / WORLD_SIZE / LOCAL_RANK set; `init_from_env` joins them into
a process group (nccl when the model runs on CUDA, each rank on its LOCAL_RANK GPU; gloo on CPUs). `finetune()`
then asks `current()` and, with more than one process, trains with DistributedDataParallel:

- every rank makes the same seeded split and the same epoch order, and draws the prompts of the *whole* batch
  (so the random generator stays in step on every rank); each rank then takes its contiguous share of the batch
  (`share`), reads only those embeddings and computes only those losses;
- the trained modules are wrapped in DistributedDataParallel (`wrap`, one forward per step), whose backward
  all-reduces (averages) the gradients; each rank's loss is its share's sum over the *global* batch size, times
  the world size, so the averaged gradient is the one-process gradient of the batch mean;
- the batch loss, the validation IoU/Dice lists (each rank validates its contiguous share; `gather` in rank
  order gives the one-process list) and cancellation (`any`) are agreed across ranks, so every rank takes the
  same decisions (stop on a diverged loss, keep the best epoch, cancel);
- embeddings: each rank encodes its share of the images not yet cached into the shared cache folder, then all
  read every embedding from it (`prepare`); with a cache filled by `floodlabel embed`, nothing is encoded;
- only rank 0 reports progress and writes the checkpoint (`save`), in the same format as a one-process run.

What differs from one process: the order of floating-point sums (each rank's gradient summed over its share, then
averaged across ranks; validation batched over each rank's share), so metrics agree to rounding, not bit for bit.
With one process (no torchrun) every function here is the identity or a plain call. Nothing here depends on the
model family: SAM v1 and SAM 2.1 (whose decoder has parameters a step never uses: the object-score head, conv_s0 /
conv_s1, hence find_unused_parameters) train the same way; tests/test_distributed_finetune.py runs both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


class Distributed:
    """The process group as training sees it; world == 1 means a plain one-process run."""

    def __init__(self) -> None:
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world = dist.get_world_size() if self.active else 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- data
    def share(self, items: Sequence) -> list:
        """This rank's contiguous part of `items` (sizes differ by at most one; may be empty)."""
        items = list(items)
        if not self.active:
            return items
        n = len(items)
        start, stop = self.rank * n // self.world, (self.rank + 1) * n // self.world
        return items[start:stop]

    def gather(self, values: list) -> list:
        """Every rank's list, concatenated in rank order (with `share`, the one-process order)."""
        if not self.active:
            return values
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, values)
        return [v for part in out for v in part]

    def sum(self, value: float) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return float(t.item())

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on one (cancellation)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    # -------------------------------------------------------------- model
    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel(module) with several processes, else the module itself."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device = next(module.parameters()).device
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                       broadcast_buffers=False, find_unused_parameters=True)

    def save(self, save_fn: Callable[..., Path], checkpoint, out: Path) -> Path:
        """save_fn(checkpoint, out) on rank 0 only; every rank gets the path."""
        return save_fn(checkpoint, out) if self.is_main else Path(out)

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def current() -> Distributed:
    return Distributed()


def prepare(items, session, progress, cancel):
    """`embeddings.prepare_embeddings` for every rank: first each rank encodes its share of the images not yet in the
    (shared) cache, then every rank prepares all items from the cache. `computed` marks the images any rank encoded.
    """
    from floodlabel.core.training.embeddings import prepare_embeddings

    d = current()
    if not d.active:
        return prepare_embeddings(items, session, progress, cancel)
    mine = d.share(range(len(items)))
    warm, _ = prepare_embeddings([items[i] for i in mine], session, None, cancel)
    encoded = set(d.gather([mine[p.index] for p in warm if p.computed]))
    d.barrier()
    prepared, skipped = prepare_embeddings(items, session, progress if d.is_main else None, cancel)
    return [replace(p, computed=p.index in encoded) for p in prepared], skipped


def init_from_env() -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); True when this
    call started it (the caller then calls `shutdown`). A no-op without torchrun or with a group already up.
    nccl when the model will run on CUDA (FLOODLABEL_DEVICE, else CUDA available), each rank on GPU LOCAL_RANK;
    gloo otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    from floodlabel.core.segment.compute_config import environment_overrides

    device = environment_overrides()[0] or ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(device).type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        os.environ["FLOODLABEL_DEVICE"] = f"cuda:{local}"  # this rank's model and tensors on its own GPU
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
