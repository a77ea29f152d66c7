"""How far autocast moves the shipped model's landmarks: each image of a datalist split decoded from the network's
output in float32 and under float16 and bfloat16 autocast; prints JSON (mm, world coordinates).

Why: mixed precision quantises the network's output logits (bfloat16 keeps 8 bits of mantissa, float16 11), and the
DARK decoder's sub-pixel step reads the heatmap's curvature near its peak, so a reduced-precision output can move a
landmark by a fraction of a grid pixel. This measures it; it decided that validation and inference run in float32
(docs/studies/gpu.md). Runs on the CPU (CPU autocast) or on CUDA, with the configs' own preprocessing and decoding.

Usage: python -m experiments.autocast_shift [--datalist data/isbi2015/datalist.json] [--split validation]
       [--config_file configs/inference.json] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from monai.bundle import ConfigParser

from bundle.data import load_datalist
from bundle.error_line import run_main
from bundle.transforms import DecodeLandmarksd


def shifts(config_file: str, datalist: str, split: str, device: torch.device | str = "cpu") -> dict:
    device = torch.device(device)
    parser = ConfigParser()
    parser.read_config(config_file)
    parser["device"] = f"$torch.device('{device}')"
    network = parser.get_parsed_content("network_def").to(device).eval()
    weights = parser.get_parsed_content("ckpt_dir") + "/model.pt"
    network.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    preprocessing = parser.get_parsed_content("preprocessing")
    decode = DecodeLandmarksd("pred", codec=parser.get_parsed_content("heatmap_codec"), ref_key="image")
    moved = {"float16": [], "bfloat16": []}
    for entry in load_datalist(datalist, key=split):
        item = preprocessing({"image": entry["image"], "spacing": entry.get("spacing")})
        image = item["image"].to(device)

        def landmarks(dtype):
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                logits = network(image[None])[0].float()
            return decode({"image": item["image"], "pred": torch.sigmoid(logits).cpu()})["pred_landmarks"]

        reference = landmarks(torch.float32)
        for name in moved:
            moved[name].append((landmarks(getattr(torch, name)) - reference).norm(dim=-1))
    result = {"config_file": config_file, "datalist": datalist, "split": split, "device": str(device)}
    for name, values in moved.items():
        values = torch.cat(values)
        result[name] = {
            "mean_mm": float(values.mean()),
            "median_mm": float(values.median()),
            "max_mm": float(values.max()),
            "landmarks": values.numel(),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config_file", default="configs/inference.json")
    parser.add_argument("--datalist", default="data/isbi2015/datalist.json")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(shifts(args.config_file, args.datalist, args.split, torch.device(args.device)), indent=2))


if __name__ == "__main__":
    sys.exit(run_main(main))
