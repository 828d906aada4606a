"""Sources of incoming files: a local folder, a zip/tar archive, an S3 prefix, a DICOMweb server.

Every source is turned into one shape, a list of local files with their path inside the source, so
that inspection, de-duplication and cataloguing have one code path. Archives are extracted safely:
no entry escapes the target, links are not followed, and size/count limits stop archive bombs.
Refused entries come back as `Refusal`s (with their bytes when readable, so nothing is lost).
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from curation.settings import settings
from curation.vocabulary import QuarantineReason

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one source may unpack (archive bombs, runaway exports)."""

    max_total_bytes: int = field(default_factory=lambda: settings().max_source_bytes)
    max_files: int = field(default_factory=lambda: settings().max_source_files)
    max_file_bytes: int = field(default_factory=lambda: settings().max_file_bytes)


@dataclass
class Refusal:
    """An entry of a source that was not even materialised, with why."""

    rel: str
    reason_code: str
    reason: str
    data: bytes | None = None


@dataclass
class Materialized:
    """A source turned into local files: (absolute path, path inside the source) pairs, sorted."""

    kind: str
    uri: str  # credentials removed
    files: list[tuple[Path, str]] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


class SourceError(Exception):
    """The source as a whole cannot be read (missing folder, unreachable server, bad URI)."""


def source_kind(uri: str) -> str:
    """folder | archive | s3 | dicomweb, from the URI's form."""
    if uri.startswith("s3://"):
        return "s3"
    if uri.startswith(("dicomweb+http://", "dicomweb+https://")) or (
        uri.startswith(("http://", "https://")) and "dicom-web" in uri
    ):
        return "dicomweb"
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    if path.lower().endswith(ARCHIVE_SUFFIXES):
        return "archive"
    return "folder"


def strip_credentials(uri: str) -> str:
    """The URI without user:password@ (the catalog and logs must not hold secrets)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


def materialize(uri: str, workdir: Path, limits: Limits | None = None) -> Materialized:
    """Make the source's files available locally under `workdir` (folders are used in place)."""
    limits = limits or Limits()
    kind = source_kind(uri)
    if kind == "folder":
        return _folder(uri, limits)
    if kind == "archive":
        return _archive(uri, workdir, limits)
    if kind == "s3":
        return _s3(uri, workdir, limits)
    return _dicomweb(uri, workdir, limits)


# -- folder -----------------------------------------------------------------------------------------

def _folder(uri: str, limits: Limits) -> Materialized:
    root = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser().resolve()
    if not root.is_dir():
        raise SourceError(f"source folder {root} does not exist or is not a directory")
    out = Materialized("folder", str(root))
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            try:
                st = path.lstat()
            except OSError:
                out.refusals.append(Refusal(rel, QuarantineReason.READ_ERROR, "file vanished or cannot be stat'ed"))
                continue
            if stat.S_ISLNK(st.st_mode):
                out.refusals.append(Refusal(rel, QuarantineReason.LINK,
                                            "symbolic link in the source folder (not followed)"))
                continue
            if not stat.S_ISREG(st.st_mode):
                out.refusals.append(Refusal(rel, QuarantineReason.NOT_REGULAR_FILE,
                                            "not a regular file (device, socket or FIFO)"))
                continue
            out.files.append((path, rel))
            if len(out.files) > limits.max_files:
                raise SourceError(f"source folder holds more than {limits.max_files} files (CURATE_MAX_SOURCE_FILES)")
    out.files.sort(key=lambda t: t[1])
    return out


# -- archives ---------------------------------------------------------------------------------------

def _safe_member_name(name: str) -> str | None:
    """The entry's normalised relative path, or None if it could escape the target directory."""
    if not name or "\x00" in name or "\\" in name:
        return None
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    if any(part == ".." for part in p.parts):
        return None
    parts = [part for part in p.parts if part not in ("", ".")]
    return "/".join(parts) if parts else None


class _Budget:
    """Counts bytes and files actually written (headers can lie about sizes)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.files = 0

    def take_file(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise SourceError(f"archive holds more than {self.limits.max_files} files: refused as an archive bomb")

    def take_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_total_bytes:
            raise SourceError(f"archive expands past {self.limits.max_total_bytes} bytes: refused as an archive bomb")


def _copy_limited(src, dst_path: Path, budget: _Budget, max_file_bytes: int) -> bool:  # noqa: ANN001
    """Stream an entry to disk under the budget; False if the entry alone is too large."""
    written = 0
    with open(dst_path, "wb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            budget.take_bytes(len(chunk))
            if written > max_file_bytes:
                break
            dst.write(chunk)
    if written > max_file_bytes:
        dst_path.unlink(missing_ok=True)
        return False
    return True


def _read_limited(src, budget: _Budget, max_bytes: int) -> bytes | None:  # noqa: ANN001
    chunks, n = [], 0
    while chunk := src.read(1 << 20):
        n += len(chunk)
        budget.take_bytes(len(chunk))
        if n > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _archive(uri: str, workdir: Path, limits: Limits) -> Materialized:
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"archive {path} does not exist")
    out = Materialized("archive", str(path))
    target = workdir / "archive"
    target.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits)
    try:
        if zipfile.is_zipfile(path):
            _extract_zip(path, target, out, budget, limits)
        elif tarfile.is_tarfile(path):
            _extract_tar(path, target, out, budget, limits)
        else:
            raise SourceError(f"{path.name} is neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise SourceError(f"archive {path.name} is damaged ({type(exc).__name__})") from exc
    out.files.sort(key=lambda t: t[1])
    return out


def _extract_zip(path: Path, target: Path, out: Materialized, budget: _Budget, limits: Limits) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            budget.take_file()
            name = _safe_member_name(info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == stat.S_IFLNK:
                out.refusals.append(Refusal(info.filename, QuarantineReason.ARCHIVE_LINK,
                                            "symbolic link inside the archive (not followed)"))
                continue
            if name is None:
                with zf.open(info) as src:
                    data = _read_limited(src, budget, limits.max_file_bytes)
                out.refusals.append(Refusal(info.filename, QuarantineReason.ARCHIVE_PATH_TRAVERSAL,
                                            "archive entry path escapes the extraction directory", data))
                continue
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                out.refusals.append(Refusal(info.filename, QuarantineReason.ARCHIVE_DUPLICATE_ENTRY,
                                            "archive holds this path twice"))
                continue
            try:
                with zf.open(info) as src:
                    ok = _copy_limited(src, dest, budget, limits.max_file_bytes)
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                dest.unlink(missing_ok=True)
                out.refusals.append(Refusal(name, QuarantineReason.ARCHIVE_ENTRY_CORRUPT,
                                            f"archive entry cannot be extracted ({type(exc).__name__})"))
                continue
            if not ok:
                out.refusals.append(Refusal(name, QuarantineReason.TOO_LARGE,
                                            f"entry exceeds {limits.max_file_bytes} bytes"))
                continue
            out.files.append((dest, name))


def _extract_tar(path: Path, target: Path, out: Materialized, budget: _Budget, limits: Limits) -> None:
    with tarfile.open(path, mode="r:*") as tf:
        for member in tf:
            if member.isdir():
                continue
            budget.take_file()
            if member.issym() or member.islnk():
                out.refusals.append(Refusal(member.name, QuarantineReason.ARCHIVE_LINK,
                                            "symbolic or hard link inside the archive (not followed)"))
                continue
            if not member.isfile():
                out.refusals.append(Refusal(member.name, QuarantineReason.NOT_REGULAR_FILE,
                                            "archive entry is a device, FIFO or other special file"))
                continue
            name = _safe_member_name(member.name)
            src = tf.extractfile(member)
            if src is None:
                out.refusals.append(Refusal(member.name, QuarantineReason.ARCHIVE_ENTRY_CORRUPT,
                                            "archive entry has no data"))
                continue
            if name is None:
                data = _read_limited(src, budget, limits.max_file_bytes)
                out.refusals.append(Refusal(member.name, QuarantineReason.ARCHIVE_PATH_TRAVERSAL,
                                            "archive entry path escapes the extraction directory", data))
                continue
            dest = target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                out.refusals.append(Refusal(member.name, QuarantineReason.ARCHIVE_DUPLICATE_ENTRY,
                                            "archive holds this path twice"))
                continue
            if not _copy_limited(src, dest, budget, limits.max_file_bytes):
                out.refusals.append(Refusal(name, QuarantineReason.TOO_LARGE,
                                            f"entry exceeds {limits.max_file_bytes} bytes"))
                continue
            out.files.append((dest, name))


# -- S3 ---------------------------------------------------------------------------------------------

def _s3(uri: str, workdir: Path, limits: Limits) -> Materialized:
    from curation.store.s3 import make_s3_client

    parts = urlsplit(uri)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    if not bucket:
        raise SourceError(f"S3 URI {uri!r} names no bucket")
    client = make_s3_client()
    out = Materialized("s3", f"s3://{bucket}/{prefix}")
    target = workdir / "s3"
    keys: list[tuple[str, int]] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                keys.append((obj["Key"], int(obj["Size"])))
                if len(keys) > limits.max_files:
                    raise SourceError(f"S3 prefix holds more than {limits.max_files} objects")
    except SourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore's error zoo
        raise SourceError(f"cannot list s3://{bucket}/{prefix} ({type(exc).__name__}: {exc})") from exc
    if sum(size for _, size in keys) > limits.max_total_bytes:
        raise SourceError(f"S3 prefix holds more than {limits.max_total_bytes} bytes")

    def fetch(item: tuple[str, int]) -> tuple[Path, str] | Refusal:
        key, size = item
        rel = key[len(prefix):].lstrip("/") if prefix and key.startswith(prefix) else key
        name = _safe_member_name(rel)
        if name is None:
            return Refusal(key, QuarantineReason.UNSAFE_KEY, "S3 key would escape the download directory")
        if size > limits.max_file_bytes:
            return Refusal(name, QuarantineReason.TOO_LARGE, f"object exceeds {limits.max_file_bytes} bytes")
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(bucket, key, str(dest))
        except Exception as exc:  # noqa: BLE001
            return Refusal(name, QuarantineReason.DOWNLOAD_FAILED, f"S3 download failed ({type(exc).__name__})")
        return dest, name

    with ThreadPoolExecutor(max_workers=8) as pool:
        for result in pool.map(fetch, keys):
            if isinstance(result, Refusal):
                out.refusals.append(result)
            else:
                out.files.append(result)
    out.files.sort(key=lambda t: t[1])
    return out


# -- DICOMweb ---------------------------------------------------------------------------------------

def dicomweb_session(uri: str):  # noqa: ANN201 - requests.Session
    """An HTTP session for a DICOMweb base URL; basic-auth credentials from the URI or from
    CURATE_DICOMWEB_USERNAME / CURATE_DICOMWEB_PASSWORD."""
    import requests

    parts = urlsplit(uri.removeprefix("dicomweb+"))
    session = requests.Session()
    current = settings()
    user = parts.username or current.dicomweb_username
    password = parts.password or current.dicomweb_password
    if user:
        session.auth = (user, password or "")
    return session


def _multipart_parts(content_type: str, body: bytes) -> Iterator[bytes]:
    """The payloads of a multipart/related response, byte for byte."""
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in msg.iter_parts():
        payload = part.get_payload(decode=True)
        if payload is not None:
            yield payload


def _dicomweb(uri: str, workdir: Path, limits: Limits) -> Materialized:
    import requests

    base = strip_credentials(uri.removeprefix("dicomweb+")).rstrip("/")
    session = dicomweb_session(uri)
    out = Materialized("dicomweb", base)
    target = workdir / "dicomweb"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'

    def get_json(url: str) -> list[dict]:
        r = session.get(url, headers={"Accept": "application/dicom+json"}, timeout=120)
        if r.status_code == 204:
            return []
        r.raise_for_status()
        return r.json() if r.content else []

    try:
        studies = get_json(f"{base}/studies?limit=100000")
    except requests.RequestException as exc:
        raise SourceError(f"DICOMweb server {base} cannot be queried ({type(exc).__name__})") from exc
    total = 0
    for study in studies:
        study_uid = study["0020000D"]["Value"][0]
        for series in get_json(f"{base}/studies/{study_uid}/series"):
            series_uid = series["0020000E"]["Value"][0]
            url = f"{base}/studies/{study_uid}/series/{series_uid}"
            try:
                r = session.get(url, headers={"Accept": accept}, timeout=600)
                r.raise_for_status()
            except requests.RequestException as exc:
                out.refusals.append(Refusal(f"{study_uid}/{series_uid}", QuarantineReason.DOWNLOAD_FAILED,
                                            f"WADO-RS retrieval of a series failed ({type(exc).__name__})"))
                continue
            folder = target / study_uid / series_uid
            folder.mkdir(parents=True, exist_ok=True)
            for i, payload in enumerate(_multipart_parts(r.headers["Content-Type"], r.content)):
                total += len(payload)
                if total > limits.max_total_bytes:
                    raise SourceError(f"DICOMweb source delivers more than {limits.max_total_bytes} bytes")
                dest = folder / f"{i:06d}.dcm"
                dest.write_bytes(payload)
                out.files.append((dest, dest.relative_to(target).as_posix()))
    out.files.sort(key=lambda t: t[1])
    return out


def cleanup(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
