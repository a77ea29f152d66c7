import pytest

from bundle import inference_list
from bundle.io import colliding_stems, output_stem


@pytest.mark.parametrize(
    "path, stem",
    [("a/001.png", "001"), ("p1.v2.png", "p1.v2"), ("t1.nii.gz", "t1"), ("T1.NII.GZ", "T1"), ("scan.JPEG", "scan"),
     ("x.mha", "x"), ("notes.txt", "notes"), (".png", ".png")],
)  # fmt: skip
def test_output_stems_drop_the_image_suffix_only(path, stem):
    assert output_stem(path) == stem


def test_collisions_are_the_names_that_differ_by_suffix_alone():
    paths = ["d/scan.png", "d/scan.jpg", "d/p1.v1.png", "d/p1.v2.png", "d/t1.nii.gz", "e/t1.nii"]
    assert colliding_stems(paths) == {"scan": ["d/scan.png", "d/scan.jpg"], "t1": ["d/t1.nii.gz", "e/t1.nii"]}


def test_inference_refuses_colliding_names_before_anything_runs(tmp_path):
    for name in ("scan.png", "scan.jpg", "p1.v1.png", "p1.v2.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"would write the same output files \(scan: .*scan\.jpg, .*scan\.png\)"):
        inference_list(tmp_path)
    (tmp_path / "scan.jpg").unlink()
    assert [e["image"].split("/")[-1] for e in inference_list(tmp_path)] == ["p1.v1.png", "p1.v2.png", "scan.png"]
