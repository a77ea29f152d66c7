"""Speed and memory benchmarks of the detector; prints JSON and writes a markdown table.

Measures, on the machine it runs on:

- ``end_to_end``: inference for one 1935 x 2400 image (an ISBI-sized radiograph; a synthetic PNG unless ``--image``),
  each step the median of ``--repeats`` runs after one warm-up, on the CPU. First stages alone (reading,
  preprocessing, network, decoding to landmarks in mm): the paper-sized CoorTransformer detector
  (``configs/inference.json`` + ``configs/isbi2015_paper.json``, 416 x 512 grid), the shipped CPU-budget one
  (``configs/inference.json``, 160 x 192 grid) and, when the ``landmarker`` package is importable, its
  ``OriginalSpatialConfigurationNet`` (Payer's SCN) at the paper-sized input, with the same reading and preprocessing
  and landmarker's local soft-argmax decoder. And the shipped model as users run it, with its weights and every step
  on (:func:`shipped_pipeline`: the refinement stage and the trust checks), with the spacing given and unknown;
- ``folder``: the user's own path, ``python -m monai.bundle run inference`` on a folder of ``--folder_images`` copies
  of the image with the shipped weights and every output, wall clock from start to end (start-up included);
- ``stages``: each CoorTransformer block of the paper-sized network, at the input it gets for a 1 x 1 x 512 x 416
  image: forward time and peak memory with ``scaled_dot_product_attention`` and with the explicit-matrix reference
  (:func:`explicit_attention` below). Peak memory is the largest single allocation seen by the profiler on
  the CPU, ``torch.cuda.max_memory_allocated`` on CUDA;
- ``cuda`` (only where CUDA is available): network throughput in images/s at batch 1, 16 and 64 in float32 and
  bfloat16 (autocast) for the paper-sized detector and landmarker's SCN, and training throughput (Adam, central loss)
  with its peak memory, at the 416 x 512 grid.

Weights do not change the networks' timings, so the first stages keep their initial weights; the shipped pipeline
loads its own, since its trust checks do more on an implausible answer (another orientation is tried).

landmarker is not a dependency of the bundle (its requirements pin an older SciPy); for the comparison, install its
pure-Python package beside ours without its dependencies:
``pip install --no-deps --target /tmp/landmarker landmarker==0.4.1`` and run with ``PYTHONPATH=/tmp/landmarker``.

Usage: python -m scripts.benchmark [--repeats 5] [--device cpu] [--image x.png] [--folder_images 250]
       [--markdown docs/studies/benchmarks.md]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
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

from bundle import CoorTransformerBlock
from bundle.error_line import run_main
from bundle.geometry import map_points
from bundle.losses import CentralLoss
from bundle.transforms import DecodeLandmarksd, DetectLandmarksd, RefineLandmarksd

REPO = Path(__file__).resolve().parents[1]

SIZE = (1935, 2400)  # width x height
PAPER = ("isbi2015_paper.json",)
CPU_BUDGET = ()  # configs/inference.json alone: the shipped model
CUDA_BATCHES = (1, 16, 64)
CUDA_TRAIN_BATCH = 8


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(Q K^T / sqrt(d)) V`` with the (N x M) matrix materialised: the reference that the benchmark and the
    tests compare :meth:`bundle.CoorTransformerBlock.attend` with. Shapes: q (B, h, N, d), k and v (B, h, M, d) -> (B, h, N, d).
    """
    scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
    return torch.softmax(scores, dim=-1) @ v


def _parser(overlays) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "inference.json")] + [str(REPO / "configs" / o) for o in overlays])
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


def landmarker_scn(num_landmarks: int):
    """landmarker's OriginalSpatialConfigurationNet and a decoder (local soft-argmax, then grid -> mm as ours).

    Returns ``(network, decode)``; raises ImportError when landmarker is not importable."""
    from landmarker.heatmap.decoder import heatmap_to_coord
    from landmarker.models import OriginalSpatialConfigurationNet

    network = OriginalSpatialConfigurationNet(in_channels=1, out_channels=num_landmarks)

    def decode(prepared: dict, output: torch.Tensor) -> torch.Tensor:
        grid = heatmap_to_coord(output, method="local_soft_argmax")[0]  # (K, 2) in array order (x, y)
        return map_points(grid.double(), prepared["image"].affine, invert=False)

    return network, decode


def end_to_end(image_path: str, repeats: int, overlays=PAPER, network=None, decode=None) -> dict:
    """Read, preprocess, network and decode one image on the CPU (the first stage alone, to compare networks);
    seconds are medians of ``repeats`` runs.

    ``overlays`` pick the preprocessing (grid) and, unless ``network`` is given, the network. ``decode(prepared,
    output) -> (K, D) world mm`` replaces our decoding (sigmoid, DARK, grid -> mm) when given."""
    parser = _parser(overlays)
    fine = parser.get_parsed_content("preprocessing_fine", instantiate=True)
    load, preprocess = fine[0], fine[1:] + parser.get_parsed_content("to_grid", instantiate=True)
    if network is None:
        network = parser.get_parsed_content("network_def")
    network = network.eval()
    if decode is None:
        ours = DecodeLandmarksd("pred", ref_key="image")

        def decode(prepared, output):
            return ours({**prepared, "pred": torch.sigmoid(output[0])})

    entry = {"image": image_path, "spacing": [0.1, 0.1]}

    def run_preprocess(data):
        for transform in preprocess:
            data = transform(data)
        return data

    read_s, loaded = _median_seconds(lambda: load(dict(entry)), repeats)
    prep_s, prepared = _median_seconds(lambda: run_preprocess(dict(loaded)), repeats)
    batch = prepared["image"][None]
    with torch.inference_mode():
        net_s, output = _median_seconds(lambda: network(batch), repeats)
    decode_s, decoded = _median_seconds(lambda: decode(prepared, output), repeats)
    seconds = {"read": read_s, "preprocess": prep_s, "network": net_s, "decode": decode_s}
    landmarks = decoded["pred_landmarks"] if isinstance(decoded, dict) else decoded
    return {
        "configs": list(overlays),
        "parameters": sum(p.numel() for p in network.parameters()),
        "image_size": list(SIZE),
        "grid": list(prepared["image"].shape[1:]),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "landmarks": int(landmarks.shape[0]),
    }


def shipped_pipeline(image_path: str, repeats: int, spacing: list | None = (0.1, 0.1)) -> dict:
    """The shipped model as ``configs/inference.json`` runs it, every step on: reading, preprocessing, the first
    stage, and the whole post-processing (decoding with candidate peaks, the shape model's choice, the orientation
    and spacing checks, the refinement stage, error radii, review flags, the result record and the label image),
    with the shipped weights; seconds are medians of ``repeats`` runs. ``spacing`` None: the spacing is assumed and
    estimated from the anatomy. Post-processing is split into ``decode`` (the first stage's sigmoid and peaks),
    ``refine`` and ``trust`` (everything else: the shape judgement and search, radii, flags, outputs)."""
    parser = _parser(CPU_BUDGET)
    preprocessing = parser.get_parsed_content("preprocessing")
    load, preprocess = preprocessing.transforms[0], preprocessing.transforms[1:]
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(REPO / "models" / "model.pt", map_location="cpu", weights_only=True))
    network = network.eval()
    post = parser.get_parsed_content("postprocessing").transforms
    steps = []  # (group, step) in the pipeline's order
    for transform in post:
        if isinstance(transform, DetectLandmarksd):  # the first stage's decoding, then its judgement and search
            steps.append(("decode", transform.detector.decoded))
            steps.append(("trust", functools.partial(transform.detector.search, fine_key=transform.keys[0])))
        else:
            steps.append(("refine" if isinstance(transform, RefineLandmarksd) else "trust", transform))
    entry = {"image": image_path, **({"spacing": list(spacing)} if spacing else {})}

    def run(steps, data):
        for transform in steps:
            data = transform(data)
        return data

    read_s, loaded = _median_seconds(lambda: load(dict(entry)), repeats)
    prep_s, prepared = _median_seconds(lambda: run(preprocess, dict(loaded)), repeats)
    with torch.inference_mode():
        net_s, output = _median_seconds(lambda: network(prepared["image"][None].as_tensor())[0], repeats)
    seconds = {"read": read_s, "preprocess": prep_s, "network": net_s}
    data = {**prepared, "pred": output}
    seconds.update(decode=0.0, refine=0.0, trust=0.0)
    for group, step in steps:  # each step timed on its own input, in order, and added to its group
        elapsed, data = _median_seconds(lambda step=step, data=data: step(dict(data)), repeats)
        seconds[group] += elapsed
    parameters = sum(p.numel() for p in network.parameters())
    parameters += sum(p.numel() for p in parser.get_parsed_content("refiner_def").parameters())
    return {
        "configs": ["inference.json"],
        "spacing": "given" if spacing else "assumed, then estimated",
        "parameters": parameters,
        "image_size": list(SIZE),
        "grid": list(prepared["image"].shape[1:]),
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "plausible": bool(data.get("shape_plausible")),
        "orientation": data.get("orientation"),
        "spacing_source": str(data["image"].meta.get("spacing_source")),
        "landmarks": int(data["pred_landmarks"].shape[0]),
    }


def folder_inference(image_path: str, count: int) -> dict:
    """The user's own path: ``python -m monai.bundle run inference`` on a folder of ``count`` copies of the image,
    with the shipped configs and weights and every output (JSON, 3D Slicer markups, overlay PNG, the run's CSV),
    timed from the command's start to its end (start-up included) in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        images = Path(folder) / "images"
        images.mkdir()
        suffix = Path(image_path).suffix
        for i in range(count):
            os.symlink(os.path.abspath(image_path), images / f"{i:04d}{suffix}")
        command = [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "inference",
            "--config_file",
            str(REPO / "configs" / "inference.json"),
            "--bundle_root",
            str(REPO),
            "--dataset_dir",
            str(images),
            "--output_dir",
            str(Path(folder) / "out"),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO, capture_output=True)
        seconds = time.perf_counter() - start
        written = len(list((Path(folder) / "out").glob("*_overlay.png")))
    refine = os.path.isfile(REPO / "models" / "refiner" / "model.pt")
    return {"images": count, "seconds": seconds, "seconds_per_image": seconds / count, "overlays": written,
            "refine": refine}  # fmt: skip


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _images_per_second(step, batch: int, device: torch.device, repeats: int) -> float:
    step()  # warm-up (cuDNN autotuning, lazy allocation)
    _synchronize(device)
    # the peak of the timed steps only: cuDNN's autotuning tries algorithms with large workspaces during the warm-up
    # (16 GiB at batch 1 in float32 on an H100), which later steps never need
    _reset_peak(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    _synchronize(device)
    return batch * repeats / (time.perf_counter() - start)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def throughput(
    network: torch.nn.Module,
    device: torch.device,
    grid=(416, 512),
    batches=CUDA_BATCHES,
    train_batch: int | None = CUDA_TRAIN_BATCH,
    repeats: int = 10,
) -> dict:
    """Network images/s (inference mode) per batch size in float32 and bfloat16 autocast, and, if ``train_batch``,
    training images/s (forward, central loss, backward, Adam step) with the peak memory (CUDA only; None on the CPU).

    ``grid`` is the input's spatial size in MONAI's order (x, y); the network's weights are irrelevant to timing."""
    network = network.to(device)
    rows = {"inference": [], "training": []}
    for dtype in (torch.float32, torch.bfloat16):
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
        network.eval()
        for batch in batches:
            x = torch.randn(batch, 1, *grid, device=device)
            with torch.inference_mode(), autocast:
                rate = _images_per_second(lambda: network(x), batch, device, repeats)
            rows["inference"].append(
                {
                    "dtype": str(dtype).split(".")[-1],
                    "batch": batch,
                    "images_per_s": rate,
                    "peak_mib": _peak_mib(device),
                }
            )
        if train_batch:
            network.train()
            optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
            loss_function = CentralLoss()
            x = torch.randn(train_batch, 1, *grid, device=device)
            with torch.no_grad():
                target = torch.rand_like(network(x).float())

            def step():
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = loss_function(network(x), target)
                loss.backward()
                optimizer.step()

            rate = _images_per_second(step, train_batch, device, repeats)
            rows["training"].append(
                {
                    "dtype": str(dtype).split(".")[-1],
                    "batch": train_batch,
                    "images_per_s": rate,
                    "peak_mib": _peak_mib(device),
                }
            )
    return rows


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
    network = _parser(PAPER).get_parsed_content("network_def").eval().to(device)
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


def _cuda_section(repeats: int) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine"}
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    result = {"device": torch.cuda.get_device_name(), "grid": [416, 512]}
    result["coortransformer_paper"] = throughput(
        _parser(PAPER).get_parsed_content("network_def"), device, repeats=repeats
    )
    try:
        network, _ = landmarker_scn(19)
        result["landmarker_scn"] = throughput(network, device, train_batch=None, repeats=repeats)
    except ImportError as error:
        result["landmarker_scn"] = {"skipped": f"landmarker not importable: {error}"}
    return result


def _e2e_row(name: str, e: dict) -> str:
    if "skipped" in e:
        return f"| {name} | - | - | - | - | - | - | - | - | not measured: {e['skipped']} |"
    s = e["seconds"]
    refine = f"{s['refine']:.3f}" if "refine" in s else "-"
    trust = f"{s['trust']:.3f}" if "trust" in s else "-"
    return (
        f"| {name} | {e['parameters']:,} | {'x'.join(map(str, e['grid']))} | {s['read']:.3f} | {s['preprocess']:.3f} "
        f"| {s['network']:.3f} | {s['decode']:.3f} | {refine} | {trust} | {e['total_seconds']:.3f} |"
    )


def markdown(result: dict) -> str:
    e2e = result["end_to_end"]
    threads = next((e["threads"] for e in e2e.values() if "threads" in e), "?")
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{result['command']}` on {result['machine']}; torch {result['torch']}, {threads} threads.",
        "",
        "## End-to-end inference on the CPU, one 1935 x 2400 image (seconds, median)",
        "",
        "Read (JPEG/PNG to one grey channel), preprocess (spacing, average down to the refiner's 0.3 mm, intensity",
        "scaling, anti-aliased resize to the grid), network, decode (to landmarks in mm, with candidate peaks for the",
        "shipped pipeline), refine (19 patches of the 0.3 mm copy, the refiner, patch decoding), trust (below).",
        "landmarker's SCN gets the same reading and preprocessing:",
        "`OriginalSpatialConfigurationNet(in_channels=1, out_channels=19)` of landmarker 0.4.1 with its defaults,",
        "decoded by its local soft-argmax (`pip install --no-deps --target DIR landmarker==0.4.1`, `PYTHONPATH=DIR`).",
        "",
        "| model | parameters | grid (x by y) | read | preprocess | network | decode | refine | trust | total |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_e2e_row(name, e) for name, e in e2e.items()]
    lines += [
        "",
        "`coortransformer_shipped` is `configs/inference.json` as a user runs it, every step on: the trust column holds",
        "the shape model's choice among candidate peaks, the orientation and spacing checks, the final plausibility,",
        "error radii, review flags, the result record and the label image; `..._spacing_unknown` gives no spacing, so",
        "it is assumed and then estimated from the anatomy. "
        + "; ".join(
            f"{name}: plausible {e['plausible']}, orientation {e['orientation']}, spacing {e['spacing_source']}"
            for name, e in e2e.items()
            if "plausible" in e
        )
        + ".",
    ]
    ours, theirs = e2e.get("coortransformer_shipped", {}), e2e.get("landmarker_scn", {})
    if "total_seconds" in ours and "total_seconds" in theirs:
        ratio = theirs["total_seconds"] / ours["total_seconds"]
        lines += [
            "",
            f"The shipped model, every step on, is {ratio:.1f} times faster than landmarker's SCN end to end.",
        ]
    folder = result["folder"]
    lines += ["", "## The user's path: `run inference` on a folder (seconds, wall clock, start-up included)", ""]
    if "skipped" in folder:
        lines.append(f"Not measured: {folder['skipped']}.")
    else:
        stages = "both stages" if folder["refine"] else "the first stage only (no models/refiner/model.pt)"
        lines += [
            f"{folder['images']} copies of the image, the shipped configs and weights ({stages}), every output written"
            f" (JSON, 3D Slicer markups, {folder['overlays']} overlay PNGs, the run's CSV): {folder['seconds']:.1f} s,"
            f" **{folder['seconds_per_image']:.3f} s per image**.",
        ]
    lines += [
        "",
        f"## CoorTransformer stages ({result['stages_device']}), paper-sized network, input 1 x 1 x 512 x 416",
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
    lines += ["", "Peak memory: the largest single allocation seen by the profiler (CPU) or the CUDA peak.", ""]
    cuda = result["cuda"]
    lines += ["## CUDA throughput, 416 x 512 grid", ""]
    if "skipped" in cuda:
        lines.append(f"Not measured: {cuda['skipped']}. Run this script on a machine with an NVIDIA GPU.")
    else:
        lines += [
            f"Device: {cuda['device']}.",
            "",
            "| model | mode | dtype | batch | images/s | peak MiB |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("coortransformer_paper", "landmarker_scn"):
            rows = cuda[name]
            if "skipped" in rows:
                lines.append(f"| {name} | - | - | - | not measured: {rows['skipped']} | - |")
                continue
            for mode in ("inference", "training"):
                for r in rows[mode]:
                    lines.append(
                        f"| {name} | {mode} | {r['dtype']} | {r['batch']} | {r['images_per_s']:.1f} "
                        f"| {r['peak_mib']:.0f} |"
                    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="device of the stage benchmark (end to end is always CPU)")
    parser.add_argument("--image", default=None, help="a 1935 x 2400 image; a synthetic PNG by default")
    parser.add_argument("--folder_images", type=int, default=250, help="images of the folder run (0: skip it)")
    parser.add_argument(
        "--markdown", default=None, help="also write this markdown file (e.g. docs/studies/benchmarks.md)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        image = args.image
        if image is None:
            image = os.path.join(folder, "synthetic.png")
            pixels = np.random.default_rng(0).integers(0, 255, (SIZE[1], SIZE[0]), dtype=np.uint8)
            Image.fromarray(pixels).save(image)
        e2e = {
            "coortransformer_paper": end_to_end(image, args.repeats, PAPER),
            "coortransformer_cpu_budget": end_to_end(image, args.repeats, CPU_BUDGET),
            "coortransformer_shipped": shipped_pipeline(image, args.repeats),
            "coortransformer_shipped_spacing_unknown": shipped_pipeline(image, args.repeats, spacing=None),
        }
        try:
            network, decode = landmarker_scn(19)
            e2e["landmarker_scn"] = end_to_end(image, args.repeats, PAPER, network, decode)
        except ImportError as error:
            e2e["landmarker_scn"] = {"skipped": f"landmarker not importable ({error})"}
        result = {
            "command": "python -m scripts.benchmark " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"
            + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
            "torch": torch.__version__,
            "end_to_end": e2e,
            "folder": (
                folder_inference(image, args.folder_images) if args.folder_images else {"skipped": "--folder_images 0"}
            ),
            "stages_device": args.device,
            "stages": stages(args.repeats, torch.device(args.device)),
            "cuda": _cuda_section(max(args.repeats, 10)),
        }
    print(json.dumps(result, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(result))


if __name__ == "__main__":
    sys.exit(run_main(main))
