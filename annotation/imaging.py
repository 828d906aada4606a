"""Reads the DICOM bytes an item references (file://, s3://, DICOMweb URL), strips identifying
attributes and caches the result, so readers and exports only ever see the cleaned object.
De-identified PNG/JPEG images and NIfTI volumes are turned into DICOM first
(`annotation.imaging_formats`), so every endpoint, the viewer and the exports treat them alike."""
from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.pixels import apply_color_lut

from annotation.imaging_formats import as_dicom, image_kind
from annotation.phi import strip_identifying
from annotation.zones import READABLE_ZONES, ZoneError, check_segments


class UriError(ValueError):
    """The URI is malformed, outside the allowed roots, or cannot be read."""


@dataclass(frozen=True)
class InstanceHeader:
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frames: int
    rows: int
    columns: int


# Photometric interpretations the frames endpoint sends as 8-bit RGB (decoded, colour-converted).
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")
POSITION_TOLERANCE_MM = 0.01  # two slices closer than this along the normal are one position twice
GAP_FACTOR = 1.5  # a step this many times the usual spacing is a gap (a missing slice or more)


@dataclass(frozen=True)
class SliceGeometry:
    """Where an instance sits: Image Position/Orientation (Patient) and Instance Number, when present."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    instance_number: int | None


@dataclass(frozen=True)
class SliceOrder:
    """The order to show an item's instances in (indices into its listed instances), how it was
    decided (`position` along the slice normal, `instance_number`, or `listed`), and what a reader
    should know (gaps, duplicates, mixed orientations)."""

    order: list[int]
    by: str
    warnings: list[str]


def geometry_of(ds: Dataset) -> SliceGeometry:
    def floats(keyword: str, n: int) -> tuple[float, ...] | None:
        value = ds.get(keyword)
        try:
            out = tuple(float(v) for v in value) if value is not None else None
        except (TypeError, ValueError):
            return None
        return out if out is not None and len(out) == n else None

    try:
        number = int(ds.InstanceNumber) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    return SliceGeometry(floats("ImagePositionPatient", 3), floats("ImageOrientationPatient", 6), number)  # type: ignore[arg-type]


def slice_order(geometries: list[SliceGeometry]) -> SliceOrder:
    """Sort by position along the slice normal (IPP . (row x column cosines)), as a file listing
    gives no anatomical order; fall back to Instance Number, then to the listed order."""
    n = len(geometries)
    listed = list(range(n))
    if n < 2:
        return SliceOrder(listed, "listed", [])
    warnings: list[str] = []
    if all(g.position and g.orientation for g in geometries):
        cosines = np.array([g.orientation for g in geometries])
        if np.abs(cosines - cosines[0]).max() <= 1e-3:
            normal = np.cross(cosines[0][:3], cosines[0][3:])
            where = np.array([g.position for g in geometries]) @ normal
            numbers = [g.instance_number if g.instance_number is not None else 0 for g in geometries]
            order = sorted(listed, key=lambda i: (where[i], numbers[i], i))
            steps = np.diff(where[order])
            duplicates = int((steps < POSITION_TOLERANCE_MM).sum())
            if duplicates:
                warnings.append(f"{duplicates} duplicate slice position{'s' if duplicates > 1 else ''}")
            real = steps[steps >= POSITION_TOLERANCE_MM]
            if real.size:
                usual = float(np.median(real))
                for k, step in enumerate(steps):
                    if step > GAP_FACTOR * usual:
                        warnings.append(f"gap of {step:.1f} mm between images {k + 1} and {k + 2} "
                                        f"(usual spacing {usual:.1f} mm)")
            return SliceOrder(order, "position", warnings)
        planes = len({tuple(np.round(c, 3)) for c in cosines})
        warnings.append(f"mixed orientations ({planes} image planes): shown by instance number")
    if all(g.instance_number is not None for g in geometries):
        numbers = [g.instance_number for g in geometries]
        if len(set(numbers)) < n:
            warnings.append(f"{n - len(set(numbers))} duplicate instance number(s)")
        return SliceOrder(sorted(listed, key=lambda i: (numbers[i], i)), "instance_number", warnings)
    warnings.append("no slice positions or instance numbers: shown in the order registered")
    return SliceOrder(listed, "listed", warnings)


def display_frame(ds: Dataset, frame: int) -> tuple[np.ndarray, str]:
    """One frame as the plain-canvas views draw it, with its photometric interpretation:
    greyscale as stored values (before rescale; MONOCHROME1 kept, the client inverts), colour
    (RGB, YBR_* converted by pydicom, PALETTE COLOR through its LUT) as 8-bit RGB."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frame < 0 or frame >= frames:
        raise IndexError(frame)
    arr = ds.pixel_array
    if frames > 1:
        arr = arr[frame]
    if photometric not in COLOUR:
        return np.ascontiguousarray(arr), photometric
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        # 16-bit entries scaled to 8 bits, unless the values are 8-bit whatever the descriptor says (as Cornerstone does)
        declared = int(ds.RedPaletteColorLookupTableDescriptor[2])
        red = ds.get("RedPaletteColorLookupTableData")
        entries = np.frombuffer(red, dtype="<u2") if declared > 8 and red else np.zeros(1, dtype=np.uint16)
        bits = 16 if int(entries.max()) > 255 else 8
    else:
        bits = int(ds.get("BitsStored", 8) or 8)
    if bits > 8:
        arr = np.right_shift(arr.astype(np.uint32), bits - 8)
    return np.ascontiguousarray(arr.astype(np.uint8)), "RGB"


def local_path(uri: str, allowed_roots: list[str], zones: tuple[str, ...] | list[str] = READABLE_ZONES) -> Path:
    try:
        parsed = urlparse(uri)
    except ValueError:
        raise UriError("malformed URI") from None
    if parsed.netloc not in ("", "localhost"):
        raise UriError("file URI must name a local path (file:///...)")
    try:
        path = Path(unquote(parsed.path)).resolve()
    except (ValueError, OSError):
        raise UriError("malformed file URI") from None
    try:
        check_segments(list(path.parts), zones)
    except ZoneError as exc:
        raise UriError(str(exc)) from None
    if allowed_roots and not any(path.is_relative_to(Path(root).resolve()) for root in allowed_roots):
        raise UriError("file URI outside the allowed roots")
    return path


def read_bytes(uri: str, allowed_roots: list[str], allowed_prefixes: list[str] | None = None,
               zones: tuple[str, ...] | list[str] = READABLE_ZONES) -> bytes:
    """Bytes behind a URI. Remote URIs (s3, DICOMweb) must start with an allowed prefix when any is
    configured, so a registered item cannot make the service fetch arbitrary addresses."""
    try:
        scheme = urlparse(uri).scheme
    except ValueError:
        raise UriError("malformed URI") from None
    if scheme != "file" and allowed_prefixes and not any(uri.startswith(p) for p in allowed_prefixes):
        raise UriError("remote URI outside the allowed prefixes")
    if scheme == "file":
        path = local_path(uri, allowed_roots, zones)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UriError(f"cannot read file URI ({exc.strerror})") from None
    if scheme == "s3":
        import boto3  # deferred: only deployments with S3 need it loaded

        parsed = urlparse(uri)  # already parsed once above: cannot raise here
        key = parsed.path.lstrip("/")
        try:
            check_segments(key.split("/"), zones)
        except ZoneError as exc:
            raise UriError(str(exc)) from None
        try:
            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
            return client.get_object(Bucket=parsed.netloc, Key=key)["Body"].read()
        except Exception as exc:  # botocore raises many kinds; the message names no patient data
            raise UriError(f"cannot read S3 object ({type(exc).__name__})") from None
    if scheme in ("http", "https"):
        import httpx

        headers = {"Accept": "application/dicom; transfer-syntax=*"}
        token = os.environ.get("ANNOTATION_DICOMWEB_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = httpx.get(uri, headers=headers, timeout=30.0)
            resp.raise_for_status()
        except Exception as exc:  # httpx errors, and malformed hosts (idna) alike
            raise UriError(f"cannot fetch DICOMweb URL ({type(exc).__name__})") from None
        return _unwrap_multipart(resp.content, resp.headers.get("content-type", ""))
    raise UriError("unsupported URI scheme")


def _unwrap_multipart(body: bytes, content_type: str) -> bytes:
    """WADO-RS answers multipart/related; take the first part's body."""
    if not content_type.startswith("multipart/"):
        return body
    boundary = None
    for param in content_type.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return body
    parts = body.split(b"--" + boundary.encode())
    for part in parts[1:]:
        head, sep, content = part.partition(b"\r\n\r\n")
        if sep:
            return content.rstrip(b"\r\n")
    return body


class InstanceCache:
    """LRU of cleaned DICOM bytes keyed by URI, bounded in bytes; shared by all request threads."""

    def __init__(self, max_bytes: int, allowed_roots: list[str], allowed_prefixes: list[str] | None = None,
                 zones: tuple[str, ...] | list[str] = READABLE_ZONES) -> None:
        self.max_bytes = max_bytes
        self.allowed_roots = allowed_roots
        self.allowed_prefixes = allowed_prefixes or []
        self.zones = zones
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._geometry: dict[str, SliceGeometry] = {}  # tiny, kept after the bytes leave the LRU
        self._size = 0
        self._lock = threading.Lock()

    def cleaned(self, uri: str) -> bytes:
        with self._lock:
            hit = self._data.get(uri)
            if hit is not None:
                self._data.move_to_end(uri)
                return hit
        data = clean_bytes(read_bytes(uri, self.allowed_roots, self.allowed_prefixes, self.zones))
        with self._lock:
            if uri not in self._data:
                self._data[uri] = data
                self._size += len(data)
                while self._size > self.max_bytes and len(self._data) > 1:
                    _, old = self._data.popitem(last=False)
                    self._size -= len(old)
        return data

    def dataset(self, uri: str) -> Dataset:
        ds = pydicom.dcmread(io.BytesIO(self.cleaned(uri)))
        self._geometry[uri] = geometry_of(ds)
        return ds

    def geometry(self, uri: str) -> SliceGeometry:
        """Registration parsed every instance once, so this is normally a dictionary look-up."""
        hit = self._geometry.get(uri)
        if hit is None:
            hit = geometry_of(pydicom.dcmread(io.BytesIO(self.cleaned(uri)), stop_before_pixels=True))
            self._geometry[uri] = hit
        return hit

    def slice_order(self, uris: list[str]) -> SliceOrder:
        return slice_order([self.geometry(u) for u in uris])

    def frame(self, uri: str, frame: int) -> tuple[np.ndarray, Dataset, str]:
        """One frame for clients doing their own VOI (see `display_frame`), its dataset and photometric."""
        ds = self.dataset(uri)
        arr, photometric = display_frame(ds, frame)
        return arr, ds, photometric


def clean_bytes(raw: bytes) -> bytes:
    kind = image_kind(raw)
    try:
        ds = as_dicom(raw, kind) if kind else pydicom.dcmread(io.BytesIO(raw))
    except Exception:
        raise UriError(f"not a readable {kind.upper() if kind else 'DICOM'} object") from None
    strip_identifying(ds)
    decodable_in_browser(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def decodable_in_browser(ds: Dataset) -> Dataset:
    """Re-encode, without changing a value, the two uncompressed layouts the viewer's decoder
    (Cornerstone's dicom-image-loader) draws wrong: signed 8-bit greyscale (read as unsigned: negative
    values turn white) becomes signed 16-bit, and YBR_FULL_422 (drawn black) becomes YBR_FULL with
    the chroma repeated per pixel pair (PS3.5 8.2.2), exactly what pydicom decodes it to."""
    if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
        return ds
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 1 and int(ds.get("BitsAllocated", 0)) == 8 and int(ds.get("PixelRepresentation", 0)) == 1:
        values = ds.pixel_array.astype("<i2")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelData = values.tobytes()
        ds["PixelData"].VR = "OW"
    elif photometric == "YBR_FULL_422" and samples == 3:
        from pydicom.pixels import pixel_array

        ybr = pixel_array(ds, raw=True)
        ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_FULL", 0
        ds.PixelData = np.ascontiguousarray(ybr).tobytes()
        ds["PixelData"].VR = "OB"
    return ds


def header_of(ds: Dataset) -> InstanceHeader:
    try:
        return InstanceHeader(
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            study_instance_uid=str(ds.StudyInstanceUID),
            frames=int(getattr(ds, "NumberOfFrames", 1) or 1),
            rows=int(ds.Rows),
            columns=int(ds.Columns),
        )
    except AttributeError as exc:
        raise UriError(f"DICOM object lacks an attribute the viewer needs ({exc.args[0] if exc.args else ''})") from None
