"""A SeriesHeader for a NIfTI file, from what travels with it: the BIDS/dcm2niix JSON sidecar (the
original DICOM acquisition fields), a .bval file, the BIDS suffix of the file name, and the geometry.

Why: NIfTI carries no acquisition header of its own; the same rule engine then works unchanged.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from curation.classify.attributes import plane_of_affine
from curation.classify.header import SeriesHeader
from curation.vocabulary import Modality

_BIDS_SUFFIX_TEXT = {
    "t1w": "T1w", "t2w": "T2w", "flair": "FLAIR",  # not-vocabulary (a description, not a kind)
    "pdw": "PDw", "pd": "PD", "dwi": "dwi", "bold": "bold",
    "t2starw": "T2star", "swi": "swi", "adc": "ADC", "localizer": "localizer",  # not-vocabulary
}


def _stem(p: Path) -> str:
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return p.stem


def _sidecar(p: Path, ext: str) -> Path | None:
    c = p.with_name(_stem(p) + ext)
    return c if c.exists() else None


def _seconds_to_ms(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v * 1000.0 if v < 50 else v  # BIDS writes seconds; some tools write ms


def nifti_header(path: str | Path) -> SeriesHeader:
    """Header summary of a NIfTI file (pixel data not read; only the header and sidecars)."""
    p = Path(path)
    img = nib.load(str(p))
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ValueError(f"{p.name}: not a NIfTI image volume ({type(img).__name__})")
    shape = img.shape
    h = SeriesHeader(n_files=1, source="nifti")
    n_vol = int(shape[3]) if len(shape) > 3 else 1
    n_slices = int(shape[2]) if len(shape) > 2 else 1
    h.n_frames = n_slices * n_vol
    h.n_positions = n_slices
    h.rows, h.columns = int(shape[1]) if len(shape) > 1 else 1, int(shape[0])
    zooms = img.header.get_zooms()
    h.pixel_spacing = [float(zooms[1]), float(zooms[0])] if len(zooms) > 1 else []
    h.temporal_positions = n_vol
    # The slice plane as an ImageOrientationPatient-equivalent (LPS), so attributes.plane applies.
    plane = plane_of_affine(img.affine)
    h.extra["plane"] = plane
    iop = {"axial": [1, 0, 0, 0, 1, 0], "coronal": [1, 0, 0, 0, 0, -1], "sagittal": [0, 1, 0, 0, 0, -1]}
    if plane in iop:
        h.orientations = [[float(v) for v in iop[plane]]]
    else:
        a = np.asarray(img.affine)[:3, :2]
        a = a / np.linalg.norm(a, axis=0)
        lps = np.diag([-1.0, -1.0, 1.0]) @ a
        h.orientations = [[round(float(v), 3) for v in (*lps[:, 0], *lps[:, 1])]]
    stem = _stem(p)
    sidecar = _sidecar(p, ".json")
    if sidecar is not None:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        h.modality = str(meta.get("Modality", "")).upper()
        h.series_description = str(meta.get("SeriesDescription", ""))
        h.protocol_name = str(meta.get("ProtocolName", ""))
        h.manufacturer = str(meta.get("Manufacturer", ""))
        h.body_part_examined = str(meta.get("BodyPartExamined", "")).upper()
        h.image_type = [str(t).upper() for t in meta.get("ImageType", [])]
        h.derived = bool(h.image_type) and h.image_type[0] == "DERIVED"
        h.scanning_sequence = [t for t in str(meta.get("ScanningSequence", "")).upper().replace("_", "\\").split("\\") if t]
        h.sequence_variant = [t for t in str(meta.get("SequenceVariant", "")).upper().replace("_", "\\").split("\\") if t]
        h.mr_acquisition_type = str(meta.get("MRAcquisitionType", "")).upper()
        h.repetition_time = _seconds_to_ms(meta.get("RepetitionTime"))
        h.echo_time = _seconds_to_ms(meta.get("EchoTime"))
        h.inversion_time = _seconds_to_ms(meta.get("InversionTime"))
        h.flip_angle = float(meta["FlipAngle"]) if meta.get("FlipAngle") is not None else None
        h.magnetic_field_strength = meta.get("MagneticFieldStrength")
        h.contrast_agent = str(meta.get("ContrastBolusIngredient", "") or meta.get("ContrastBolusAgent", ""))
    bval = _sidecar(p, ".bval") or _sidecar(p, ".bvals")
    if bval is not None:
        vals = [float(v) for v in re.split(r"[\s,]+", bval.read_text().strip()) if v]
        h.b_values = sorted({round(v, 1) for v in vals})
        h.extra["bval_file"] = bval.name
    if not h.modality:
        h.modality = Modality.MR  # NIfTI in the wild is overwhelmingly MR; CT NIfTI ships a sidecar saying CT
    if not h.series_description:
        # The BIDS suffix (sub-01_T1w); else the header's own description (converters write the
        # series description there; the de-identifier keeps only acquisition words in it, and its
        # outputs' names are content hashes); else the bare file name.
        m = re.search(r"_([A-Za-z0-9]+)$", stem)
        suffix = m.group(1).lower() if m else ""
        descrip = bytes(np.asarray(img.header["descrip"]).item()).split(b"\x00", 1)[0].decode("latin-1").strip()
        h.series_description = _BIDS_SUFFIX_TEXT.get(suffix) or descrip or stem
        if not h.protocol_name and h.series_description != stem:
            h.protocol_name = stem  # read after the description: 'anatomical.nii' whose descrip is 'spm - 3D normalized'
    return h
