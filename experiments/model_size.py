"""Print the parameter count and forward FLOPs of the detector as JSON.

Usage: python -m experiments.model_size [--shape 1 1 512 416] [--out_channels 19] [--attention coor]

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2), with PyTorch's own formula
for scaled-dot-product attention mapped onto the CPU flash kernel, which the counter does not know by default.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from bundle.error_line import run_main
from bundle.networks import CoorTransformerDetector


def _cpu_flash_attention_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def measure(shape: list[int], out_channels: int, attention: str) -> dict:
    spatial_dims = len(shape) - 2
    net = CoorTransformerDetector(spatial_dims, shape[1], out_channels, attention=attention).eval()
    counter = FlopCounterMode(
        display=False,
        custom_mapping={torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flop},
    )
    with torch.no_grad(), counter:
        net(torch.zeros(shape))
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    parameters = sum(p.numel() for p in net.parameters())
    return {
        "input_shape": shape,
        "out_channels": out_channels,
        "attention": attention,
        "parameters": parameters,
        "float32_megabytes": round(parameters * 4 / 1e6, 2),
        "forward_gflops": round(counter.get_total_flops() / 1e9, 2),
        "gflops_by_op": {k: round(v / 1e9, 2) for k, v in by_op.items()},
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[1, 1, 512, 416])
    parser.add_argument("--out_channels", type=int, default=19)
    parser.add_argument("--attention", default="coor")
    args = parser.parse_args()
    print(json.dumps(measure(args.shape, args.out_channels, args.attention), indent=2))


if __name__ == "__main__":
    sys.exit(run_main(main))
