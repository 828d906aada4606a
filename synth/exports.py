"""Non-DICOM files a site also hands over: 8-bit PNG/JPEG chest images (as research datasets ship
them) and NIfTI head volumes with a correct affine. Like real exports they carry the patient's
identity in their metadata (PNG tEXt, JPEG comment, NIfTI aux_file and an extension), which
de-identification (deid.raster, deid.nifti) must remove."""
from __future__ import annotations

import gzip
import io
import struct
import zlib

import cv2
import nibabel as nib
import numpy as np

from curation.vocabulary import SeriesKind
from synth.chest import ChestFindings, nodule_box, projection, radiograph
from synth.findings import pixel_key, record_projection
from synth.geometry import SliceGeometry
from synth.identity import Patient, rng_for
from synth.writer import SiteWriter
from synth.xray import XRAY_EXTENT_MM, chest_image

#: LPS (DICOM) to RAS (NIfTI) flips the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _with_identity(data: bytes, ext: str, text: str) -> bytes:
    """The encoded image with ``text`` in a PNG tEXt chunk (after IHDR) or a JPEG COM segment."""
    body = text.encode("latin-1", "replace")
    if ext == ".png":
        chunk = b"tEXt" + b"Comment\x00" + body
        return data[:33] + struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]


def chest_pictures(writer: SiteWriter, seed: int, patient: Patient, n: int, findings: ChestFindings) -> list[dict]:
    """A PNG for every patient and, for every other patient, a JPEG (quality 90) of a PA chest image,
    with their findings' boxes and the `pixel_key` of their decoded pixels (the join key that survives
    de-identification)."""
    rng = rng_for(seed, "picture", patient.index)
    nodule = findings.nodule
    img8 = np.rint(chest_image(n, findings, rng, bits=8)).astype(np.uint8)
    clean8 = radiograph(projection(n, XRAY_EXTENT_MM, findings), bits=8)
    out = []
    stem = f"images/chest_{patient.index + 1:05d}"
    formats = [("png", ".png", [cv2.IMWRITE_PNG_COMPRESSION, 6])]
    if patient.index % 2 == 0:
        formats.append(("jpeg", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]))
    for kind, ext, params in formats:
        ok, buf = cv2.imencode(ext, img8, params)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {ext}")
        rel = f"{stem}{ext}"
        lesions = [{"label": "nodule", "box": nodule_box(nodule, n, XRAY_EXTENT_MM)}] if nodule else []
        data = _with_identity(buf.tobytes(), ext, f"Patient: {patient.given} {patient.family}, ID {patient.patient_id}")
        writer.write_other(rel, data, kind, "ingest", patient_index=patient.index, kind=SeriesKind.DX,
                           view="PA", lesions=lesions)
        pic = {"file": rel, "format": kind, "kind": SeriesKind.DX, "view": "PA", "shape": list(img8.shape),
               "pixel_spacing_mm": XRAY_EXTENT_MM / (n - 1), "lesions": lesions, "patient_index": patient.index,
               "pixel_sha256": pixel_key(img8 if kind == "png" else _decoded(buf.tobytes()))}
        record_projection(pic, seed, patient.index, findings, n, XRAY_EXTENT_MM, clean8, rel)
        out.append(pic)
    return out


def _decoded(data: bytes) -> np.ndarray:
    """Grey pixels of an encoded picture as PIL decodes them (as `deid.raster` does)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"))


def nifti_bytes(volume_zyx: np.ndarray, geom: SliceGeometry, description: str, patient_id: str = "") -> bytes:
    """A .nii.gz of a (slices, rows, columns) volume on `geom`: voxel (i, j, k) = (column, row, slice),
    affine = LPS_TO_RAS @ the DICOM index-to-LPS matrix; `patient_id` in aux_file and in a comment
    extension, as converters leave it. Gzip with mtime 0 and no name: same bytes every run."""
    data = np.ascontiguousarray(np.transpose(volume_zyx, (2, 1, 0)))
    affine = LPS_TO_RAS @ geom.affine_lps()
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = description.encode()[:79]
    if patient_id:
        img.header["aux_file"] = patient_id.encode()[:23]
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", f"PatientID={patient_id}".encode()))
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def write_nifti(writer: SiteWriter, rel: str, volume_zyx: np.ndarray, geom: SliceGeometry, entry: dict) -> dict:
    data = nifti_bytes(volume_zyx, geom, entry.get("kind", ""), str(entry.get("patient_id") or ""))
    affine = LPS_TO_RAS @ geom.affine_lps()
    rec = dict(entry, file=rel, shape=[geom.columns, geom.rows, geom.n_slices],
               voxel_sha256=pixel_key(np.transpose(volume_zyx, (2, 1, 0))),
               voxel_size_mm=[geom.col_spacing, geom.row_spacing, geom.slice_spacing],
               affine_ras=[[float(round(v, 6)) for v in row] for row in affine], plane=geom.plane)
    writer.write_other(rel, data, "nifti", "ingest", kind=entry.get("kind"), patient_index=entry.get("patient_index"))
    return rec
