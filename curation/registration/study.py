"""The `register` stage on one study: motion-correct each 4D series, co-register every series to the
study's static series, write each result as a new derived DICOM series, with metrics and review PNGs.

Entry point for the pipeline: `register_study(series_dirs, out_dir, config)`; see its docstring.
Outputs under `out_dir`:
    <derived SeriesInstanceUID>/IM00001.dcm ...   one folder per derived series
    review/<derived SeriesInstanceUID>.png         fixed | before | after | checkerboard
    registration.json                              the result (StudyRegistration.to_dict())
The result's key is a hash of the inputs' content, the stage version and the configuration; the
derived UIDs are derived from it, so a recomputation gives the same UIDs. Whether to compute at all
is the stage layer's question (`curation.pipeline.idempotency`, keyed the same way), and publishing to
the derived zone is the register stage's (`curation.pipeline.register`): this module only computes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from pydicom.uid import generate_uid

from curation.confighash import config_hash
from curation.registration.config import load_config
from curation.registration.coregister import Registration, register_images
from curation.registration.motion import MotionCorrection, motion_correct
from curation.registration.review import review_png
from curation.registration.similarity import resample
from curation.registration.static import OUR_DERIVATION_PREFIX, SeriesInfo, choose_static, eligible, why
from curation.volume import DicomSeries, read_dicom_series, series_headers, write_dicom_series

log = logging.getLogger(__name__)

STAGE = "register"
STAGE_VERSION = "1"
_INTERP = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


@dataclass
class DerivedSeries:
    """One derived series written by the stage."""

    kind: str  # motion_corrected | coregistered
    source_series_uid: str
    series_instance_uid: str
    path: str
    instances: int
    review_png: str | None = None


@dataclass
class SeriesOutcome:
    """What the stage did with one input series."""

    source: str
    series_instance_uid: str | None
    role: str  # fixed | registered | motion_corrected_only | skipped
    reason: str | None = None
    motion: dict[str, Any] | None = None
    coregistration: dict[str, Any] | None = None
    derived: list[DerivedSeries] = field(default_factory=list)


@dataclass
class StudyRegistration:
    """The stage's result for one study (JSON-able via to_dict; no PHI: UIDs, numbers and paths)."""

    key: str
    fixed_series_uid: str | None
    fixed_reason: str
    config_hash: str
    series: list[SeriesOutcome]
    seconds: float

    @property
    def derived(self) -> list[DerivedSeries]:
        return [d for s in self.series for d in s.derived]

    @property
    def review_pngs(self) -> list[str]:
        return [d.review_png for d in self.derived if d.review_png]

    @property
    def metrics(self) -> dict[str, Any]:
        """Flat metrics per source series, for the catalog's stage result."""
        out: dict[str, Any] = {}
        for s in self.series:
            if s.series_instance_uid is None or s.role in ("fixed", "skipped"):
                continue
            m: dict[str, Any] = {}
            if s.coregistration:
                m.update(s.coregistration.get("metrics", {}))
                m["rotation_deg"] = s.coregistration.get("rotation_deg")
                m["translation_at_centre_mm"] = s.coregistration.get("translation_at_centre_mm")
            if s.motion:
                m["mean_framewise_displacement_mm"] = s.motion["mean_framewise_displacement_mm"]
                m["flagged_volumes"] = s.motion["flagged_volumes"]
                m["temporal_sd_in_head_before"] = s.motion["temporal_sd_in_head_before"]
                m["temporal_sd_in_head_after"] = s.motion["temporal_sd_in_head_after"]
            out[s.series_instance_uid] = m
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": STAGE,
            "stage_version": STAGE_VERSION,
            "key": self.key,
            "config_hash": self.config_hash,
            "fixed_series_uid": self.fixed_series_uid,
            "fixed_reason": self.fixed_reason,
            "seconds": round(self.seconds, 3),
            "series": [
                {**{k: v for k, v in s.__dict__.items() if k != "derived"},
                 "derived": [d.__dict__ for d in s.derived]}
                for s in self.series
            ],
            "derived": [d.__dict__ for d in self.derived],
            "review_pngs": self.review_pngs,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyRegistration:
        series = []
        for s in data["series"]:
            derived = [DerivedSeries(**d) for d in s.get("derived", [])]
            series.append(SeriesOutcome(**{k: v for k, v in s.items() if k != "derived"}, derived=derived))
        return cls(data["key"], data["fixed_series_uid"], data["fixed_reason"], data["config_hash"], series,
                   float(data["seconds"]))


def _content_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            h.update(hashlib.sha256(f.read_bytes()).digest())
        h.update(b"|")
    return h.hexdigest()


def _series_uid(path: Path) -> str | None:
    """SeriesInstanceUID of the first DICOM file under `path` (to name a series that is not a volume)."""
    for h in series_headers(path)[:1]:
        return str(h.get("SeriesInstanceUID", "")) or None
    return None


def _info(key: str, series: DicomSeries) -> SeriesInfo:
    v = series.volumes[0]
    sp = v.GetSpacing()
    return SeriesInfo(key=key, header=series.datasets[0][0], n_slices=v.GetSize()[2], n_volumes=len(series.volumes),
                      voxel_mm3=float(sp[0] * sp[1] * sp[2]))


def _same_frame(a: DicomSeries, b: DicomSeries) -> bool:
    """Both series declare one scanner frame of reference (FrameOfReferenceUID, present and equal)."""
    fa = str(a.datasets[0][0].get("FrameOfReferenceUID", "") or "")
    fb = str(b.datasets[0][0].get("FrameOfReferenceUID", "") or "")
    return bool(fa) and fa == fb


def _desc(ds: Any, suffix: str) -> str:
    base = str(ds.get("SeriesDescription", "") or "").strip()
    room = 64 - len(suffix) - 1
    return (base[:room] + " " + suffix).strip()


def _engine_words(params: Mapping[str, Any]) -> str:
    metric = "Mattes MI" if params.get("metric", "mattes") == "mattes" else "correlation"
    return f"{params.get('transform', 'rigid')}, {params.get('backend', 'simpleitk')}, {metric}"


def _series_parallelism(cfg: Mapping[str, Any], n_series: int) -> tuple[int, dict[str, Any]]:
    """How many series to register at once, and the configuration each then runs with.

    `threads` is the study's budget of cores: SimpleITK's threads synchronise at every iteration, which on
    these small volumes wastes much of a second core, while two series registered side by side on one
    thread each keep both busy (SimpleITK releases the GIL) and give the same result on every run (one
    thread is bit-for-bit reproducible, several drift by ~1e-4 mm; docs/benchmarks.md)."""
    threads = min(int(cfg["coregister"].get("threads", 1)), int(cfg["motion_correction"].get("threads", 1)))
    workers = max(1, min(threads, n_series))
    if workers == 1:
        return 1, dict(cfg)
    each = max(1, threads // workers)
    return workers, {**cfg, "coregister": {**cfg["coregister"], "threads": each},
                     "motion_correction": {**cfg["motion_correction"], "threads": each}}


def register_study(
    series_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: Mapping[str, Any] | None = None,
    fixed: str | os.PathLike[str] | None = None,
) -> StudyRegistration:
    """Motion-correct and co-register the series of one study.

    series_dirs: one folder per DICOM series of the study (de-identified zone, local paths).
    out_dir: where derived series, review PNGs and registration.json go (then to the derived zone).
    config: overrides of include/registration/default.yaml (the DAG's Params dict), e.g.
        {"coregister": {"transform": "affine"}, "motion_correction": {"reference_volume": 1}}.
    fixed: the static series' folder; default: chosen by `curation.registration.static`'s rule.
    Returns a StudyRegistration: `.derived` (series written), `.metrics` (per source series),
    `.review_pngs`, `.to_dict()` for XCom/catalog. Series that cannot be volumes (localizers,
    colour, single images) are listed as skipped with the reason; the study goes on.
    """
    started = time.perf_counter()
    cfg = load_config(config)
    chash = config_hash(cfg)
    paths = [Path(p) for p in series_dirs]
    fixed_path = Path(fixed) if fixed is not None else None
    if fixed_path is not None and fixed_path not in paths:
        paths.append(fixed_path)
    # The fixed series by content, not by folder: the pipeline copies a study into a fresh temp folder.
    fixed_id = None if fixed_path is None else _content_hash([fixed_path])
    key = hashlib.sha256(f"{STAGE}|{STAGE_VERSION}|{chash}|{fixed_id}|{_content_hash(paths)}".encode()).hexdigest()
    out = Path(out_dir)
    summary_path = out / "registration.json"
    out.mkdir(parents=True, exist_ok=True)

    outcomes: dict[str, SeriesOutcome] = {}
    loaded: dict[str, DicomSeries] = {}
    infos: list[SeriesInfo] = []
    study_cfg = cfg["study"]
    for p in paths:
        k = str(p)
        try:
            s = read_dicom_series(p)
        except (ValueError, OSError) as exc:
            outcomes[k] = SeriesOutcome(k, _series_uid(p), "skipped", f"not a volume: {exc}")
            continue
        info = _info(k, s)
        if not eligible(info, int(study_cfg["min_slices"]), study_cfg["modalities"]):
            reason = ("our own output" if info.ours else
                      f"modality {info.modality or '?'} / {info.n_slices} slices: not registered")
            outcomes[k] = SeriesOutcome(k, s.series_instance_uid, "skipped", reason)
            continue
        loaded[k] = s
        infos.append(info)

    if fixed_path is not None:
        static = next((i for i in infos if i.key == str(fixed_path)), None)
        if static is None:
            raise ValueError(f"the fixed series {fixed_path.name} is not a usable volume")
        fixed_reason = "given by the caller"
    else:
        static = choose_static(infos, int(study_cfg["min_slices"]), study_cfg["modalities"])
        fixed_reason = ("rule: " + why(static)) if static else "no 3D series to register to"
    fixed_series = loaded[static.key] if static else None
    fixed_uid = fixed_series.series_instance_uid if fixed_series else None
    if static is not None:
        outcomes[static.key] = SeriesOutcome(static.key, fixed_uid, "fixed", fixed_reason)
        log.info("register: static series chosen (%s)", fixed_reason)

    reviews = out / "review"
    offset = int(cfg["output"]["series_number_offset"])
    interp = _INTERP[cfg["output"]["interpolator"]]
    todo = [info for info in infos if static is None or info.key != static.key]
    workers, series_cfg = _series_parallelism(cfg, len(todo))

    def register_one(info: SeriesInfo) -> SeriesOutcome:
        s = loaded[info.key]
        outcome = SeriesOutcome(info.key, s.series_instance_uid, "registered")
        seed = f"{key}|{s.series_instance_uid}"
        src0 = s.datasets[0][0]
        src_number = int(src0.get("SeriesNumber", 0) or 0)
        moco: MotionCorrection | None = None
        try:
            if s.is_4d:
                mc_params = series_cfg["motion_correction"]
                moco = motion_correct(s.volumes, mc_params, cfg["output"]["interpolator"])
                outcome.motion = moco.to_dict()
                if not moco.moved:
                    outcome.reason = (f"no motion: every volume's coarse check moved the head less than "
                                      f"{mc_params.get('aligned_below_mm')} mm; no motion-corrected copy written")
                if cfg["output"]["motion_corrected"] and moco.moved:
                    uid = generate_uid(entropy_srcs=[seed, "moco"])
                    written = write_dicom_series(
                        moco.corrected, out / uid, s.datasets,
                        f"{OUR_DERIVATION_PREFIX} inter-volume motion correction ({_engine_words(mc_params)}) "
                        f"to volume {moco.reference + 1}, resampled onto its grid; config {chash}",
                        series_description=_desc(src0, "MOCO"), series_number=src_number + offset,
                        uid_seed=seed + "|moco", series_instance_uid=uid, source_matrices=moco.matrices)
                    worst = int(np.argmax(moco.displacement_mm))
                    png = review_png(s.volumes[moco.reference], s.volumes[worst], moco.matrices[worst],
                                     reviews / f"{written.series_instance_uid}.png",
                                     title=f"motion: volume {worst + 1} to {moco.reference + 1}, "
                                           f"FD {moco.framewise_displacement_mm[worst]:.2f} mm",
                                     tiles=int(cfg["review"]["checkerboard_tiles"]),
                                     tile_px=int(cfg["review"]["tile_px"]))
                    outcome.derived.append(DerivedSeries("motion_corrected", s.series_instance_uid,
                                                         written.series_instance_uid, str(written.path),
                                                         len(written.files), str(png)))
            if fixed_series is None:
                outcome.role = "motion_corrected_only" if moco else "skipped"
                outcome.reason = fixed_reason
                return outcome
            ref_index = moco.reference if moco else 0
            fixed_img = fixed_series.volumes[0]
            moving_ref = s.volumes[ref_index]
            reg: Registration = register_images(fixed_img, moving_ref, series_cfg["coregister"],
                                                same_frame=_same_frame(fixed_series, s))
            outcome.coregistration = reg.to_dict()
            aligned = reg.details.get("aligned")
            if aligned and aligned["kept_identity"]:
                outcome.reason = "; ".join(filter(None, [outcome.reason, (
                    f"aligned in scanner coordinates (frame of reference shared with the fixed series): the "
                    f"coarse check moved the head {aligned['coarse_moved_mm']:.3f} mm < {aligned['below_mm']} mm; "
                    f"identity kept, resampled onto the fixed grid only")]))
            if cfg["output"]["coregistered"]:
                # One resampling per volume: fixed -> reference volume -> volume i, composed.
                mats = [(moco.matrices[i] if moco else np.eye(4)) @ reg.matrix for i in range(len(s.volumes))]
                vols = [resample(v, fixed_img, m, interp) for v, m in zip(s.volumes, mats)]
                what = ("motion correction and " if moco else "") + "co-registration"
                uid = generate_uid(entropy_srcs=[seed, "reg"])
                written = write_dicom_series(
                    vols, out / uid, s.datasets,
                    f"{OUR_DERIVATION_PREFIX} {what} ({_engine_words(series_cfg['coregister'])}) to series "
                    f"{fixed_uid}, resampled onto its grid; config {chash}",
                    series_description=_desc(src0, "REG"), series_number=src_number + 2 * offset,
                    frame_of_reference_uid=str(fixed_series.datasets[0][0].get("FrameOfReferenceUID", "")) or None,
                    uid_seed=seed + "|reg", series_instance_uid=uid, source_matrices=mats)
                png = review_png(fixed_img, moving_ref, reg.matrix, reviews / f"{written.series_instance_uid}.png",
                                 title=f"series {src_number} to {int(fixed_series.datasets[0][0].get('SeriesNumber', 0) or 0)}"
                                       f"  MI {reg.metrics.get('mi_before', float('nan')):.3f}->"
                                       f"{reg.metrics.get('mi_after', float('nan')):.3f}",
                                 tiles=int(cfg["review"]["checkerboard_tiles"]), tile_px=int(cfg["review"]["tile_px"]))
                outcome.derived.append(DerivedSeries("coregistered", s.series_instance_uid,
                                                     written.series_instance_uid, str(written.path),
                                                     len(written.files), str(png)))
        except (RuntimeError, ValueError) as exc:  # one bad series must not stop the study
            log.warning("register: series failed: %s", type(exc).__name__)
            outcome.role = "failed"
            outcome.reason = f"{type(exc).__name__}: {str(exc)[:300]}"

        return outcome

    # Series of a study are independent: `workers` of them at once, each on its share of the threads.
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="register") as pool:
            for info, outcome in zip(todo, pool.map(register_one, todo)):
                outcomes[info.key] = outcome
    else:
        for info in todo:
            outcomes[info.key] = register_one(info)

    ordered = [outcomes[str(p)] for p in paths if str(p) in outcomes]
    result = StudyRegistration(key, fixed_uid, fixed_reason, chash, ordered, time.perf_counter() - started)
    fd, tmp = tempfile.mkstemp(prefix=".registration.", suffix=".json", dir=out)
    with os.fdopen(fd, "w") as fh:
        json.dump(result.to_dict(), fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, summary_path)
    log.info("register: %d derived series written, %d skipped, %.1f s", len(result.derived),
             sum(1 for s in ordered if s.role == "skipped"), result.seconds)
    return result


__all__ = ["DerivedSeries", "STAGE", "STAGE_VERSION", "SeriesOutcome", "StudyRegistration", "register_study"]
