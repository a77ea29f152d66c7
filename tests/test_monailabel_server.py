"""A real MONAI Label server serves the bundle: ``/info``, ``/infer`` (label image and landmarks, twice on one image, 2D
and 3D) and ``/train`` (fine-tuning from the served weights on labels saved through the datastore).

The server runs in its own virtual environment, ``.venv-monailabel`` (``requirements-monailabel.txt``; ``.ci/run``
makes it), on 127.0.0.1 at a free port, with the app ``apps/landmarks`` and the folders that
``tools.monailabel_models`` writes. It is stopped by its PID (its process group) whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pytest

from bundle import Landmarks, read_landmarks, write_landmarks

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("MONAILABEL_VENV", REPO / ".venv-monailabel"))
ISBI = REPO.parent / "shared" / "data" / "isbi2015"
TEMPLATE = REPO / "data" / "afids" / "tpl-MNI152NLin2009cAsym_res-04mm_T1w.nii.gz"
FIDUCIALS = REPO / "data" / "afids" / "afids_groundtruth.fcsv"
CEPH, AFIDS = "coortransformer_landmarks", "afids_landmarks"
STARTUP_S, REQUEST_S = 180, 600
# the datastore lists landmark files as labels only if their types are among its file types (a *.json pattern would
# also list the datastore's own datastore_v2.json as an image)
FILE_TYPES = ["*.nii.gz", "*.png", "*.jpg", "*.csv", "*.mrk.json"]

pytestmark = pytest.mark.skipif(
    not (VENV / "bin" / "monailabel").exists(),
    reason=f"no MONAI Label environment at {VENV}: python3 -m venv .venv-monailabel && .venv-monailabel/bin/pip "
    "install --no-deps -r requirements-monailabel.txt (.ci/run makes it)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_S) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {url}: HTTP {e.code}: {e.read()[-2000:]!r}") from None


def _multipart(field: str, path: Path) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _bundle(*args: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("monailabel")
    app, studies = root / "app", root / "studies"
    shutil.copytree(REPO / "apps" / "landmarks", app, ignore=shutil.ignore_patterns("__pycache__", "model"))
    # the 3D model's weights: a short training of the AFIDs overlay, as a user would make them
    models = root / "afids_models"
    _bundle(
        "-m", "monai.bundle", "run", "training", "--config_file", "['configs/train.json','configs/afids3d.json']",
        "--ckpt_dir", str(models), "--output_dir", str(root / "afids_runs"), "--max_epochs", "2", "--val_interval", "1",
        cwd=REPO,
    )  # fmt: skip
    _bundle("-m", "tools.monailabel_models", "--app", str(app), "--afids_weights", str(models / "model.pt"), cwd=REPO)
    studies.mkdir()
    for i in range(1, 6):
        shutil.copy(TEMPLATE, studies / f"brain{i}.nii.gz")
    cephalograms = [f"{n:03d}" for n in range(131, 136)] if (ISBI / "images").is_dir() else []
    for stem in cephalograms:
        shutil.copy(ISBI / "images" / f"{stem}.jpg", studies / f"{stem}.jpg")
    shutil.copy(REPO / "data" / "demo" / "images" / "001.png", studies / "demo001.png")
    port, log = _free_port(), open(root / "server.log", "w")
    env = {
        **os.environ,
        "MONAI_LABEL_DATASTORE_FILE_EXT": json.dumps(FILE_TYPES),
        "PYTHONPATH": "",
        "VIRTUAL_ENV": str(VENV),
    }
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # its monailabel command runs the first python
    command = [str(VENV / "bin" / "monailabel"), "start_server", "--app", str(app), "--studies", str(studies)]
    command += ["--conf", "models", "all", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/info/", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, (
                    "the server did not answer in time: " + (root / "server.log").read_text()[-3000:]
                )
                time.sleep(1)
        yield {"url": url, "app": app, "studies": studies, "log": root / "server.log", "cephalograms": cephalograms}
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and everything it started (its process group, led by its PID)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _infer(server, model: str, image: str, output: str) -> bytes:
    return _request(f"{server['url']}/infer/{model}?image={image}&output={output}", "POST")


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_info_lists_landmarks_as_labels_one_to_k(server):
    info = json.loads(_request(f"{server['url']}/info/"))
    assert set(info["models"]) == {CEPH, AFIDS} and set(info["trainers"]) == {CEPH, AFIDS}
    names = {
        CEPH: json.loads((REPO / "configs" / "inference.json").read_text())["landmark_names"],
        AFIDS: json.loads((REPO / "configs" / "afids3d.json").read_text())["landmark_names"],
    }
    for model, dimension in ((CEPH, 2), (AFIDS, 3)):
        description = info["models"][model]
        assert description["type"] == "segmentation" and description["dimension"] == dimension
        # MONAI Label lower-cases label names; 0 is the background
        assert description["labels"] == {n.lower(): k + 1 for k, n in enumerate(names[model])}


def test_2d_infer_returns_a_label_image_and_the_landmarks_twice_writing_nothing_into_the_bundle(server, tmp_path):
    served = server["app"] / "model" / CEPH
    before = _snapshot(served)
    image = "demo001"
    results = [json.loads(_infer(server, CEPH, image, "json")) for _ in range(2)]
    assert results[0]["landmarks"] == results[1]["landmarks"]
    result = results[0]
    # a synthetic picture, not a cephalogram: the spacing stays assumed, and every landmark is flagged
    assert result["spacing"] == [0.1, 0.1] and result["spacing_source"] == "assumed"
    assert result["plausible"] is False and result["orientation"] == "as_acquired"
    assert [item["index"] for item in result["landmarks"]] == list(range(19))
    fields = {"name", "pixel", "world", "confidence", "visible", "error_radius_mm", "review", "review_reasons"}
    assert all(fields <= set(item) and item["review"] for item in result["landmarks"])
    # the clinical measurements, as run inference writes them
    assert {"ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FMA", "MW"} <= set(result["measurements"])
    assert {"value", "unit", "interval", "class", "class_name", "normal", "borderline"} <= set(
        result["measurements"]["ANB"]
    )
    # the same content as the bundle's own inference JSON for the same image (another torch release: tolerances)
    source = server["studies"] / f"{image}.png"
    _bundle(
        "-m", "monai.bundle", "run", "inference", "--config_file", "configs/inference.json",
        "--dataset_dir", str(source), "--output_dir", str(tmp_path / "own"), cwd=REPO,
    )  # fmt: skip
    own = json.loads((tmp_path / "own" / f"{image}.json").read_text())
    for key in ("spacing", "spacing_source", "orientation", "plausible", "error_radius_coverage"):
        assert own[key] == result[key], key
    assert own["measurements"].keys() == result["measurements"].keys()
    for mine, served_item in zip(own["landmarks"], result["landmarks"]):
        assert mine["name"] == served_item["name"] and mine["index"] == served_item["index"]
        np.testing.assert_allclose(mine["pixel"], served_item["pixel"], atol=1e-2)
        np.testing.assert_allclose(mine["world"], served_item["world"], atol=1e-3)
    # the label image: the picture's size, as 3D Slicer loads it (spacing 1, origin 0), disks of value k + 1
    for attempt in range(2):
        path = tmp_path / f"label{attempt}.nii.gz"
        path.write_bytes(_infer(server, CEPH, image, "image"))
        label, picture = itk.imread(str(path)), itk.imread(str(source))
        assert tuple(itk.size(label)) == tuple(itk.size(picture))
        assert tuple(label.GetSpacing()) == tuple(picture.GetSpacing()) and tuple(label.GetOrigin()) == (0.0, 0.0)
        array = itk.array_from_image(label)  # rows, columns
        assert np.issubdtype(array.dtype, np.integer)
        _check_disks(array.T, result["landmarks"])  # transposed: x = column first, as the pixels are
    assert _snapshot(served) == before  # nothing written into the served bundle


def test_3d_infer_returns_a_label_volume_in_the_volume_geometry(server, tmp_path):
    path = tmp_path / "label.nii.gz"
    path.write_bytes(_infer(server, AFIDS, "brain1", "image"))
    label, volume = nib.load(path), nib.load(TEMPLATE)
    assert label.shape == volume.shape and np.issubdtype(label.get_data_dtype(), np.integer)
    np.testing.assert_allclose(label.affine, volume.affine, atol=1e-4)
    result = json.loads(_infer(server, AFIDS, "brain1", "json"))
    _check_disks(np.asarray(label.dataobj), result["landmarks"])
    for item in result["landmarks"]:  # world mm is the volume's affine applied to the pixel
        np.testing.assert_allclose(volume.affine @ [*item["pixel"], 1.0], [*item["world"], 1.0], atol=1e-3)


def _check_disks(labels: np.ndarray, landmarks: list) -> None:
    """At each landmark's nearest pixel, the label is k + 1 of the landmark nearest to that pixel (disks that overlap
    are split between their landmarks; the isotropic spacings here make pixel distances the mm ones)."""
    pixels = np.array([item["pixel"] for item in landmarks])
    for item in landmarks:
        index = tuple(int(v) for v in np.rint(item["pixel"]))
        if all(0 <= i < n for i, n in zip(index, labels.shape)):
            distances = np.linalg.norm(pixels - np.array(index), axis=1)
            assert distances[labels[index] - 1] == pytest.approx(distances.min()), item


def _label(server, image: str, path: Path) -> None:
    body, headers = _multipart("label", path)
    _request(f"{server['url']}/datastore/label?image={image}&tag=final", "PUT", body, headers)


def _train(server, model: str) -> None:
    request = {"max_epochs": 1, "val_split": 0.2, "device": "cpu", "multi_gpu": False}
    headers = {"Content-Type": "application/json"}
    _request(f"{server['url']}/train/{model}?run_sync=true", "POST", json.dumps(request).encode(), headers)


def test_3d_train_fine_tunes_the_served_weights_and_infer_uses_them(server, tmp_path):
    fiducials = read_landmarks(FIDUCIALS, 32, spatial_dims=3)
    for i, suffix in enumerate(["mrk.json", "csv", "mrk.json", "csv", "mrk.json"], start=1):
        _label(server, f"brain{i}", write_landmarks(tmp_path / f"brain{i}.{suffix}", fiducials))
    weights = server["app"] / "model" / AFIDS / "models" / "model.pt"
    before, stamp = json.loads(_infer(server, AFIDS, "brain1", "json")), weights.stat().st_mtime_ns
    for run in range(2):  # the second training starts from the first one's model, over its checkpoints
        _train(server, AFIDS)
        assert weights.stat().st_mtime_ns > stamp, f"training {run + 1} wrote no model"
        stamp = weights.stat().st_mtime_ns
    log = server["log"].read_text()
    assert log.count("fine-tuning: the best model") >= 2 and "val_mre" in log  # started from model.pt, validated
    # the served weights from before the first fine-tuning stay beside the new ones
    kept = weights.with_name("model_pretrained.pt").read_bytes()
    assert kept == (server["app"].parent / "afids_models" / "model.pt").read_bytes()
    after = json.loads(_infer(server, AFIDS, "brain1", "json"))
    assert [i["world"] for i in after["landmarks"]] != [i["world"] for i in before["landmarks"]]


def test_2d_train_on_jpeg_cephalograms_with_slicer_and_csv_labels(server, tmp_path):
    if not server["cephalograms"]:
        pytest.skip(f"needs the ISBI 2015 images at {ISBI} (../shared/data)")
    from scripts.prepare_isbi2015 import SPACING, load_source

    _, pixels = load_source(ISBI)
    names = json.loads((REPO / "configs" / "inference.json").read_text())["landmark_names"]
    for i, stem in enumerate(server["cephalograms"]):
        truth = Landmarks(pixels["mean"][int(stem)] * SPACING, names)  # world mm at the ISBI 0.1 mm per pixel
        # as 3D Slicer saves points placed on the JPEG (its frame of a picture), or a CSV in mm
        path = tmp_path / (f"{stem}.mrk.json" if i % 2 else f"{stem}.csv")
        _label(server, stem, write_landmarks(path, truth, picture_spacing=[SPACING, SPACING] if i % 2 else None))
    weights = server["app"] / "model" / CEPH / "models" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    _train(server, CEPH)
    assert weights.stat().st_mtime_ns > stamp
    # the labels were read right: one epoch from the shipped model keeps the validation error near its own
    summary = (
        r"training finished: best model \S*coortransformer_landmarks/models/model\.pt \(epoch \d+, val_mre ([0-9.]+)\)"
    )
    errors = [float(v) for v in re.findall(summary, server["log"].read_text())]
    assert errors and errors[-1] < 3.0, errors
    stem = server["cephalograms"][0]
    result = json.loads(_infer(server, CEPH, stem, "json"))
    assert len(result["landmarks"]) == 19
    # the label image of a JPEG (as the datastore holds it): lossless NIfTI of the picture's size, disks at landmarks
    path = tmp_path / "label.nii.gz"
    path.write_bytes(_infer(server, CEPH, stem, "image"))
    label = itk.imread(str(path))
    assert tuple(itk.size(label)) == tuple(itk.size(itk.imread(str(server["studies"] / f"{stem}.jpg"))))
    _check_disks(itk.array_from_image(label).T, result["landmarks"])
