"""Training on several processes: PyTorch DDP through torchrun (gloo on the CPU, NCCL on CUDA)."""

from __future__ import annotations

from gentoolkit.errors import RunError


def launch(nproc: int, argv: list[str]) -> None:
    """``gentool train --nproc-per-node N``: start N workers on this machine through torchrun."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "gentoolkit", "train", *argv])
    except ChildFailedError as exc:
        raise RunError(f"a worker failed ({len(exc.failures)} of {nproc}); its own error is printed above") from None


def distributed_env() -> tuple[int, int, int]:
    """(world size, rank, local rank) as torchrun sets them; (1, 0, 0) in one process."""
    import os

    return (int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device, local_rank: int):
    """Join the process group torchrun set up: NCCL on CUDA, gloo on the CPU."""
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except Exception as exc:  # noqa: BLE001 - a wrong launch is a user error
            raise RunError(f"cannot join the distributed group ({type(exc).__name__}: {exc}); "
                           "check --rdzv-endpoint / MASTER_ADDR and MASTER_PORT, or use --standalone") from None
    return device
