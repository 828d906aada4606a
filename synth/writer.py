"""Writes the site's files and keeps the ground truth in step with every byte written."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from pydicom.dataset import Dataset

from synth.dicomio import PhiScanner, SeriesCtx, encode
from synth.identity import Patient

SCHEMA = "curate-synth-ground-truth/1"


class SiteWriter:
    """Owns the output folder and the ground-truth record (files, series, PHI locations)."""

    def __init__(self, out: Path, record_phi_locations: bool = True) -> None:
        self.out = out
        self.files: dict[str, dict] = {}
        self.series: list[dict] = []
        self.studies: list[dict] = []
        self.phi_locations: list[dict] = []
        self.record_phi_locations = record_phi_locations
        self._scanners: dict[int, PhiScanner] = {}
        #: Some written datasets are kept (by relative path) for making the bad inputs from them.
        self.kept: dict[str, Dataset] = {}
        self.n_written = 0

    def scanner(self, patient: Patient) -> PhiScanner:
        s = self._scanners.get(patient.index)
        if s is None or len(s.text_values_source) != len(patient.text_phi):  # new study, new accession
            s = PhiScanner(patient, list(patient.text_phi))
            self._scanners[patient.index] = s
        return s

    # -- series and studies -----------------------------------------------------------------------
    def add_study(self, study) -> None:
        self.studies.append({
            "study_instance_uid": study.uid,
            "patient_id": study.patient.patient_id,
            "modality": study.modality,
            "study_date": study.da,
            "description": study.description,
            "body_part": study.body_part,
            "vendor": study.vendor.key,
            "accession_number": study.accession,
        })
        study.patient.add_phi(study.accession, study.study_id)

    def new_series(
        self,
        sctx: SeriesCtx,
        kind: str,
        *,
        plane: str | None,
        dimensions: str,
        contrast: bool,
        derived: bool,
        transfer_syntax: str,
        **extra,
    ) -> dict:
        rec = {
            "series_instance_uid": sctx.uid,
            "study_instance_uid": sctx.study.uid,
            "patient_id": sctx.study.patient.patient_id,
            "modality": sctx.modality,
            "kind": kind,
            "vendor": sctx.study.vendor.key,
            "series_description": sctx.description,
            "protocol_name": sctx.protocol,
            "plane": plane,
            "dimensions": dimensions,
            "contrast": contrast,
            "derived": derived,
            "body_part": sctx.body_part,
            "n_instances": 0,
            "files": [],
            "transfer_syntax": transfer_syntax,
            "degradation": {"type": None, "severity": 0},
            "motion": [],
            "burned_in_text": [],
            "burned_in_annotation_flag": None,
            "lesions": [],
        }
        rec.update(extra)
        self.series.append(rec)
        return rec

    # -- files ------------------------------------------------------------------------------------
    def instance_path(self, sctx: SeriesCtx, instance: int) -> str:
        p = sctx.study.patient
        return f"dicom/P{p.index + 1:05d}/{sctx.study.dir}/{sctx.dir}/IM{instance:04d}{sctx.extension}"

    def write_instance(
        self, ds: Dataset, sctx: SeriesCtx, rec: dict, instance: int, transfer_syntax: str, keep: bool = False
    ) -> str:
        """Encode, write, hash, scan for PHI and record one good instance of a series."""
        rel = self.instance_path(sctx, instance)
        if keep:  # before encoding: compression replaces PixelData in place
            self.kept[rel] = copy.deepcopy(ds)
        data = encode(ds, transfer_syntax)
        self._write(rel, data)
        if self.record_phi_locations:
            self.scanner(sctx.study.patient).scan(ds, rel, self.phi_locations)
        else:  # still learn the dates/UIDs as PHI values
            self.scanner(sctx.study.patient).scan(ds, rel, [])
        self.files[rel] = {
            "type": "dicom",
            "expected": "ingest",
            "sha256": hashlib.sha256(data).hexdigest(),
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "series_instance_uid": sctx.uid,
            "modality": sctx.modality,
            "transfer_syntax": transfer_syntax,
        }
        rec["files"].append(rel)
        rec["n_instances"] += 1
        return rel

    def write_other(
        self,
        rel: str,
        data: bytes,
        type_: str,
        expected: str,
        sop_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
        **extra,
    ) -> str:
        """Record a file that is not a good DICOM instance (bad inputs, PNG/JPEG, NIfTI)."""
        self._write(rel, data)
        entry = {
            "type": type_,
            "expected": expected,
            "sha256": hashlib.sha256(data).hexdigest(),
            "sop_instance_uid": sop_instance_uid,
            "series_instance_uid": series_instance_uid,
        }
        entry.update(extra)
        self.files[rel] = entry
        return rel

    def _write(self, rel: str, data: bytes) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.n_written += 1
