"""De-identified PNG/JPEG images and NIfTI volumes as DICOM objects, so that the viewer
(Cornerstone3D's DICOM loader), the raw-frame endpoint and the SR/SEG exports serve and reference
them exactly as they do DICOM: a PNG or JPEG is one Secondary Capture frame (grey 8/16-bit or RGB),
a NIfTI volume a multi-frame Secondary Capture of axial slices in LPS display orientation
(columns run to the patient's left, rows to posterior, frames from inferior to superior), with
pixel spacing, plane geometry and a window from the file.

Identifiers of the object are derived from the file's content (the same file always gets the same
UIDs, across restarts, so SR/SEG references stay valid); nothing of the source file's name or
metadata is carried over.
"""
from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
GZIP_MAGIC = b"\x1f\x8b"

SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"                # Secondary Capture Image Storage
SC_MULTIFRAME_WORD = "1.2.840.10008.5.1.4.1.1.7.3"    # Multi-frame Grayscale Word SC Image Storage
#: Multi-frame SC pointer to the frame increment (Frame Time would be cine; slices step in space).
SLICE_LOCATION_VECTOR = 0x00182005


def image_kind(data: bytes) -> str | None:
    """``png``, ``jpeg`` or ``nifti`` from the first bytes; None for anything else (DICOM)."""
    if len(data) > 132 and data[128:132] == b"DICM":
        return None
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    head = data[:600]
    if data.startswith(GZIP_MAGIC):
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(data)).read(600)
        except (OSError, EOFError):
            return None
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    return None


def as_dicom(data: bytes, kind: str) -> Dataset:
    """The PNG/JPEG (``kind`` png/jpeg) or NIfTI (nifti) file as a DICOM dataset."""
    if kind == "nifti":
        return _volume(data)
    return _picture(data)


def _uids(data: bytes) -> dict[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    return {name: generate_uid(entropy_srcs=[digest, name])
            for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")}


def _base(uids: dict[str, str], sop_class: str) -> Dataset:
    """Patient/study/series/equipment modules with empty type-2 attributes and content-derived UIDs."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uids["SOPInstanceUID"]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(ds, name, uids[name])
    for name in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber", "PatientOrientation"):
        setattr(ds, name, "")
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientIdentityRemoved = "YES"
    return ds


def _grey(ds: Dataset, arr: np.ndarray) -> None:
    bits = 8 if arr.dtype == np.uint8 else 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1


def _window(ds: Dataset, lo: float, hi: float, *, discrete: bool) -> None:
    """A linear VOI mapping ``lo`` to black and ``hi`` to white (PS3.3 C.11.2.1.2.1; ``discrete``:
    integer stored values, where the formula's -0.5/-1 make lo and hi exact)."""
    if discrete:
        center, width = (lo + hi) / 2 + 0.5, hi - lo + 1
    else:
        center, width = (lo + hi) / 2, max(hi - lo, 1e-3)
    ds.WindowCenter, ds.WindowWidth = f"{center:.10g}", f"{width:.10g}"


def _picture(data: bytes) -> Dataset:
    """One frame: 8-bit grey (window 0-255, as the file displays), 16-bit grey (window over the
    values present: 16-bit PNGs rarely use the whole range) or RGB (alpha and palettes flattened)."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        raise ValueError("not a readable PNG/JPEG image") from None
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError("grey image values outside 16 bits")
        arr = arr.astype(np.uint16)
    elif mode in ("L", "LA", "1"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    ds = _base(_uids(data), SC_IMAGE)
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.PixelRepresentation = 0
    if arr.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    else:
        _grey(ds, arr)
        lo, hi = (0, 255) if arr.dtype == np.uint8 else (int(arr.min()), int(arr.max()))
        _window(ds, lo, hi, discrete=True)
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def _load_nifti(data: bytes):
    import nibabel as nib

    raw = gzip.decompress(data) if data.startswith(GZIP_MAGIC) else data
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            return cls.from_bytes(raw)
        except Exception:  # nibabel raises several kinds for a header of the other version
            continue
    raise ValueError("not a readable NIfTI volume")


def lps_volume(img) -> tuple[np.ndarray, np.ndarray]:
    """The image's voxel values (scaled, first volume of a 4D series) with axes reordered and
    flipped to the closest L, P, S orientation, and the voxel-to-LPS affine of that array."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    arr = np.asanyarray(img.dataobj)
    while arr.ndim > 3:
        arr = arr[..., 0]
    while arr.ndim < 3:
        arr = arr[..., np.newaxis]
    affine = img.affine
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt(("L", "P", "S")))
    arr = apply_orientation(arr, ornt)
    ras = affine @ inv_ornt_aff(ornt, img.shape[:3] + (1,) * (3 - len(img.shape[:3])))
    return arr, np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras


def _stored(real: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored 16-bit values and the rescale (slope, intercept) that give back ``real``: exact for
    integer-valued volumes within int16/uint16 (CT in HU, most MR), 16-bit quantised otherwise."""
    finite = real[np.isfinite(real)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    real = np.where(np.isfinite(real), real, lo)
    if np.array_equal(real, np.round(real)):
        if lo >= -32768 and hi <= 32767:
            return real.astype(np.int16), 1.0, 0.0
        if lo >= 0 and hi <= 65535:
            return real.astype(np.uint16), 1.0, 0.0
    slope = (hi - lo) / 65535.0 or 1.0
    return np.round((real - lo) / slope).astype(np.uint16), slope, lo


def _functional_groups(ds: Dataset, lps: np.ndarray, n_frames: int) -> None:
    """The plane geometry again as multi-frame functional groups (shared: spacing, orientation;
    per frame: position), where SEG writers (highdicom) and enhanced-aware viewers read it."""
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = ds.PixelSpacing, ds.SliceThickness
    orientation.ImageOrientationPatient = ds.ImageOrientationPatient
    shared = Dataset()
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in range(n_frames):
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = [f"{v:.6g}" for v in lps[:3, 3] + k * lps[:3, 2]]
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame


def _volume(data: bytes) -> Dataset:
    img = _load_nifti(data)
    arr, lps = lps_volume(img)
    stored, slope, intercept = _stored(np.asarray(arr, dtype=np.float64))
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    uids = _uids(data)
    ds = _base(uids, SC_MULTIFRAME_WORD)
    ds.FrameOfReferenceUID = uids["FrameOfReferenceUID"]
    # frame k, pixel (row r, column c) = arr[c, r, k]
    frames = np.ascontiguousarray(np.transpose(stored, (2, 1, 0)))
    ds.NumberOfFrames = int(frames.shape[0])
    ds.FrameIncrementPointer = SLICE_LOCATION_VECTOR
    ds.SliceLocationVector = [f"{float(k * spacing[2]):.6g}" for k in range(frames.shape[0])]
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    _grey(ds, frames)
    ds.PixelRepresentation = 1 if frames.dtype == np.int16 else 0
    ds.RescaleSlope = f"{slope:.10g}"
    ds.RescaleIntercept = f"{intercept:.10g}"
    ds.RescaleType = "US"
    ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing (y step), column spacing (x step)
    ds.SliceThickness = f"{spacing[2]:.6g}"
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
    ds.ImagePositionPatient = [f"{v:.6g}" for v in lps[:3, 3]]
    _functional_groups(ds, lps, frames.shape[0])
    real = stored.astype(np.float64) * slope + intercept
    cal_min, cal_max = float(img.header.get("cal_min", 0) or 0), float(img.header.get("cal_max", 0) or 0)
    if np.isfinite(cal_min) and np.isfinite(cal_max) and cal_max > cal_min:
        lo, hi = cal_min, cal_max
    else:  # the bulk of the values, as the usual NIfTI viewers open a volume
        lo, hi = (float(v) for v in np.percentile(real, [0.5, 99.5]))
        if hi <= lo:
            lo, hi = float(real.min()), float(real.max())
    _window(ds, lo, hi, discrete=False)
    ds.PixelData = frames.tobytes()
    return ds
