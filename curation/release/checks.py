"""What a release's DICOM must satisfy beyond its checksums: label objects (SEG, SR) that pass
dciodvfy and reference only instances the release holds, and images that pass the
de-identification verifier's rules that need no source object (identity removed, no private,
curve or overlay groups, no patient name but the pseudonym) and are not raw-zone objects.

A pulled copy has no raw zone and no catalog, so these rules read the release alone; the
de-identification stage already searched every output for its source's values before writing it."""
from __future__ import annotations

import hashlib
import io
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from deid.verify import check_identity_removed, scan_structure

DCIODVFY = "/usr/bin/dciodvfy"
#: SOP classes a release writes as labels (Segmentation, Comprehensive SR).
LABEL_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.33"})


@dataclass(frozen=True)
class ContentProblem:
    path: str
    kind: str  # invalid | reference | phi | raw
    detail: str


def is_dicom_path(path: str) -> bool:
    return path.endswith(".dcm") and path.split("/", 1)[0] in ("images", "labels")


def read_dataset(data: bytes, pixels: bool = True) -> Dataset | None:
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)
    except Exception:  # not Part 10: the caller names the file
        return None


def referenced_instances(ds: Dataset) -> Iterator[str]:
    """Every ReferencedSOPInstanceUID anywhere in ds (evidence, sources, regions)."""
    for elem in ds.iterall():
        if elem.keyword == "ReferencedSOPInstanceUID":
            yield str(elem.value)


def dciodvfy_errors(data: bytes) -> list[str]:
    """dciodvfy's "Error" lines for one object (it reads files, so the bytes go to a temporary one)."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as f:
        f.write(data)
        f.flush()
        out = subprocess.run([DCIODVFY, f.name], capture_output=True, text=True, timeout=120)
    return [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip().startswith("Error")]


def label_problems(path: str, data: bytes, released: set[str]) -> list[ContentProblem]:
    """dciodvfy errors and references to instances the release does not hold."""
    ds = read_dataset(data)
    if ds is None:
        return [ContentProblem(path, "invalid", "not a DICOM Part 10 file")]
    out = [ContentProblem(path, "invalid", f"dciodvfy: {e}") for e in dciodvfy_errors(data)]
    for uid in sorted(set(referenced_instances(ds)) - released):
        out.append(ContentProblem(path, "reference", f"references instance {uid}, which the release does not hold"))
    return out


def image_problems(path: str, data: bytes, raw_sha256: set[str] | None = None) -> tuple[list[ContentProblem], str | None]:
    """The de-identification verifier's source-free rules, and no raw-zone object (by SHA-256
    when the raw zone's hashes are known; a raw object also fails PatientIdentityRemoved); with
    the image's SOP Instance UID when it is a released, de-identified instance labels may reference.
    Curves and overlays precede Pixel Data, so the header alone is read."""
    if raw_sha256 and hashlib.sha256(data).hexdigest() in raw_sha256:
        return [ContentProblem(path, "raw", "is a raw-zone object (identical bytes), not its de-identified copy")], None
    ds = read_dataset(data, pixels=False)
    if ds is None:
        return [ContentProblem(path, "invalid", "not a DICOM Part 10 file")], None
    meta_uid = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPInstanceUID", "") or "")
    findings = check_identity_removed(ds, meta_uid) + scan_structure(ds, allow_private=False)
    out = [ContentProblem(path, "phi", f"{f.kind} at {f.where}: {f.detail}") for f in findings]
    name = str(ds.get("PatientName", "") or "")
    if name and name not in pseudonymous_names(str(ds.get("PatientID", "") or "")):
        out.append(ContentProblem(path, "phi", "PatientName (0010,0010) is neither empty nor the pseudonym of "
                                               "PatientID"))
    return out, str(ds.get("SOPInstanceUID", "") or "") or None


def pseudonymous_names(patient_id: str) -> set[str]:
    """The PatientName values a de-identified object with this PatientID may carry: the ID itself,
    or the de-identifier's name for it (deid.pseudonym: `ANON<code>` is named `ANON^<code>`)."""
    names = {patient_id} if patient_id else set()
    if patient_id.startswith("ANON") and len(patient_id) > 4:
        names.add(f"ANON^{patient_id[4:]}")
    return names


def content_problems(files: Iterable[tuple[str, bytes]], raw_sha256: set[str] | None = None) -> list[ContentProblem]:
    """Check every released DICOM: images as they come (one in memory at a time), labels last,
    against the SOP Instance UIDs of the images. `files`: (release path, bytes) of its .dcm files."""
    labels: list[tuple[str, bytes]] = []
    out: list[ContentProblem] = []
    released: set[str] = set()
    for path, data in files:
        if path.startswith("labels/"):
            labels.append((path, data))
            continue
        problems, uid = image_problems(path, data, raw_sha256)
        out += problems
        if uid:
            released.add(uid)
    for path, data in labels:
        out += label_problems(path, data, released)
    return out


__all__ = ["ContentProblem", "DCIODVFY", "content_problems", "dciodvfy_errors", "image_problems", "is_dicom_path",
           "label_problems", "referenced_instances"]
