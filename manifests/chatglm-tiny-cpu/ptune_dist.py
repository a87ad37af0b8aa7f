"""Data-parallel training of ``ptune.py`` across processes (several nodes), with gloo on CPU.

``ptune.py`` uses this when a launcher started it as one of several processes: torchrun sets
``WORLD_SIZE``, ``RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` for every process it starts (its
static rendezvous: ``--nnodes N --node_rank R --master_addr A --master_port P``), and
``init_process_group(init_method="env://")`` reads exactly those
(https://pytorch.org/docs/stable/elastic/run.html, "Environment Variables";
https://pytorch.org/docs/stable/distributed.html, "Environment variable initialization").
gloo is the backend for CPU tensors; ``GLOO_SOCKET_IFNAME`` (which envctl's per-node contract
sets) picks its interface.

How the run stays one training and not N:

* every process draws the same seeded batch order and takes its share of each global batch
  (examples ``rank, rank + world, ...``), so together they see exactly the batch one process
  would;
* the loss is the sum over the process's target tokens divided by the number of target tokens
  of the whole global batch (transformers' ``num_items_in_batch``, the mechanism its Trainer
  uses for gradient accumulation), so the summed gradients are the gradient of the global
  batch's mean loss, and the summed losses are that loss: every rank logs the same value;
* the trainable tensors start from rank 0's values (a broadcast, as DDP does at wrap time),
  and the gradients are summed with one all-reduce of a flat buffer after each backward (the
  trainable part is a loose prefix tensor plus a few adapters, not one module DDP could wrap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a process waits for the others at the start and at each collective. Short enough
# that a run whose peer never came fails with gloo's own error instead of hanging for gloo's
# default 30 minutes; long enough for a slow node's model load.
TIMEOUT = timedelta(minutes=5)


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank 0 of 1 when not distributed."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """The process that writes the checkpoint and train.log (rank 0)."""
        return self.rank == 0


def join() -> World:
    """Join the process group when the launcher started several processes (WORLD_SIZE > 1);
    a single process (no WORLD_SIZE, or 1) is World(0, 1) and touches nothing.
    Raises ValueError for a WORLD_SIZE or RANK that is not a number; gloo's own errors
    (a master that cannot be reached within TIMEOUT) propagate."""
    size = int(os.environ.get("WORLD_SIZE") or 1)
    if size <= 1:
        return World()
    dist.init_process_group(backend="gloo", init_method="env://", timeout=TIMEOUT)
    return World(dist.get_rank(), dist.get_world_size())


def leave(world: World) -> None:
    """Leave the process group (after the last collective)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def share(indices: list[int], world: World) -> list[int]:
    """This process's examples of a global batch: every world.size-th, from its rank."""
    return indices[world.rank::world.size]


def target_tokens(labels: torch.Tensor, ignore: int, world: World) -> torch.Tensor:
    """The number of scored tokens of the whole global batch (all processes): the labels past
    the first position (a causal LM predicts token t+1 from t) that are not ``ignore``."""
    count = (labels[:, 1:] != ignore).sum().to(torch.float32)
    if world.distributed:
        dist.all_reduce(count)
    return count


def start_equal(tensors: list[torch.Tensor], world: World) -> None:
    """Give every process rank 0's initial values of the trainable tensors."""
    if world.distributed:
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def sum_gradients(tensors: list[torch.Tensor], world: World) -> None:
    """Sum each trainable tensor's gradient over all processes (one all-reduce)."""
    if not world.distributed:
        return
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in tensors]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for tensor, grad in zip(tensors, grads):
        n = grad.numel()
        tensor.grad = flat[offset:offset + n].view_as(grad).clone()
        offset += n


def global_loss(loss: torch.Tensor, world: World) -> float:
    """The global batch's loss: the processes' partial losses summed."""
    value = loss.detach().clone()
    if world.distributed:
        dist.all_reduce(value)
    return value.item()
