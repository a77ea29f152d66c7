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

from bundle import Landmarks, bundled_landmark_set
from bundle import io as bundle_io
from bundle import read_landmarks, write_landmarks

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


def _answer(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None) -> tuple:
    """``(HTTP status, body bytes)`` of a request, whatever the status."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None) -> bytes:
    status, body = _answer(url, method, data, headers)
    assert status == 200, f"{method} {url}: HTTP {status}: {body[-2000:]!r}"
    return body


def _detail(body: bytes) -> str:
    """The message of an error answer: FastAPI's ``{"detail": ...}``."""
    return json.loads(body)["detail"]


def _multipart(field: str, path: Path, params: dict | None = None) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = b""
    if params is not None:  # as 3D Slicer sends it: a form field "params" with the label's info
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}\r\n'
        ).encode()
    body += (
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
    cephalograms = [f"{n:03d}" for n in range(131, 138)] if (ISBI / "images").is_dir() else []
    for stem in cephalograms:
        shutil.copy(ISBI / "images" / f"{stem}.jpg", studies / f"{stem}.jpg")
    for n in (1, 2):
        shutil.copy(REPO / "data" / "demo" / "images" / f"00{n}.png", studies / f"demo00{n}.png")
    (studies / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")
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
        yield {
            "url": url,
            "app": app,
            "studies": studies,
            "log": root / "server.log",
            "cephalograms": cephalograms[:5],  # labelled with landmark files
            "edited": cephalograms[5:],  # labelled with label images
        }
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
        CEPH: bundled_landmark_set("isbi2015").names,
        AFIDS: bundled_landmark_set("afids").names,
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


def _train_request(server, model: str, val_split: float = 0.2) -> tuple:
    """The arguments of a one-epoch training request that answers when the training is done."""
    request = {"max_epochs": 1, "val_split": val_split, "device": "cpu", "multi_gpu": False}
    headers = {"Content-Type": "application/json"}
    return f"{server['url']}/train/{model}?run_sync=true", "POST", json.dumps(request).encode(), headers


def _train(server, model: str, val_split: float = 0.2) -> None:
    _request(*_train_request(server, model, val_split))


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
    names = bundled_landmark_set("isbi2015").names
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


def test_only_the_detectors_weights_are_offered_as_model_files(server):
    info = json.loads(_request(f"{server['url']}/info/"))
    for model in (CEPH, AFIDS):
        for kind in ("models", "trainers"):
            offered = info[kind][model]["config"]["model_filename"]
            # model.pt first, and after a fine-tuning the weights it started from; the refiner never
            assert offered[0] == "model.pt" and set(offered) <= {"model.pt", "model_pretrained.pt"}, (kind, offered)
    assert (server["app"] / "model" / CEPH / "models" / "refiner" / "model.pt").is_file()  # still served, not offered


def _slicer_upload(server, image: str, labels: np.ndarray, info: dict, path: Path) -> tuple:
    """Upload a 2D label as 3D Slicer's Submit Label does: a label map volume of one slice (int16, in Slicer's frame
    of a picture), its values numbered along Slicer's segment list, which is /info's labels of every served model."""
    names = info["labels"]
    shift = names.index(bundled_landmark_set("isbi2015").names[0])
    volume = np.where(labels > 0, labels + shift, 0).astype(np.int16)[..., None]
    nib.save(nib.Nifti1Image(volume, np.diag([-1.0, -1.0, 1.0, 1.0])), str(path))
    params = {"label_info": [{"name": n, "idx": i + 1} for i, n in enumerate(names)], "client_id": "user-xyz"}
    body, headers = _multipart("label", path, params)
    return _answer(f"{server['url']}/datastore/label?image={image}", "PUT", body, headers)


def _label_image(server, model: str, image: str, tmp_path: Path) -> np.ndarray:
    """The label image /infer returns, as an array of x (columns) first."""
    path = tmp_path / f"{image}_{model}.nii.gz"
    path.write_bytes(_infer(server, model, image, "image"))
    return itk.array_from_image(itk.imread(str(path))).T.copy()


def test_a_label_image_edited_in_slicer_is_read_as_landmarks_and_trained_on(server, tmp_path):
    if not server["edited"]:
        pytest.skip(f"needs the ISBI 2015 images at {ISBI} (../shared/data)")
    info = json.loads(_request(f"{server['url']}/info/"))
    assert info["labels"].index(CEPH_FIRST) > 0  # the AFIDs model's segments come first: values are shifted
    first, second = server["edited"]
    result = json.loads(_infer(server, CEPH, first, "json"))
    pixels = np.array([item["pixel"] for item in result["landmarks"]])
    labels = _label_image(server, CEPH, first, tmp_path)
    # move one disk, as in the Segment Editor: erase it, paint a disk of 12 pixels round a pixel 6 mm away, clear of
    # the others
    free = [
        (k, np.rint(p + offset))
        for k, p in enumerate(pixels)
        for offset in ([60, 0], [-60, 0], [0, 60], [0, -60])
        if np.linalg.norm(pixels - np.rint(p + offset), axis=1).min() > 45
    ]
    moved, target = free[0]
    labels[labels == moved + 1] = 0
    x, y = np.meshgrid(np.arange(labels.shape[0]), np.arange(labels.shape[1]), indexing="ij")
    labels[(x - target[0]) ** 2 + (y - target[1]) ** 2 <= 144] = moved + 1
    status, body = _slicer_upload(server, first, labels, info, tmp_path / "tmpab12cd.nii.gz")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["landmarks_of"] == CEPH and len(answer["landmarks"]) == 19
    # training takes the picture at the assumed spacing (inference may have estimated another from the anatomy)
    spacing = np.array(json.loads((REPO / "configs" / "inference.json").read_text())["assumed_spacing"])
    read = np.array([item["world"] for item in answer["landmarks"]]) / spacing
    # the moved landmark is where its disk went, the others where inference put them: within half a pixel
    assert np.abs(read[moved] - target).max() < 0.5
    others = np.arange(19) != moved
    assert np.abs(read[others] - pixels[others]).max() < 0.5
    # stored in the model's order (value k + 1 at landmark k), whatever Slicer numbered
    stored = server["studies"] / "labels" / "final" / f"{first}.nii.gz"
    assert set(np.unique(nib.load(stored).get_fdata())) == set(range(20))
    # the training reads that file as the upload did: its targets (world mm) are the landmarks above
    from bundle.transforms import LoadLandmarksd, PixelSpacingd

    image = bundle_io.load_image_grey_pictures("image", ensure_channel_first=True)(
        {"image": str(server["studies"] / f"{first}.jpg")}
    )
    spaced = PixelSpacingd("image", default_spacing=list(spacing))({**image, "landmarks": str(stored)})
    targets = LoadLandmarksd("landmarks", 19)(spaced)["landmarks"].numpy()
    assert np.abs(targets / spacing - read).max() < 1e-2  # the answer's world mm have 4 decimals
    # a second cephalogram's label as inference returns it, then fine-tune from the served model
    second_label = _label_image(server, CEPH, second, tmp_path)
    status, body = _slicer_upload(server, second, second_label, info, tmp_path / "b.nii.gz")
    assert status == 200, body
    weights = server["app"] / "model" / CEPH / "models" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    _train(server, CEPH)
    assert weights.stat().st_mtime_ns > stamp
    training = r"coortransformer_landmarks: training on (\d+) of the datastore's \d+ labelled images"
    assert int(re.findall(training, server["log"].read_text())[-1]) >= 2


CEPH_FIRST = bundled_landmark_set("isbi2015").names[0]


def _put_label(server, image: str, path: Path) -> tuple:
    body, headers = _multipart("label", path)
    return _answer(f"{server['url']}/datastore/label?image={image}&tag=final", "PUT", body, headers)


def test_bad_requests_get_a_4xx_with_the_reason_and_the_server_stays_up(server, tmp_path):
    url = server["url"]
    cases = {
        "unknown image": (
            _answer(f"{url}/infer/{CEPH}?image=nowhere", "POST"),
            404,
            r"no image 'nowhere' in the datastore",
        ),
        "unknown model": (
            _answer(f"{url}/infer/nomodel?image=demo001", "POST"),
            404,
            r"no model 'nomodel': this server has",
        ),
        "2D image, 3D model": (
            _answer(f"{url}/infer/{AFIDS}?image=demo001", "POST"),
            422,
            r"demo001\.png: a 2D image of shape \(\d+, \d+\); this model takes 3D images",
        ),
        "unreadable image": (
            _answer(f"{url}/infer/{CEPH}?image=broken", "POST"),
            422,
            r"broken\.jpg: the image cannot be read",
        ),
    }
    names = bundled_landmark_set("isbi2015").names
    short = write_landmarks(tmp_path / "short.csv", Landmarks(np.full((18, 2), 5.0), names[:18]))
    cases["a label of 18 points"] = (
        _put_label(server, "demo002", short),
        422,
        r"label for demo002 refused: coortransformer_landmarks: the label: has 18 landmarks; expected 19\.$",
    )
    cases["a label of an unknown image"] = (
        _put_label(server, "nowhere", short),
        404,
        "no image 'nowhere' in the datastore",
    )
    blobs = np.zeros((64, 64), dtype=np.int16)
    # every landmark a disk (not the model's answer for this picture, which need not hold them all), then a second
    # blob of landmark 4's value
    labels = np.zeros_like(_label_image(server, CEPH, "demo002", tmp_path))
    for k, (x, y) in enumerate(np.stack(np.meshgrid(np.arange(5), np.arange(4)), -1).reshape(-1, 2)[:19]):
        labels[20 + 30 * x - 2 : 20 + 30 * x + 3, 20 + 30 * y - 2 : 20 + 30 * y + 3] = k + 1
    labels[:3, :3] = 5
    split = tmp_path / "split.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), np.eye(4)), str(split))
    cases["a landmark in two blobs"] = (
        _put_label(server, "demo002", split),
        422,
        r"coortransformer_landmarks: the label: value 5 is in 2 separate blobs",
    )
    volume = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(blobs[..., None].repeat(3, -1), np.eye(4)), str(volume))
    cases["a label volume for a picture"] = (
        _put_label(server, "demo002", volume),
        422,
        r"the label: a label image of shape \(64, 64, 3\) for 2D landmarks",
    )
    stored = sorted((server["studies"] / "labels" / "final").glob("demo002.*"))
    before = {p: p.stat().st_mtime_ns for p in stored}
    for case, ((status, body), expected_status, message) in cases.items():
        assert status == expected_status, (case, status, body)
        assert re.search(message, _detail(body)), (case, _detail(body))
        assert "\n" not in _detail(body), case
    # nothing bad was stored, and the server still answers
    assert {
        p: p.stat().st_mtime_ns for p in sorted((server["studies"] / "labels" / "final").glob("demo002.*"))
    } == before
    assert json.loads(_request(f"{url}/info/"))["models"]


def test_train_refuses_bad_labels_in_the_datastore_with_the_list_of_them(server, tmp_path):
    """Labels put into the datastore by hand are not checked at upload: /train checks them all before it starts."""
    if not server["edited"]:
        pytest.skip(f"needs the ISBI 2015 images at {ISBI} (../shared/data)")
    final = server["studies"] / "labels" / "final"
    info = json.loads(_request(f"{server['url']}/info/"))
    for image in server["edited"]:  # good labels first, as Slicer submits them (whatever other tests left there)
        path = tmp_path / f"{image}_upload.nii.gz"
        status, body = _slicer_upload(server, image, _label_image(server, CEPH, image, tmp_path), info, path)
        assert status == 200, body
    stored = [final / f"{image}.nii.gz" for image in server["edited"]]
    kept = {path: path.read_bytes() for path in stored}
    for path in stored:
        labels = nib.load(path)
        broken = np.asarray(labels.dataobj).copy()
        broken[broken == 3] = 0  # landmark 2 rubbed out
        nib.save(nib.Nifti1Image(broken, labels.affine), str(path))
    weights = server["app"] / "model" / CEPH / "models" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    try:
        status, body = _answer(*_train_request(server, CEPH))
        assert status == 422, body
        message = _detail(body)
        assert re.match(r"2 of \d+ entries are bad: ", message) and "\n" not in message, message
        for image in server["edited"]:
            assert re.search(
                rf"datastore\[\d+\] \(\S*{image}\.jpg\): landmarks \['orbitale'\] are not annotated", message
            )
        assert weights.stat().st_mtime_ns == stamp  # nothing trained
    finally:
        for path, content in kept.items():
            path.write_bytes(content)
