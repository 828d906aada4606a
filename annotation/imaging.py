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
        return pydicom.dcmread(io.BytesIO(self.cleaned(uri)))

    def frame(self, uri: str, frame: int) -> tuple[np.ndarray, Dataset]:
        """Stored pixel values of one frame (before rescale), for clients doing their own VOI."""
        ds = self.dataset(uri)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if frame < 0 or frame >= frames:
            raise IndexError(frame)
        arr = ds.pixel_array
        if frames > 1:
            arr = arr[frame]
        return np.ascontiguousarray(arr), ds


def clean_bytes(raw: bytes) -> bytes:
    kind = image_kind(raw)
    try:
        ds = as_dicom(raw, kind) if kind else pydicom.dcmread(io.BytesIO(raw))
    except Exception:
        raise UriError(f"not a readable {kind.upper() if kind else 'DICOM'} object") from None
    strip_identifying(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


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
