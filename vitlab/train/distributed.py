"""torch.distributed helpers for torchrun / DDP: joining the group, sharding batches and evaluation sets,
agreeing on when to stop, and gathering with gradients for a contrastive loss over the global batch.

A contrastive loss is not a mean of per-sample terms: every anchor's negatives are the other samples, so
computing it per process on a local batch of N sees only 2N − 2 negatives instead of the 2WN − 2 of the
global batch. SimCLR (Chen et al. 2020) trains with batches of up to 8192 split over many accelerators and
draws the negatives from all of them: the pretraining step gathers both views with :func:`gather_with_grad`
and evaluates the loss on the combined batch.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

from ..errors import ProcessGroupTimeout, VitlabError

T = TypeVar("T")


def torchrun_processes() -> int:
    """How many processes torchrun started (its WORLD_SIZE), known before any process group exists; 1 outside it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_by_torchrun() -> bool:
    """True in a process torchrun started with more than one process (WORLD_SIZE > 1)."""
    return torchrun_processes() > 1


def setup_distributed(device: torch.device, timeout_s: float = 300.0) -> torch.device:
    """Join the process group torchrun describes (its env:// rendezvous): NCCL on CUDA (plus gloo for CPU
    tensors), gloo on the CPU, with every collective giving up after ``timeout_s`` (gloo's default is 30
    minutes of a silent hang when one process stalls).

    Each process takes GPU ``LOCAL_RANK`` on a CUDA device. Returns the device this process uses;
    outside torchrun (or once joined) nothing happens.
    """
    if not launched_by_torchrun() or is_distributed():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # on CUDA both: NCCL for the tensors on the GPUs, gloo for the small CPU ones (agree, on_main_process)
    dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo",
                            timeout=timedelta(seconds=timeout_s))
    return device


@contextlib.contextmanager
def leaves_process_group() -> Iterator[None]:
    """Around a run that may join torchrun's group (:func:`setup_distributed`): leave it at the end, however the
    run ends (but a timeout, after which the process should exit); a group that existed before is left alone."""
    owns = launched_by_torchrun() and not is_distributed()

    def leave() -> None:
        if owns and is_distributed():
            dist.destroy_process_group()

    try:
        yield
    except ProcessGroupTimeout:
        raise  # the group is broken and destroying it can hang (vitlab.cli.main): the process must exit instead
    except BaseException:
        leave()
        raise
    leave()


def is_timeout(e: BaseException) -> bool:
    """True for the error a collective raises when the other processes did not answer in time."""
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("timed out" in text or "timeout" in text) and is_distributed()


@contextlib.contextmanager
def timeout_is_one_line(timeout_s: float, where: Callable[[], str]) -> Iterator[None]:
    """Turn a collective's timeout into a ProcessGroupTimeout that says what it means and what to do."""
    try:
        yield
    except RuntimeError as e:
        if not is_timeout(e):
            raise
        raise ProcessGroupTimeout(
            f"process {rank()} of {world_size()} waited more than dist_timeout_s={timeout_s:g} s for the others "
            f"{where()}: one of them stalled or died (its own output says why); raise --dist_timeout_s if a "
            f"step can legitimately take longer") from e


def data_parallel(module: torch.nn.Module, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the module, what a training step calls). In a process group: BatchNorm layers become SyncBatchNorm
    on GPUs (PyTorch's runs on GPUs only) and the step calls a DistributedDataParallel wrapper, which
    averages the gradients over the processes. Otherwise both are the module itself."""
    if not is_distributed():
        return module, module
    if device.type == "cuda":
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ddp = torch.nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda"
                                                    else None)
    return module, ddp


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This process's contiguous slice of a global batch of indices, in rank order, so that gathering the
    slices (:func:`gather_with_grad`) gives back the global batch. The size must divide by W."""
    w = world_size()
    if len(batch) % w:
        raise ValueError(f"a batch of {len(batch)} cannot be split evenly over {w} processes")
    return batch.chunk(w)[rank()] if w > 1 else batch


def part_sizes(n: int) -> list[int]:
    """How many of n items each process evaluates: contiguous parts as equal as they can be, rank order."""
    w = world_size()
    return [n // w + (r < n % w) for r in range(w)]


def my_part(n: int) -> slice:
    """This process's contiguous part of n items (:func:`part_sizes`)."""
    sizes = part_sizes(n)
    start = sum(sizes[:rank()])
    return slice(start, start + sizes[rank()])


def gather_parts(x: torch.Tensor, n: int) -> torch.Tensor:
    """All-gather every process's part (:func:`my_part` of n rows) back into the whole (n, ...) tensor,
    on every process (no gradients)."""
    if world_size() == 1:
        return x
    sizes = part_sizes(n)
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[:len(x)] = x
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return torch.cat([part[:size] for part, size in zip(out, sizes)])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics), so that all of them evaluate the
    model rank 0 saves."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def agree(flag: bool) -> bool:
    """True on every process if it is True on any (e.g. a stop request that reached one process only)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)])  # a CPU tensor: the gloo backend
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(obj: T) -> list[T]:
    """Every process's ``obj`` (picklable, small), in rank order; ``[obj]`` outside a process group."""
    if not is_distributed():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main_process(fn: Callable[[], T]) -> T | None:
    """Run ``fn`` on rank 0 only (e.g. creating the run folder). If it fails there, every rank raises,
    rather than the others waiting at their next collective until the timeout."""
    result, error = None, None
    if rank() == 0:
        try:
            result = fn()
        except Exception as e:  # re-raised below, after the other ranks have been told
            error = e
    if is_distributed():
        failed = torch.tensor([int(error is not None)])
        dist.broadcast(failed, src=0)  # a CPU tensor: the gloo backend
        if failed.item() and error is None:
            raise VitlabError("rank 0 failed before training (its error is in its output); stopping this rank")
    if error is not None:
        raise error
    return result


def sum_over_processes(*values: torch.Tensor | float | int) -> list:
    """All-reduce (sum) running totals over the processes; tensors stay tensors, numbers stay numbers."""
    if not is_distributed():
        return list(values)
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    dist.all_reduce(packed)
    return [total.to(v.dtype) if isinstance(v, torch.Tensor) else type(v)(total.item())
            for v, total in zip(values, packed)]


def each_process(*values: torch.Tensor | float | int) -> list[torch.Tensor]:
    """Every process's own value of each running total: one tensor per value, an entry a process in rank order.
    What a mid-epoch checkpoint keeps, so that a resumed process goes on from its own partial sum and the epoch's
    totals are added in the order of an uninterrupted run (a sum of the processes' sums would be rounded
    differently). Gathered exactly: each row is float64 zeros but the process's own, summed."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    dtypes = [v.dtype if isinstance(v, torch.Tensor) else torch.as_tensor(v).dtype for v in values]
    rows = torch.zeros(world_size(), len(values), dtype=torch.float64, device=device)  # (P, K)
    rows[rank()] = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in values])
    rows = all_sum(rows)
    # fresh (P,) tensors: a column view's stride would be K, which a safetensors file cannot hold
    return [torch.empty(len(rows), dtype=dtype, device=device).copy_(rows[:, i]) for i, dtype in enumerate(dtypes)]


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``t`` over the processes (e.g. a confusion matrix); ``t`` itself outside a group."""
    if not is_distributed():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def is_distributed() -> bool:
    """True inside an initialised process group (torchrun + ``init_process_group``)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes W in the default group; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0, in rank order, keeping the autograd graph.

    Every rank must pass the same shape (use ``drop_last=True`` for the last, smaller batch):
    all_gather of unequal shapes fails or hangs.

    Gradient: the backward of ``torch.distributed.nn.functional.all_gather`` sums, over all ranks,
    the gradient each rank's graph sends to this rank's slice (a reduce-scatter with SUM). When
    every rank computes the same loss L from the gathered tensor (as the pretraining step does), each
    of the W ranks sends dL/dx_r, so the local gradient is W · dL/dx_r. DDP then *averages* parameter
    gradients over the W ranks, which divides that factor out: the parameter gradient is exactly that
    of L on the combined batch in one process. Without DDP's averaging (e.g. a hand-written all-reduce
    SUM) divide the loss by W.

    Args:
        x: this rank's tensor; returned unchanged (same object) when not distributed or W = 1.

    Shape:
        (N, ...) -> (W·N, ...); rows r·N .. (r+1)·N − 1 come from rank r.
    """
    if world_size() == 1:
        return x
    with warnings.catch_warnings():
        # Recent torch (2.13 here) marks this FutureWarning-deprecated in favour of the private
        # torch.distributed._functional_collectives.all_gather_single; this public autograd
        # all_gather still works on every backend (gloo included) from torch 2.4 on.
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
        parts = dist_fn.all_gather(x)  # W tensors of (N, ...), differentiable
    return torch.cat(parts)  # (W·N, ...)
