"""Every attention kind trains under DistributedDataParallel (gloo, 2 processes on the CPU), as
``configs/multi_gpu_train.json`` wraps it: no ``find_unused_parameters``, so a parameter without a gradient (the
vanilla block's old offset network) stops the second iteration with "Expected to have finished reduction in the prior
iteration"."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bundle import CoorTransformerDetector
from bundle.networks.attention import ATTENTION_KINDS


def _train(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for kind in ATTENTION_KINDS:
            torch.manual_seed(0)  # the same initial weights on both ranks
            net = CoorTransformerDetector(out_channels=3, features=(8, 16, 32), num_heads=(2, 1), kv_strides=(1, 2),
                                          attention=kind, window_size=4)  # fmt: skip
            ddp = torch.nn.parallel.DistributedDataParallel(net)
            optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-3)
            torch.manual_seed(1 + rank)  # each rank its own batch
            for _ in range(3):
                optimizer.zero_grad()
                ddp(torch.randn(2, 1, 16, 12)).square().mean().backward()
                optimizer.step()
            results[(kind, rank)] = torch.cat([p.detach().flatten() for p in net.parameters()])
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_attention_kind_trains_under_ddp_with_two_processes(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_train, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    for kind in ATTENTION_KINDS:
        # gradients were averaged across the ranks, so both hold the same weights after three steps
        torch.testing.assert_close(results[(kind, 0)], results[(kind, 1)], rtol=0, atol=1e-6)
