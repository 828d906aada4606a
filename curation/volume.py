"""Volumes in patient space: read a DICOM series or a NIfTI file as SimpleITK images, write a derived
DICOM series back.

Why one module: every stage that computes on voxels (quality, registration, annotation
suggestions) needs the same answer to "where is this voxel in the patient", and every stage that
writes a derived series must reference its source the same way. Geometry comes from the DICOM
attributes only (ImagePositionPatient, ImageOrientationPatient, PixelSpacing), never from file
order or InstanceNumber, and stored values are rescaled to real-world values (float32).

Physical space is DICOM patient space, LPS, in mm. NIfTI files are read as SimpleITK reads them
(their RAS affine converted to LPS), so a NIfTI and a DICOM of the same scan overlay.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
import struct
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_file_meta_info, write_sequence_item
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from curation.vocabulary import Modality

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Other single-file volume formats SimpleITK reads (handy for tests and research exchanges).
VOLUME_FILE_SUFFIXES = NIFTI_SUFFIXES + (".nrrd", ".nhdr", ".mha", ".mhd")

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_CLASSIC_BY_MODALITY = {Modality.MR: MR_IMAGE_STORAGE, Modality.CT: CT_IMAGE_STORAGE}

#: Position tolerance (mm) when deciding that two slices lie at the same place.
_POSITION_DECIMALS = 2


def is_volume_file(path: str | os.PathLike[str]) -> bool:
    """True for a single-file volume (NIfTI, NRRD, MetaImage); False for a DICOM folder or file."""
    name = str(path).lower()
    return name.endswith(VOLUME_FILE_SUFFIXES)


# --------------------------------------------------------------------------------------------- read


@dataclass
class _Slice:
    """One 2D frame of a series with its own geometry (a classic instance, or one frame of a multi-frame)."""

    dataset: Dataset
    frame: int | None
    position: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    pixel_spacing: tuple[float, float]  # (between rows, between columns), as in PixelSpacing
    slope: float
    intercept: float
    instance_number: int
    order: int  # file order, the last tie-breaker
    keys: dict[str, Any] = field(default_factory=dict)
    pixels: np.ndarray | None = None


@dataclass
class DicomSeries:
    """A series read as volumes, with the headers each volume came from (pixel data dropped)."""

    volumes: list[sitk.Image]
    datasets: list[list[Dataset]]  # per volume, in slice order along the normal
    labels: list[dict[str, Any]]  # per volume: what tells it apart (b-value, temporal position...)
    split_by: str | None  # attribute used to split a 4D series; None for a 3D series

    @property
    def is_4d(self) -> bool:
        return len(self.volumes) > 1

    @property
    def series_instance_uid(self) -> str:
        return str(self.datasets[0][0].SeriesInstanceUID)


def _floats(value: Any, n: int, what: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.size != n:
        raise ValueError(f"{what} missing or malformed in {where}")
    return arr


def _b_value(ds: Dataset) -> float | None:
    """Diffusion b-value from the standard attribute or the vendors' private ones."""
    if "DiffusionBValue" in ds:
        return float(ds.DiffusionBValue)
    for tag in ((0x0019, 0x100C), (0x2001, 0x1003)):  # Siemens CSA header copy, Philips
        if tag in ds:
            try:
                return float(ds[tag].value)
            except (TypeError, ValueError):
                pass
    if (0x0043, 0x1039) in ds:  # GE: first value, optionally offset by 1e9
        try:
            return float(ds[0x0043, 0x1039].value[0]) % 1e9
        except (TypeError, ValueError, IndexError):
            pass
    return None


def _gradient(ds: Dataset) -> tuple[float, ...] | None:
    if "DiffusionGradientOrientation" in ds:
        return tuple(round(float(v), 4) for v in ds.DiffusionGradientOrientation)
    seq = ds.get("DiffusionGradientDirectionSequence")
    if seq and "DiffusionGradientOrientation" in seq[0]:
        return tuple(round(float(v), 4) for v in seq[0].DiffusionGradientOrientation)
    return None


def _keys_of(ds: Dataset, frame_groups: Dataset | None = None) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    src = ds
    if frame_groups is not None:
        content = frame_groups.get("FrameContentSequence")
        if content:
            if "TemporalPositionIndex" in content[0]:
                keys["temporal_position"] = int(content[0].TemporalPositionIndex)
            if "StackID" in content[0]:
                keys["stack"] = str(content[0].StackID)
        diff = frame_groups.get("MRDiffusionSequence")
        if diff:
            src = diff[0]
    if "TemporalPositionIdentifier" in ds and "temporal_position" not in keys:
        keys["temporal_position"] = int(ds.TemporalPositionIdentifier)
    b = _b_value(src)
    if b is not None:
        keys["b_value"] = b
        g = _gradient(src)
        if g is not None:
            keys["gradient"] = g
    for kw, name in (("AcquisitionNumber", "acquisition_number"), ("TriggerTime", "trigger_time"),
                     ("EchoNumbers", "echo_number")):
        value = ds.get(kw)
        if value is not None and value != "":
            try:
                keys[name] = float(value) if kw == "TriggerTime" else int(value)
            except (TypeError, ValueError):
                pass
    return keys


def _classic_slice(ds: Dataset, order: int, where: str) -> _Slice:
    iop = _floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", where)
    return _Slice(
        dataset=ds,
        frame=None,
        position=_floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", where),
        row_dir=iop[:3],
        col_dir=iop[3:],
        pixel_spacing=tuple(_floats(ds.get("PixelSpacing"), 2, "PixelSpacing", where)),  # type: ignore[arg-type]
        slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
        intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        instance_number=int(ds.get("InstanceNumber", 0) or 0),
        order=order,
        keys=_keys_of(ds),
    )


def _frame_attr(shared: Dataset | None, per_frame: Dataset, seq: str) -> Dataset | None:
    for group in (per_frame, shared):
        if group is not None and seq in group and len(group[seq].value):
            return group[seq].value[0]
    return None


def _multiframe_slices(ds: Dataset, order: int, where: str) -> list[_Slice]:
    """Frames of an enhanced (functional-group) multi-frame object, each with its own geometry."""
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    out = []
    for f, per in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = _frame_attr(shared, per, "PlanePositionSequence")
        ori = _frame_attr(shared, per, "PlaneOrientationSequence")
        meas = _frame_attr(shared, per, "PixelMeasuresSequence")
        rescale = _frame_attr(shared, per, "PixelValueTransformationSequence")
        if pos is None or ori is None or meas is None:
            raise ValueError(f"frame {f + 1} lacks plane position/orientation/pixel measures in {where}")
        iop = _floats(ori.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", where)
        merged = Dataset()
        for group in (shared, per):
            if group is not None:
                for elem in group:
                    merged.add(elem)
        out.append(_Slice(
            dataset=ds,
            frame=f,
            position=_floats(pos.get("ImagePositionPatient"), 3, "ImagePositionPatient", where),
            row_dir=iop[:3],
            col_dir=iop[3:],
            pixel_spacing=tuple(_floats(meas.get("PixelSpacing"), 2, "PixelSpacing", where)),  # type: ignore[arg-type]
            slope=float(rescale.get("RescaleSlope", 1.0)) if rescale is not None else 1.0,
            intercept=float(rescale.get("RescaleIntercept", 0.0)) if rescale is not None else 0.0,
            instance_number=f + 1,
            order=order * 100000 + f,
            keys=_keys_of(ds, merged),
        ))
    return out


def _read_slices(folder: Path, series_uid: str | None) -> list[_Slice]:
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
    slices: list[_Slice] = []
    uids: set[str] = set()
    for order, path in enumerate(files):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, EOFError):
            continue  # not DICOM (a README, a thumbnail): not part of the series
        if "PixelData" not in ds:
            continue
        if "SOPInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
            log.warning("skipping an instance without SOPInstanceUID/SeriesInstanceUID")
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if series_uid is not None and uid != series_uid:
            continue
        uids.add(uid)
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise ValueError(f"{path.name}: colour images are not volumes (SamplesPerPixel > 1)")
        where = path.name
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - any decoder failure means this instance is unusable
            log.warning("skipping an instance whose pixel data cannot be decoded: %s", type(exc).__name__)
            continue
        if "PerFrameFunctionalGroupsSequence" in ds:
            frames = _multiframe_slices(ds, order, where)
            stack = pixels if pixels.ndim == 3 else pixels[None]
            for s in frames:
                s.pixels = stack[s.frame]
        else:
            if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                raise ValueError(f"{where}: multi-frame without per-frame geometry is not a volume")
            frames = [_classic_slice(ds, order, where)]
            frames[0].pixels = pixels
        del ds.PixelData  # headers are kept for derived series; pixels live in the slices only
        slices.extend(frames)
    if not slices:
        raise ValueError(f"no DICOM image with pixel data in {folder.name}")
    if len(uids) > 1:
        raise ValueError(f"{len(uids)} series in {folder.name}: pass series_uid to choose one")
    return slices


def _position_key(s: _Slice) -> tuple[float, ...]:
    return tuple(np.round(s.position, _POSITION_DECIMALS))


_SPLIT_KEYS = ("temporal_position", "b_value+gradient", "acquisition_number", "trigger_time", "echo_number", "stack")


def _key_value(s: _Slice, key: str) -> Any:
    if key == "b_value+gradient":
        if "b_value" not in s.keys:
            return None
        return (s.keys["b_value"], s.keys.get("gradient"))
    return s.keys.get(key)


def _split_volumes(slices: list[_Slice]) -> tuple[list[list[_Slice]], str | None]:
    """Group slices into volumes: each volume holds one slice per position.

    A 4D series repeats positions; the first attribute that separates the repeats into groups of
    unique positions names the volumes (temporal position, b-value and direction, acquisition
    number, trigger time, echo). Failing all, the n-th occurrence of a position (by InstanceNumber)
    belongs to volume n.
    """
    n_pos = len({_position_key(s) for s in slices})
    if n_pos == len(slices):
        return [slices], None
    ordered = sorted(slices, key=lambda s: (s.instance_number, s.order))
    for key in _SPLIT_KEYS:
        values = [_key_value(s, key) for s in ordered]
        if any(v is None for v in values):
            continue
        groups: dict[Any, list[_Slice]] = defaultdict(list)
        for s, v in zip(ordered, values):
            groups[v].append(s)
        if len(groups) < 2:
            continue
        if all(len({_position_key(s) for s in g}) == len(g) for g in groups.values()):
            return list(groups.values()), key  # insertion order = acquisition order
    seen: dict[tuple[float, ...], int] = defaultdict(int)
    by_volume: dict[int, list[_Slice]] = defaultdict(list)
    for s in ordered:
        k = _position_key(s)
        by_volume[seen[k]].append(s)
        seen[k] += 1
    return [by_volume[i] for i in sorted(by_volume)], "instance_order"


def _stack(slices: list[_Slice], where: str) -> tuple[sitk.Image, list[_Slice]]:
    """One volume from slices of the same orientation, sorted along the slice normal."""
    row, col = slices[0].row_dir, slices[0].col_dir
    for s in slices[1:]:
        if not (np.allclose(s.row_dir, row, atol=1e-4) and np.allclose(s.col_dir, col, atol=1e-4)):
            raise ValueError(f"slices of {where} have different orientations (a localizer?): not one volume")
    row = row / np.linalg.norm(row)
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    slices = sorted(slices, key=lambda s: (float(s.position @ normal), s.order))
    shapes = {s.pixels.shape for s in slices}  # type: ignore[union-attr]
    if len(shapes) != 1:
        raise ValueError(f"slices of {where} differ in Rows/Columns: {sorted(shapes)}")
    dist = np.array([float(s.position @ normal) for s in slices])
    if len(slices) > 1:
        steps = np.diff(dist)
        if np.any(steps < 1e-3):
            raise ValueError(f"two slices of {where} at the same position: split the 4D series first")
        dz = float(np.median(steps))
        if np.max(np.abs(steps - dz)) > 0.05 * dz + 0.01:
            log.warning("uneven slice spacing in a series (%.3f..%.3f mm): using the median %.3f mm",
                        steps.min(), steps.max(), dz)
        stacking = slices[-1].position - slices[0].position
        stacking /= np.linalg.norm(stacking)
        if abs(float(stacking @ normal)) < 0.9999:
            log.warning("slices are stacked off the normal (gantry tilt?): geometry is approximate")
    else:
        ds = slices[0].dataset
        dz = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    arr = np.stack([s.pixels.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)  # type: ignore[union-attr]
                    for s in slices])
    img = sitk.GetImageFromArray(arr)
    dy, dx = slices[0].pixel_spacing
    img.SetSpacing((float(dx), float(dy), dz))
    img.SetOrigin(tuple(float(v) for v in slices[0].position))
    img.SetDirection(tuple(np.column_stack([row, col, normal]).ravel()))
    return img, slices


def read_dicom_series(path: str | os.PathLike[str], series_uid: str | None = None) -> DicomSeries:
    """Read a DICOM series folder (or one multi-frame file) as one volume per time point / b-value."""
    p = Path(path)
    slices = _read_slices(p, series_uid)
    groups, split_by = _split_volumes(slices)
    volumes, datasets, labels = [], [], []
    for g in groups:
        img, ordered = _stack(g, p.name)
        volumes.append(img)
        datasets.append([s.dataset for s in ordered])
        first = ordered[0].keys
        labels.append({k: first[k] for k in ("temporal_position", "b_value", "gradient", "acquisition_number",
                                              "trigger_time", "echo_number") if k in first})
    if len(volumes) > 1 and len({v.GetSize() for v in volumes}) > 1:
        log.warning("the volumes of a 4D series differ in size: %s", sorted({v.GetSize() for v in volumes}))
    return DicomSeries(volumes, datasets, labels, split_by)


def _split_4d(img: sitk.Image) -> list[sitk.Image]:
    if img.GetDimension() == 3:
        return [img]
    if img.GetDimension() != 4:
        raise ValueError(f"{img.GetDimension()}D images are not volumes")
    size = list(img.GetSize())
    out = []
    for t in range(size[3]):
        out.append(sitk.Extract(img, size[:3] + [0], [0, 0, 0, t]))
    return out


def load_volumes(path: str | os.PathLike[str]) -> list[sitk.Image]:
    """Every volume of a series (one for 3D; one per b-value/direction or time point for 4D), float32."""
    if is_volume_file(path):
        return [sitk.Cast(v, sitk.sitkFloat32) for v in _split_4d(sitk.ReadImage(str(path)))]
    return read_dicom_series(path).volumes


def load_volume(path: str | os.PathLike[str], index: int = 0) -> sitk.Image:
    """One volume (float32, LPS) of a DICOM series folder or a NIfTI file; for 4D, volume `index`
    (the first, e.g. b=0 or the pre-contrast phase, unless told otherwise)."""
    volumes = load_volumes(path)
    if not -len(volumes) <= index < len(volumes):
        raise IndexError(f"volume {index} requested, the series has {len(volumes)}")
    return volumes[index]


def write_volumes(volumes: sitk.Image | Sequence[sitk.Image], path: str | os.PathLike[str]) -> Path:
    """Write one volume, or several as a 4D file, to a NIfTI (or other SimpleITK) file, atomically."""
    vols = [volumes] if isinstance(volumes, sitk.Image) else list(volumes)
    img = vols[0] if len(vols) == 1 else sitk.JoinSeries(vols)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(out.suffixes[-2:]) if out.name.lower().endswith(".nii.gz") else out.suffix
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=out.parent)
    os.close(fd)
    try:
        sitk.WriteImage(img, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# -------------------------------------------------------------------------------------------- write

#: DICOM code of the derivation (CID 7203 Image Derivation).
SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")

#: Attributes of the source that stop being true once the pixels are resampled or re-encoded.
_DROP = (
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceLocation", "SliceThickness",
    "SpacingBetweenSlices", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "RescaleSlope", "RescaleIntercept",
    "RescaleType", "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction",
    "VOILUTSequence", "ModalityLUTSequence", "SmallestImagePixelValue", "LargestImagePixelValue",
    "PixelPaddingValue", "PixelPaddingRangeLimit", "ImagesInAcquisition", "SourceImageSequence",
    "ReferencedImageSequence", "IconImageSequence", "NumberOfFrames", "FrameIncrementPointer",
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "DimensionIndexSequence",
    "DimensionOrganizationSequence", "InStackPositionNumber", "StackID", "LossyImageCompression",
    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData", "ContentQualification", "ReferencedSeriesSequence", "DerivationDescription",
    "DerivationCodeSequence", "BurnedInAnnotation", "InstanceCreationDate", "InstanceCreationTime",
)


@dataclass
class WrittenSeries:
    """Where a derived series went and what identifies it."""

    path: Path
    series_instance_uid: str
    sop_instance_uids: list[str]
    files: list[Path]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "series_instance_uid": self.series_instance_uid,
                "instances": len(self.files)}


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _encoding(volumes: Sequence[np.ndarray], modality: str) -> tuple[float, float]:
    """(slope, intercept) storing real-world values in signed 16 bits for the whole series.

    Slope 1 keeps integer-valued data (CT HU, most MR) exact to the nearest unit; data with a small
    range (maps, normalised images) get a fractional slope so 16 bits of precision remain.
    """
    lo = float(min(float(v.min()) for v in volumes))
    hi = float(max(float(v.max()) for v in volumes))
    peak = max(abs(lo), abs(hi))
    if peak <= 32767 and (hi - lo >= 1000 or modality == Modality.CT):
        return 1.0, 0.0
    slope = (peak / 32000.0) if peak > 0 else 1.0
    return float(np.float32(slope)), 0.0


def _ds(v: float) -> str:
    """A DS (decimal string) of at most 16 characters."""
    for digits in range(12, 2, -1):
        text = f"{v:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{v:.3e}"


def write_dicom_series(
    image: sitk.Image | Sequence[sitk.Image],
    out_dir: str | os.PathLike[str],
    source_datasets: Sequence[Dataset] | Sequence[Sequence[Dataset]],
    derivation_description: str,
    *,
    series_description: str | None = None,
    series_number: int | None = None,
    frame_of_reference_uid: str | None = None,
    derivation_code: tuple[str, str, str] = SPATIAL_RESAMPLING,
    uid_seed: str | None = None,
    series_instance_uid: str | None = None,
    source_matrices: Sequence[np.ndarray] | None = None,
    overwrite: bool = True,
) -> WrittenSeries:
    """Write volume(s) as a new derived series in the source's study, one classic instance per slice.

    image: one volume, or the volumes of a 4D series (each gets its own volume's source headers, so
    b-values and temporal positions stay with their volume). source_datasets: the headers of the
    source volume (one list) or of each source volume (a list per volume); patient, study,
    equipment and acquisition attributes are copied from them, private tags are not.
    The new series: a fresh SeriesInstanceUID (reproducible when `uid_seed` is given, so a rerun of
    the same work gives the same UIDs), ImageType DERIVED\\SECONDARY, DerivationDescription and
    DerivationCodeSequence, geometry of `image`'s grid, and in each instance a
    SourceImageSequence listing the instances of its source volume, with the matching
    ReferencedSeriesSequence (Common Instance Reference module) naming the source series. Written to a temporary folder and renamed
    into `out_dir`, so a reader never sees half a series.
    source_matrices: per volume, the 4x4 matrix mapping a point of `image`'s grid to the source
    volume's space (the resampling transform); with it each slice references only the source
    slices it was interpolated from, instead of the whole source volume.
    """
    volumes = [image] if isinstance(image, sitk.Image) else list(image)
    if not volumes:
        raise ValueError("no volume to write")
    if source_datasets and isinstance(source_datasets[0], Dataset):
        per_volume = [list(source_datasets)] * len(volumes)  # type: ignore[list-item]
    else:
        per_volume = [list(s) for s in source_datasets]  # type: ignore[arg-type]
        if len(per_volume) == 1 and len(volumes) > 1:
            per_volume = per_volume * len(volumes)
    if len(per_volume) != len(volumes) or any(not s for s in per_volume):
        raise ValueError(f"{len(volumes)} volumes but source headers for {len(per_volume)}")
    first = per_volume[0][0]
    modality = str(first.get("Modality", Modality.OT))
    arrays = [sitk.GetArrayFromImage(v).astype(np.float64) for v in volumes]
    slope, intercept = _encoding(arrays, modality)

    seed = [uid_seed] if uid_seed is not None else None
    series_uid = series_instance_uid or generate_uid(entropy_srcs=seed + ["series"] if seed else None)
    if series_number is None:
        series_number = int(first.get("SeriesNumber", 0) or 0) + 1000
    if series_description is None:
        series_description = (str(first.get("SeriesDescription", "")) + " DERIVED").strip()[:64]

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the series is an ordinary folder once renamed
    files: list[Path] = []
    sop_uids: list[str] = []
    number = 0
    try:
        for v, (vol, arr, group) in enumerate(zip(volumes, arrays, per_volume)):
            direction = np.asarray(vol.GetDirection()).reshape(3, 3)
            spacing = vol.GetSpacing()
            stored = np.clip(np.rint((arr - intercept) / slope), -32768, 32767).astype(np.int16)
            finite = arr[np.isfinite(arr)]
            lo_w, hi_w = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
            # Attributes shared by the volume's slices, built and encoded once (_SliceEncoder); each
            # slice adds its own UIDs, position, references and pixels.
            base = _derived_header(group[0], modality)
            base.SeriesInstanceUID = series_uid
            base.SeriesNumber = int(series_number)
            base.SeriesDescription = series_description[:64]
            base.DerivationDescription = derivation_description[:1024]
            base.DerivationCodeSequence = DicomSequence([_code_item(*derivation_code)])
            if frame_of_reference_uid:
                base.FrameOfReferenceUID = frame_of_reference_uid
            base.ImageOrientationPatient = [_ds(float(c)) for c in np.concatenate([direction[:, 0], direction[:, 1]])]
            base.PixelSpacing = [_ds(float(spacing[1])), _ds(float(spacing[0]))]
            base.SliceThickness = _ds(float(spacing[2]))
            base.SpacingBetweenSlices = _ds(float(spacing[2]))
            base.Rows, base.Columns = int(stored.shape[1]), int(stored.shape[2])
            base.SamplesPerPixel = 1
            base.PhotometricInterpretation = "MONOCHROME2"
            base.BitsAllocated = 16
            base.BitsStored = 16
            base.HighBit = 15
            base.PixelRepresentation = 1
            if modality == Modality.CT or slope != 1.0 or intercept != 0.0:
                base.RescaleIntercept = _ds(intercept)
                base.RescaleSlope = _ds(slope)
                if modality == Modality.CT:
                    base.RescaleType = "HU"
            base.WindowCenter = _ds(float((lo_w + hi_w) / 2.0))
            base.WindowWidth = _ds(float(max(hi_w - lo_w, 1e-3)))
            matrix = None if source_matrices is None else np.asarray(source_matrices[v], dtype=np.float64)
            encoder = _SliceEncoder(base, group)
            for k in range(stored.shape[0]):
                number += 1
                sop_uid = generate_uid(entropy_srcs=seed + ["sop", str(v), str(k)] if seed else None)
                sources = group if matrix is None else _contributing(vol, k, matrix, group, encoder.depth)
                pos = vol.TransformIndexToPhysicalPoint((0, 0, k))
                path = tmp / f"IM{number:05d}.dcm"
                path.write_bytes(encoder.file_bytes(
                    sop_uid, number, sources, [_ds(float(c)) for c in pos],
                    _ds(float(np.asarray(pos) @ direction[:, 2])), stored[k]))
                files.append(out / path.name)
                sop_uids.append(sop_uid)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return WrittenSeries(out, series_uid, sop_uids, files)


#: Purpose of reference of each source image (CID 7202): source image for image processing operation.
_SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")


def _depths(sources: Sequence[Dataset]) -> tuple[np.ndarray, np.ndarray] | None:
    """(normal, depth of each source slice along it), or None when the sources' geometry is unreadable;
    computed once per source volume, not once per derived slice."""
    try:
        iop = np.asarray([float(x) for x in sources[0].ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        depth = np.asarray([float(np.asarray([float(x) for x in ds.ImagePositionPatient]) @ normal) for ds in sources])
    except (AttributeError, TypeError, ValueError):
        return None
    return normal, depth


def _contributing(vol: sitk.Image, k: int, matrix: np.ndarray, sources: Sequence[Dataset],
                  geometry: tuple[np.ndarray, np.ndarray] | None) -> list[Dataset]:
    """The source slices (sorted along their normal) that slice k of `vol` samples through `matrix`;
    `geometry` is `_depths(sources)` (every source when it is None)."""
    if geometry is None:
        return list(sources)
    normal, depth = geometry
    size = vol.GetSize()
    corners = [vol.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
               for i in (0, size[0] - 1) for j in (0, size[1] - 1)]
    pts = np.asarray(corners) @ matrix[:3, :3].T + matrix[:3, 3]
    along = pts @ normal
    step = float(np.median(np.abs(np.diff(depth)))) if len(depth) > 1 else 1.0
    lo, hi = along.min() - step, along.max() + step  # linear interpolation reaches one slice further
    chosen = [ds for ds, d in zip(sources, depth) if lo <= d <= hi]
    return chosen or [sources[int(np.argmin(np.abs(depth - along.mean())))]]


#: Elements every derived slice sets itself (SOPInstanceUID, ReferencedSeriesSequence, SourceImageSequence,
#: InstanceNumber, ImagePositionPatient, SliceLocation, PixelData); the rest of a slice is its volume's.
_PER_SLICE_TAGS = frozenset({0x00080018, 0x00081115, 0x00082112, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010})


class _SliceEncoder:
    """Encodes the slices of one derived volume as DICOM Part 10 files (explicit VR little endian).

    Why: a study's register task writes ~500 derived files, and encoding every slice's full header
    with `Dataset.save_as` was most of the stage's Python time. Here the attributes the slices share
    are encoded once, by pydicom's own element writer, and each slice encodes only its own elements;
    the references to the source slices are encoded once per distinct set of sources. The bytes are
    those `save_as(..., enforce_file_format=True)` writes for the same dataset (tests/registration).
    """

    def __init__(self, base: Dataset, sources: Sequence[Dataset]) -> None:
        correct_ambiguous_vr(base, True)  # as dcmwrite does for a dataset built in memory
        self.sop_class = str(base.SOPClassUID)
        self.encodings = base.get("SpecificCharacterSet", default_encoding)
        self.shared = [(int(t), self._encode(base[t])) for t in sorted(base.keys())
                       if int(t) not in _PER_SLICE_TAGS and not (t.element == 0 and t.group > 6)]
        self.depth = _depths(sources)
        self._references: dict[tuple[int, ...], list[tuple[int, bytes]]] = {}
        self._items: dict[tuple[int, bool], bytes] = {}

    def _encode(self, elem: Any) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, elem, self.encodings)
        return fp.getvalue()

    def _source_elements(self, sources: Sequence[Dataset]) -> list[tuple[int, bytes]]:
        """ReferencedSeriesSequence and SourceImageSequence of a slice with these sources: the
        Common Instance Reference (source series, their instances) and one Source Image item per
        source instance, multi-frame sources once. Items are encoded once per source slice."""
        key = tuple(id(s) for s in sources)  # the sources live as long as this encoder's volume
        if key not in self._references:
            by_series: dict[str, list[Dataset]] = {}
            for src in sources:
                by_series.setdefault(str(src.SeriesInstanceUID), []).append(src)
            series = [_item_bytes(_sequence_bytes(0x0008114A, [self._item(src, False) for src in _unique(group)])
                                  + self._encode(DataElement(0x0020000E, "UI", uid)))
                      for uid, group in by_series.items()]
            self._references[key] = [
                (0x00081115, _sequence_bytes(0x00081115, series)),
                (0x00082112, _sequence_bytes(0x00082112, [self._item(src, True) for src in _unique(sources)])),
            ]
        return self._references[key]

    def _item(self, src: Dataset, purpose: bool) -> bytes:
        """One encoded reference item to `src` (SOP class and instance; with `purpose`, the Source
        Image Sequence's purpose of reference code)."""
        key = (id(src), purpose)
        if key not in self._items:
            ref = Dataset()
            ref.ReferencedSOPClassUID = src.SOPClassUID
            ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
            if purpose:
                ref.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(*_SOURCE_PURPOSE)])
            fp = DicomBytesIO()
            fp.is_little_endian, fp.is_implicit_VR = True, False
            write_sequence_item(fp, ref, convert_encodings(self.encodings))
            self._items[key] = fp.getvalue()
        return self._items[key]

    def file_bytes(self, sop_uid: str, number: int, sources: Sequence[Dataset], position: list[str],
                   location: str, pixels: np.ndarray) -> bytes:
        """One slice's file: preamble, file meta information, the shared and the slice's own elements."""
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = self.sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        head = DicomBytesIO()
        head.is_little_endian, head.is_implicit_VR = True, False
        head.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(head, meta, enforce_standard=True)
        data = pixels.astype("<i2", copy=False).tobytes()
        own = [
            (0x00080018, self._encode(DataElement(0x00080018, "UI", sop_uid))),
            (0x00200013, self._encode(DataElement(0x00200013, "IS", number))),
            (0x00200032, self._encode(DataElement(0x00200032, "DS", position))),
            (0x00201041, self._encode(DataElement(0x00201041, "DS", location))),
            (0x7FE00010, struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(data)) + data),
            *self._source_elements(sources),
        ]
        return head.getvalue() + b"".join(chunk for _, chunk in sorted(self.shared + own, key=lambda e: e[0]))


def _unique(sources: Sequence[Dataset]) -> list[Dataset]:
    """The sources, each SOP instance once (the frames of one multi-frame source share it)."""
    seen: set[str] = set()
    out = []
    for src in sources:
        uid = str(src.SOPInstanceUID)
        if uid not in seen:
            seen.add(uid)
            out.append(src)
    return out


def _sequence_bytes(tag: int, items: Sequence[bytes]) -> bytes:
    """An explicit VR little endian SQ element of defined length holding encoded items."""
    body = b"".join(items)
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, len(body)) + body


def _item_bytes(body: bytes) -> bytes:
    """A sequence item of defined length around encoded elements."""
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def _derived_header(template: Dataset, modality: str) -> Dataset:
    """A copy of the source header without private tags, pixels or stale geometry."""
    ds = Dataset()
    for elem in template:
        if elem.tag.is_private or elem.tag.group in (0x0002,) or 0x6000 <= elem.tag.group <= 0x60FF:
            continue
        if elem.keyword in _DROP:
            continue
        ds.add(copy.deepcopy(elem))
    sop_class = str(template.get("SOPClassUID", ""))
    if sop_class not in _CLASSIC_BY_MODALITY.values():
        # Enhanced or other multi-frame sources become classic single-slice images of their modality.
        sop_class = _CLASSIC_BY_MODALITY.get(modality, "1.2.840.10008.5.1.4.1.1.7")  # else Secondary Capture
        if modality == Modality.MR:
            for kw, default in (("ScanningSequence", "RM"), ("SequenceVariant", "NONE"), ("ScanOptions", ""),
                                ("MRAcquisitionType", ""), ("RepetitionTime", None), ("EchoTime", None),
                                ("EchoTrainLength", None)):
                if kw not in ds:
                    setattr(ds, kw, default)
        if sop_class.endswith(".7"):
            ds.ConversionType = "WSD"
    ds.SOPClassUID = sop_class
    image_type = list(template.get("ImageType", []) or [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + [str(v) for v in image_type[2:]]
    return ds


def series_headers(path: str | os.PathLike[str]) -> list[Dataset]:
    """Headers (no pixel data) of every DICOM instance in a folder: cheap metadata for choosing series."""
    out = []
    for p in sorted(Path(path).rglob("*") if Path(path).is_dir() else [Path(path)]):
        if not p.is_file():
            continue
        try:
            out.append(pydicom.dcmread(p, stop_before_pixels=True))
        except (InvalidDicomError, OSError, EOFError):
            continue
    return out


__all__ = [
    "DicomSeries",
    "SPATIAL_RESAMPLING",
    "WrittenSeries",
    "is_volume_file",
    "load_volume",
    "load_volumes",
    "read_dicom_series",
    "series_headers",
    "write_dicom_series",
    "write_volumes",
]
