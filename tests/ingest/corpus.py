"""Small on-disk corpora with one of every bad input, built from pydicom's bundled files."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

GOOD = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm", "examples_ybr_color.dcm", "JPEG2000.dcm"]


def build_bad_corpus(root: Path) -> dict[str, str]:
    """Write good files plus one of each bad input; returns {relative path: expected reason code}."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str] = {}
    for i, name in enumerate(GOOD):
        # JPEG2000.dcm shares MR_small's SOPInstanceUID: give it its own so it is a good file.
        ds = pydicom.dcmread(get_testdata_file(name))
        if name == "JPEG2000.dcm":
            ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.4242424242"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        (root / "good").mkdir(exist_ok=True)
        ds.save_as(root / "good" / f"IM{i:04d}", enforce_file_format=True)
        expected[f"good/IM{i:04d}"] = "ok"
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (root / "bad").mkdir()
    (root / "bad" / "truncated.dcm").write_bytes(ct[: len(ct) // 2])
    expected["bad/truncated.dcm"] = "truncated"
    (root / "bad" / "notes.txt").write_text("scanner export log\nnothing to see\n")
    expected["bad/notes.txt"] = "not_dicom"
    (root / "bad" / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    expected["bad/garbage.dcm"] = "corrupt"
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    del ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(root / "bad" / "no_uid.dcm", enforce_file_format=True)
    expected["bad/no_uid.dcm"] = "missing_attribute"
    # Same SOPInstanceUID as good/IM0001 (MR_small) but other bytes (RLE-compressed copy).
    # Ingest keeps the first file in path order, so this one sorts after good/.
    (root / "later").mkdir()
    shutil.copy(get_testdata_file("MR_small_RLE.dcm"), root / "later" / "conflict.dcm")
    expected["later/conflict.dcm"] = "conflicting_duplicate"
    # An exact duplicate of good/IM0000 under another name: kept once, not quarantined.
    shutil.copy(root / "good" / "IM0000", root / "good" / "IM0000_copy")
    expected["good/IM0000_copy"] = "duplicate"
    return expected


def write_png(path: Path) -> None:
    import cv2

    img = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.write_bytes(buf.tobytes())


def build_many(root: Path, n: int) -> None:
    """n valid small CT instances in one series (for crash and volume tests)."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series = generate_uid()
    buf = io.BytesIO()
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{i + 1}"
        base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
        base.SeriesInstanceUID = series
        base.InstanceNumber = i + 1
        buf.seek(0)
        buf.truncate()
        base.save_as(buf, enforce_file_format=True)
        (root / f"IM{i:05d}.dcm").write_bytes(buf.getvalue())
