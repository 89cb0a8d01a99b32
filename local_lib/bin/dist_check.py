"""Check that a multi-process launch really forms one process group.

Usage (2 processes on this machine, or under any launcher):
    utils/launch.sh --nproc 2 -- local_lib.bin.dist_check --out exp/dist_check.json

Every rank contributes rank + 1 to an all-reduce (sum) and its host name to an all-gather.
Rank 0 prints the result and, with --out, writes it as JSON atomically. The run fails (exit 1)
unless the sum equals world_size * (world_size + 1) / 2, i.e. every rank took part once.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from local_lib.atomic_io import write_json_atomic
from local_lib.train.distributed import DistInfo, cleanup, init_distributed


def all_reduce_check(info: DistInfo) -> dict[str, object]:
    """The all-reduce of rank + 1 and the hosts of all ranks, as rank 0 will report them."""
    value = torch.tensor([info.rank + 1], dtype=torch.int64, device=info.device)
    hosts = [socket.gethostname()]
    if dist.is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        hosts = [""] * info.world_size
        dist.all_gather_object(hosts, socket.gethostname())
    return {
        "world_size": info.world_size,
        "backend": dist.get_backend() if dist.is_initialized() else "none",
        "sum": int(value.item()),
        "expected": info.world_size * (info.world_size + 1) // 2,
        "hosts": hosts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="JSON file written by rank 0")
    parser.add_argument(
        "--backend", choices=["gloo", "nccl"], help="default: nccl on GPU, else gloo"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    info = init_distributed(backend=args.backend)
    result = all_reduce_check(info)  # a failure exits this rank; torchrun stops the others
    cleanup()
    ok = result["sum"] == result["expected"]
    if info.is_main:
        print(
            f"dist_check: world_size={result['world_size']} backend={result['backend']} "
            f"sum={result['sum']} expected={result['expected']} hosts={','.join(result['hosts'])} "
            f"{'OK' if ok else 'MISMATCH'}",
            flush=True,
        )
        if args.out is not None:
            write_json_atomic(args.out, result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
