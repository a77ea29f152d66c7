"""Speed and memory benchmarks of the detector; prints JSON and writes a markdown table.

Measures, on the machine it runs on:

- ``end_to_end``: inference for one 1935 x 2400 image (an ISBI-sized radiograph; a synthetic PNG unless ``--image``):
  reading, preprocessing (to the 416 x 512 grid), network and decoding (sigmoid, DARK, back to mm), each the median
  of ``--repeats`` runs after one warm-up, with the paper-sized network of ``configs/isbi2015.json`` on the CPU;
- ``stages``: each CoorTransformer block of that network, at the input it gets for a 1 x 1 x 512 x 416 image:
  forward time and peak memory with ``scaled_dot_product_attention`` and with the explicit-matrix reference
  (:func:`bundle.networks.explicit_attention`). Peak memory is the largest single allocation seen by the profiler on
  the CPU, ``torch.cuda.max_memory_allocated`` on CUDA.

CUDA throughput (batch 1, 16, 64 in float32 and bfloat16, training) and the comparison with landmarker's SCN are not
measured by this script yet: they need a GPU machine and the landmarker package.

Usage: python scripts/benchmark.py [--repeats 5] [--device cpu] [--checkpoint models/model.pt] [--image x.png]
                                   [--markdown docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from PIL import Image
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bundle import CoorTransformerBlock  # noqa: E402
from bundle.networks import explicit_attention  # noqa: E402
from bundle.transforms import DecodeLandmarksd  # noqa: E402

SIZE = (1935, 2400)  # width x height


def _parser() -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "inference.json"), str(REPO / "configs" / "isbi2015.json")])
    parser["bundle_root"] = str(REPO)
    parser["device"] = "$torch.device('cpu')"
    return parser


def _median_seconds(function, repeats: int) -> tuple[float, object]:
    result = function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def end_to_end(image_path: str, repeats: int, checkpoint: str | None) -> dict:
    parser = _parser()
    steps = parser.get_parsed_content("preprocessing_base", instantiate=True)
    load, preprocess = steps[0], steps[1:]
    network = parser.get_parsed_content("network_def").eval()
    if checkpoint:
        network.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    decode = DecodeLandmarksd("pred", ref_key="image")
    entry = {"image": image_path, "spacing": [0.1, 0.1]}

    def run_preprocess(data):
        for transform in preprocess:
            data = transform(data)
        return data

    read_s, loaded = _median_seconds(lambda: load(dict(entry)), repeats)
    prep_s, prepared = _median_seconds(lambda: run_preprocess(dict(loaded)), repeats)
    batch = prepared["image"][None]
    with torch.inference_mode():
        net_s, logits = _median_seconds(lambda: network(batch), repeats)
    decode_s, decoded = _median_seconds(lambda: decode({**prepared, "pred": torch.sigmoid(logits[0])}), repeats)
    return {
        "image_size": list(SIZE),
        "grid": list(prepared["image"].shape[1:]),
        "threads": torch.get_num_threads(),
        "seconds": {"read": read_s, "preprocess": prep_s, "network": net_s, "decode": decode_s},
        "total_seconds": read_s + prep_s + net_s + decode_s,
        "landmarks": int(decoded["pred_landmarks"].shape[0]),
    }


def _peak_bytes(function, device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        function()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    return max(event.cpu_memory_usage for event in prof.events())


def stages(repeats: int, device: torch.device) -> list[dict]:
    network = _parser().get_parsed_content("network_def").eval().to(device)
    inputs = {}
    blocks = [m for m in network.modules() if isinstance(m, CoorTransformerBlock)]
    hooks = [b.register_forward_hook(lambda m, args, out: inputs.setdefault(id(m), args[0])) for b in blocks]
    with torch.inference_mode():
        network(torch.zeros(1, 1, 512, 416, device=device))
    for hook in hooks:
        hook.remove()
    rows = []
    for index, block in enumerate(blocks):
        x = inputs[id(block)]

        def forward(b=block, x=x):
            out = b(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        with torch.inference_mode():
            fast_s, fast = _median_seconds(forward, repeats)
            fast_peak = _peak_bytes(forward, device)
            block.attend = types.MethodType(lambda self, q, k, v: explicit_attention(q, k, v), block)
            slow_s, slow = _median_seconds(forward, repeats)
            slow_peak = _peak_bytes(forward, device)
            del block.attend
        tokens = int(np.prod(x.shape[2:]))
        rows.append(
            {
                "stage": index,
                "input_shape": list(x.shape),
                "queries": tokens,
                "keys": tokens // block.kv_stride ** (x.ndim - 2),
                "heads": block.num_heads,
                "sdpa": {"ms": 1000 * fast_s, "peak_mib": fast_peak / 2**20},
                "explicit": {"ms": 1000 * slow_s, "peak_mib": slow_peak / 2**20},
                "max_abs_difference": float((fast - slow).abs().max()),
            }
        )
    return rows


def markdown(result: dict) -> str:
    e = result["end_to_end"]
    s = e["seconds"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{result['command']}` on {result['machine']}; torch {result['torch']}, {e['threads']} threads.",
        "",
        "## End-to-end inference on the CPU, one 1935 x 2400 image, 416 x 512 grid, paper-sized network",
        "",
        "| read | preprocess | network | decode | total |",
        "|---|---|---|---|---|",
        f"| {s['read']:.3f} s | {s['preprocess']:.3f} s | {s['network']:.3f} s | {s['decode']:.3f} s "
        f"| {e['total_seconds']:.3f} s |",
        "",
        f"## CoorTransformer stages ({result['stages_device']}), input 1 x 1 x 512 x 416",
        "",
        "| stage | input | queries x keys | heads | SDPA ms | SDPA peak MiB | explicit ms | explicit peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["stages"]:
        lines.append(
            f"| {r['stage']} | {'x'.join(map(str, r['input_shape']))} | {r['queries']} x {r['keys']} | {r['heads']} "
            f"| {r['sdpa']['ms']:.1f} | {r['sdpa']['peak_mib']:.1f} | {r['explicit']['ms']:.1f} "
            f"| {r['explicit']['peak_mib']:.1f} |"
        )
    lines += [
        "",
        "Peak memory: the largest single allocation seen by the profiler (CPU) or the CUDA peak.",
        "Not measured yet: CUDA throughput and training, and landmarker's SCN (need a GPU machine).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="device of the stage benchmark (end to end is always CPU)")
    parser.add_argument("--checkpoint", default=None, help="weights for the network (timing does not depend on them)")
    parser.add_argument("--image", default=None, help="a 1935 x 2400 image; a synthetic PNG by default")
    parser.add_argument("--markdown", default=None, help="also write this markdown file (e.g. docs/benchmarks.md)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        image = args.image
        if image is None:
            image = os.path.join(folder, "synthetic.png")
            pixels = np.random.default_rng(0).integers(0, 255, (SIZE[1], SIZE[0]), dtype=np.uint8)
            Image.fromarray(pixels).save(image)
        result = {
            "command": "python scripts/benchmark.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
            + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
            "torch": torch.__version__,
            "end_to_end": end_to_end(image, args.repeats, args.checkpoint),
            "stages_device": args.device,
            "stages": stages(args.repeats, torch.device(args.device)),
        }
    print(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))


if __name__ == "__main__":
    main()
