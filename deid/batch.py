"""De-identify a folder tree with a process pool (one Deidentifier per worker, built once), then
append the re-identification entries to the sealed vault map once, in the parent (with the
officer's public key only: the run can add entries but not read them)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deid.engine import Deidentifier
from deid.filemeta import deidentify_file, image_format, image_reid_entry
from deid.pool import process_pool, usable_workers
from deid.profile import Profile, load_profile
from deid.report import RunReport
from deid.vault import SEALED_MAP_NAME, SealedMap, folder_public_key, load_or_create_secret

_worker: Deidentifier | None = None
_dst: Path | None = None

SKIP_NAMES = {"DICOMDIR"}


def output_path(dst: Path, pseudonym: str, study: str, series: str, sop: str) -> Path:
    return dst / (pseudonym or "UNKNOWN") / study / series / f"{sop}.dcm"


def write_exclusive(path: Path, data: bytes) -> str:
    """Write atomically without overwriting: 'written'; 'unchanged' when the same bytes are
    already there (a rerun, or a duplicate input); 'conflict' when other bytes are."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
    except FileNotFoundError:  # its folder is made on first use, not asked for again per file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
    try:
        os.link(tmp, path)  # atomic and exclusive: fails if the name exists
        return "written"
    except FileExistsError:
        return "unchanged" if path.read_bytes() == data else "conflict"
    finally:
        tmp.unlink(missing_ok=True)


def process_image(data: bytes, fmt: str, dst: Path, rel: str) -> dict[str, Any]:
    """A PNG/JPEG (deid.raster) or NIfTI (deid.nifti) file: written as
    ``DST/<images|volumes>/<h>/<h>.<png|nii.gz>`` under its content-derived name."""
    r = deidentify_file(data, fmt, [rel])
    rec: dict[str, Any] = {"file": rel, "sha256": r.sha256, "status": r.status, "reason": r.reason,
                           "reason_code": r.reason_code, "counts": dict(r.counts),
                           "findings": [f.as_dict() for f in r.findings], "pixels": r.pixels}
    if r.status == "written" and r.data is not None:
        stem = r.name.split(".", 1)[0]
        out = dst / ("volumes" if fmt == "nifti" else "images") / stem / r.name
        if write_exclusive(out, r.data) == "unchanged":
            rec["status"] = "unchanged"
        rec["output"] = str(out.relative_to(dst))
        rec["reid"] = image_reid_entry(stem, data, fmt, r.sha256, [rel])  # sealed by the parent, as for DICOM
    return rec


def process_one(deider: Deidentifier, src: Path, dst: Path, rel: str) -> dict[str, Any]:
    data = src.read_bytes()
    fmt = image_format(rel, data[:348])
    if fmt is not None:
        return process_image(data, fmt, dst, rel)
    r = deider.deidentify(data, rel)
    rec: dict[str, Any] = {"file": rel, "sha256": r.sha256, "status": r.status, "reason": r.reason,
                           "reason_code": r.reason_code,
                           "counts": dict(r.counts), "findings": [f.as_dict() for f in r.findings],
                           "pixels": r.pixels}
    if r.status == "written" and r.data is not None:
        out = output_path(dst, r.pseudonym, r.study_uid, r.series_uid, r.sop_uid)
        state = write_exclusive(out, r.data)
        if state == "conflict":
            rec.update(status="quarantined", reason_code="conflict",
                       reason="another input maps to the same SOPInstanceUID with other content")
        elif state == "unchanged":
            rec["status"] = "unchanged"
        rec["output"] = str(out.relative_to(dst))
        rec["pseudonym"] = r.pseudonym
        rec["reid"] = r.reid
    return rec


def _init(profile: Profile, secret: bytes, dst: str) -> None:
    """A worker's state. A forked worker inherits the parent's (``_prepare``) and builds nothing;
    a spawned one (another start method) starts empty and builds its own."""
    global _worker, _dst
    os.environ["OMP_THREAD_LIMIT"] = "1"
    if _worker is None or _built_for is None or _built_for[0] is not profile or _built_for[1] != secret:
        _worker = Deidentifier(profile, secret)
    _dst = Path(dst)


#: the (profile, secret) the parent built ``_worker`` for (the profile held, so the identity
#: check cannot match another profile object later)
_built_for: tuple[Profile, bytes] | None = None


def _prepare(profile: Profile, secret: bytes, dst: str) -> None:
    """The parent builds the worker state once before the pool forks: the compiled profile and,
    when pixels are searched, the OCR engine (tesseract's model loading, ~0.1 s CPU) are then
    inherited by every worker instead of being built again in each. Only when OpenMP is held to
    one thread (no thread pool can exist across the fork)."""
    global _built_for
    _built_for = None
    _init(profile, secret, dst)
    _built_for = (profile, secret)
    if profile.clean_pixel_data and os.environ.get("OMP_THREAD_LIMIT") == "1":
        from deid.ocr import engine

        engine()
    _import_for_workers()


def _import_for_workers() -> None:
    """Import in the parent, before the fork, the modules each worker otherwise imports on its
    first object (the writer, Hyperscan for the byte verification, ``datetime.strptime``'s
    module): once instead of once per worker (~5 ms of each worker's first object)."""
    import _strptime  # noqa: F401  (what datetime.strptime imports on first use)

    import deid.writer  # noqa: F401

    try:
        import hyperscan  # noqa: F401
    except ImportError:  # optional: verification falls back to bytes.find
        pass


def _task(batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
    assert _worker is not None and _dst is not None
    return [process_one(_worker, Path(src), _dst, rel) for src, rel in batch]


def iter_files(src: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name not in SKIP_NAMES:
                yield Path(root) / name


def deidentify_tree(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    profile: Profile | str = "default",
    options: tuple[str, ...] = (),
    secret_file: str | os.PathLike,
    reid_map: str | os.PathLike | None = None,
    reid_public_key: str | os.PathLike | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> RunReport:
    """De-identify every file under ``src`` into ``dst``; returns the run report. The secret is
    created (0600) if missing; the map is sealed for ``reid_public_key`` (default beside the
    secret; a fresh vault gets a demo pair, see `deid.vault.folder_public_key`). Quarantined
    inputs are listed in the report only.
    ``batch_size``: files per task sent to a worker (default up to 8, fewer on small runs)."""
    src_p, dst_p = Path(src), Path(dst)
    if not src_p.is_dir():
        raise FileNotFoundError(f"source folder {src_p} does not exist")
    if dst_p.resolve() == src_p.resolve() or src_p.resolve() in dst_p.resolve().parents:
        raise ValueError("the output folder must not be inside the source folder")
    prof = load_profile(profile, options) if isinstance(profile, str) else profile.with_options(options)
    secret = load_or_create_secret(secret_file)
    vault = Path(secret_file).parent
    map_path = Path(reid_map) if reid_map else vault / SEALED_MAP_NAME
    public_key = folder_public_key(vault, Path(reid_public_key) if reid_public_key else None)
    dst_p.mkdir(parents=True, exist_ok=True)
    files = list(iter_files(src_p))
    n_workers = workers or min(os.cpu_count() or 1, 2 if len(files) > 8 else 1)
    if batch_size is None:
        # small batches keep both workers busy to the end (a batch of 16 US cines is ~1 s a
        # worker may wait for alone); a batch still costs far less to send than to process
        batch_size = max(1, min(8, len(files) // (8 * n_workers)))
    batches = [[(str(f), str(f.relative_to(src_p))) for f in files[i:i + batch_size]] for i in range(0, len(files), batch_size)]
    report = RunReport(prof)
    reid: dict[str, dict] = {}
    t0 = time.perf_counter()
    outputs: dict[str, str] = {}

    def take(recs: list[dict[str, Any]]) -> None:
        for rec in recs:
            out = rec.get("output")
            if out and rec["status"] in ("written", "unchanged"):
                if out in outputs and rec["status"] == "unchanged":
                    rec["status"] = "duplicate"  # a second input of this run gave the same object
                outputs[out] = rec["file"]
                for pid, info in (rec.pop("reid", None) or {}).items():
                    slot = reid.setdefault(pid, {"studies": {}})
                    slot.update({k: v for k, v in info.items() if k != "studies"})
                    slot["studies"].update(info.get("studies", {}))
            rec.pop("reid", None)
            report.add(rec)
            if progress:
                progress(report.files_seen, len(files), len(report.quarantined))

    n_workers = usable_workers(n_workers, "deid", len(files))  # 1 inside a Celery worker's task
    if n_workers <= 1:
        _init(prof, secret, str(dst_p))
        for b in batches:
            take(_task(b))
    else:
        _prepare(prof, secret, str(dst_p))
        with process_pool(n_workers, initializer=_init, initargs=(prof, secret, str(dst_p))) as pool:
            for recs in pool.map(_task, batches):
                take(recs)
    report.seconds = time.perf_counter() - t0
    if reid:
        SealedMap(map_path).append(reid, public_key)
    return report
