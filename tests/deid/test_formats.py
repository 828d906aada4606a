"""PNG/JPEG/NIfTI de-identification (deid.raster, deid.nifti): every place such files carry text is
emptied, burned-in text is masked, geometry and voxels are kept, names are content-derived."""
from __future__ import annotations

import gzip
import hashlib
import io
import re

import cv2
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from deid.nifti import deidentify_nifti
from deid.raster import ALLOWED_CHUNKS, deidentify_raster, png_chunks
from tests.deid import formats_corpus as fc

SOURCE_NAME = [f"{fc.SURNAME}_{fc.GIVEN}/{fc.SURNAME}_{fc.GIVEN}_{fc.MRN}.png"]


def assert_no_identifier(data: bytes) -> None:
    low = data.lower()
    assert not [i for i in fc.IDENTIFIERS if i.encode() in low]


def independent_ocr(img: np.ndarray) -> str:
    """Tesseract through pytesseract on the whole image, upscaled, both polarities: not the
    de-identifier's line-crop OCR."""
    import pytesseract

    g = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    g = cv2.resize(g, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return " ".join(pytesseract.image_to_string(x, config="--psm 11") for x in (g, 255 - g))


def assert_unreadable(img: np.ndarray) -> None:
    flat = re.sub(r"[^0-9a-z]", "", independent_ocr(img).lower())
    for ident in fc.IDENTIFIERS:
        assert not any(ident[i:i + 4] in flat for i in range(len(ident) - 3)), "identifier fragment readable"


def test_png_text_exif_and_icc_chunks_are_dropped_and_pixels_kept():
    src = fc.png_with_chunks()
    assert b"tEXt" in src and b"zTXt" in src and b"iTXt" in src and b"eXIf" in src and b"iCCP" in src
    r = deidentify_raster(src, SOURCE_NAME)
    assert r.status == "written", r.reason
    assert set(png_chunks(r.data)) <= set(ALLOWED_CHUNKS)
    assert_no_identifier(r.data)
    out = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if not r.pixels["masked_boxes"]:
        assert np.array_equal(out, fc.radiograph())
    assert r.name == hashlib.sha256(r.data).hexdigest()[:32] + ".png"
    assert_no_identifier(r.name.encode())


def test_jpeg_exif_xmp_iptc_and_comment_are_dropped():
    src = fc.jpeg_with_markers()
    for marker in (b"\xff\xe1", b"\xff\xed", b"\xff\xfe", b"Photoshop 3.0", b"xmpmeta"):
        assert marker in src
    assert fc.SURNAME.encode() in src and fc.MRN.encode() in src
    r = deidentify_raster(src, [f"{fc.SURNAME}^{fc.GIVEN}_MRN{fc.MRN}.jpg"])
    assert r.status == "written", r.reason
    assert r.data.startswith(b"\x89PNG") and set(png_chunks(r.data)) <= set(ALLOWED_CHUNKS)
    assert_no_identifier(r.data)
    # the metadata told the de-identifier what to look for
    assert r.counts["metadata_terms"] >= 3
    decoded = np.asarray(Image.open(io.BytesIO(src)).convert("RGB"))
    out = cv2.cvtColor(cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    if not r.pixels["masked_boxes"]:
        assert np.array_equal(out, decoded)  # lossless from the decoded pixels


@pytest.mark.parametrize("make", [fc.burned_in_png, fc.screenshot_png], ids=["light-on-dark", "screenshot"])
def test_burned_in_text_is_masked(make):
    src = make()
    before = cv2.imdecode(np.frombuffer(src, np.uint8), cv2.IMREAD_UNCHANGED)
    assert fc.SURNAME.lower()[:4] in re.sub(r"[^0-9a-z]", "", independent_ocr(before).lower())  # readable before
    r = deidentify_raster(src, [f"burned_{fc.MRN}.png"])
    assert r.status == "written", r.reason
    assert r.pixels["masked_boxes"] >= 2
    out = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert_unreadable(out)
    assert_no_identifier(r.data)


def test_unreadable_image_is_quarantined_not_passed_on():
    r = deidentify_raster(fc.png_with_chunks()[:200], SOURCE_NAME)
    assert r.status == "quarantined" and r.data is None and r.reason_code == "unreadable"


def test_nifti_free_text_cleaned_extensions_dropped_geometry_and_voxels_kept():
    data, src = fc.nifti_with_text()
    r = deidentify_nifti(data, [f"{fc.MRN}_{fc.SURNAME}.nii.gz"])
    assert r.status == "written", r.reason
    assert_no_identifier(r.data)
    raw = gzip.decompress(r.data)
    assert_no_identifier(raw)
    assert r.data[3] == 0  # gzip FLG: no stored file name or comment
    out = nib.Nifti1Image.from_bytes(raw)
    h = out.header
    assert bytes(np.asarray(h["descrip"]).item()) == b"T1w"  # the acquisition word stays, the name goes
    for field in ("aux_file", "intent_name", "db_name", "data_type"):
        assert bytes(np.asarray(h[field]).item()) == b""
    stored = nib.Nifti1Header.from_fileobj(io.BytesIO(raw))
    assert len(stored.extensions) == 0 and (float(stored["scl_slope"]), float(stored["scl_inter"])) == (2.0, -5.0)
    before = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    assert np.allclose(out.affine, src.affine) and np.array_equal(out.affine, before.affine)
    assert np.array_equal(np.asarray(out.dataobj), np.asarray(before.dataobj))
    assert r.name == hashlib.sha256(r.data).hexdigest()[:32] + ".nii.gz"


def test_nifti_plain_uncompressed_and_nifti2_are_handled():
    _data, src = fc.nifti_with_text("FLAIR ax")
    r = deidentify_nifti(src.to_bytes())
    assert r.status == "written", r.reason
    assert bytes(np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(r.data)).header["descrip"]).item()) == b"FLAIR ax"
    two = nib.Nifti2Image(np.asarray(src.dataobj), src.affine)
    two.header["descrip"] = f"{fc.SURNAME} T2w".encode()
    r2 = deidentify_nifti(two.to_bytes())
    assert r2.status == "written", r2.reason
    back = nib.Nifti2Image.from_bytes(gzip.decompress(r2.data))
    assert bytes(np.asarray(back.header["descrip"]).item()) == b"T2w"
    assert np.array_equal(np.asarray(back.dataobj), np.asarray(src.dataobj))


def test_curate_deid_folder_run_deidentifies_images_and_volumes(tmp_path):
    """`curate deid SRC DST` (deid.batch) on a folder of PNG/JPEG/NIfTI: before, each was
    quarantined as not DICOM; now each is written under a content-derived name."""
    from deid.batch import deidentify_tree

    expected = fc.write_source(tmp_path / "src")
    report = deidentify_tree(tmp_path / "src", tmp_path / "out", secret_file=tmp_path / "vault" / "secret", workers=1)
    rep = report.as_dict()
    assert rep["written"] == len(expected) and not rep["quarantined"], rep["quarantined"]
    outputs = sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert len(outputs) == len(expected)
    for p in outputs:
        rel = str(p.relative_to(tmp_path / "out")).lower()
        assert rel.startswith(("images/", "volumes/")) and not [i for i in fc.IDENTIFIERS if i in rel]
        data = p.read_bytes()
        assert_no_identifier(gzip.decompress(data) if p.name.endswith(".gz") else data)


@pytest.mark.parametrize("mode", ["I;16", "P", "RGBA", "LA", "1", "CMYK"])
def test_every_pillow_mode_becomes_grey_or_rgb_pixels_only(mode):
    base = fc.radiograph()[:64, :80]
    im = {"I;16": lambda: Image.fromarray(base.astype(np.uint16) * 200),
          "P": lambda: Image.fromarray(np.dstack([base] * 3)).convert("P"),
          "RGBA": lambda: Image.fromarray(np.dstack([base, base // 2, 255 - base, np.full_like(base, 9)]), "RGBA"),
          "LA": lambda: Image.fromarray(np.dstack([base, np.full_like(base, 9)]), "LA"),
          "1": lambda: Image.fromarray(base > 60),
          "CMYK": lambda: Image.fromarray(np.dstack([base] * 3)).convert("CMYK")}[mode]()
    buf = io.BytesIO()
    im.save(buf, "JPEG" if mode == "CMYK" else "PNG", **({} if mode == "CMYK" else {"pnginfo": _named()}))
    r = deidentify_raster(buf.getvalue())
    assert r.status == "written", r.reason
    out = cv2.imdecode(np.frombuffer(r.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape[:2] == base.shape and out.ndim in (2, 3) and (out.ndim == 2 or out.shape[2] == 3)
    assert out.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    assert_no_identifier(r.data)


def _named():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", f"{fc.SURNAME} {fc.GIVEN} {fc.MRN}")
    return info


def test_animated_png_is_quarantined():
    buf = io.BytesIO()
    a = fc.radiograph()[:64, :80]
    Image.fromarray(a).save(buf, "PNG", save_all=True, append_images=[Image.fromarray(255 - a)])
    r = deidentify_raster(buf.getvalue())
    assert r.status == "quarantined" and r.data is None
