"""`croissant.json`: the release described in MLCommons Croissant 1.0 (JSON-LD on schema.org), so ML
tools (mlcroissant, TFDS, Hugging Face, Kaggle) can find and load it.

It names the release (`name@version`, which is also what to cite: the manifest's own hash cannot be
inside a file the manifest lists), its license and description, its files (each table a FileObject
with its SHA-256; the DICOM, NIfTI and label objects as FileSets by glob, their per-file hashes
being in the manifest) and record sets for the series and readings tables, field by field with
their Arrow types. Written as indented JSON in a fixed key order: the same release, the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa

from curation.release.manifest import NIFTI_ROLE, ROLES, ManifestEntry
from curation.release.tables import (
    AGREEMENT_TABLE,
    CONSENSUS_TABLE,
    READING_SCHEMA,
    READINGS_TABLE,
    SERIES_SCHEMA,
    SERIES_TABLE,
)

CROISSANT_JSON = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
#: The license a release carries until its data owner names one (ReleaseSpec.license).
LICENSE_PLACEHOLDER = "unspecified: ask the data owner"
#: Croissant's JSON-LD context for version 1.0 (as the specification's examples spell it).
CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty", "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract",
    "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath",
    "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform"}
PARQUET, JSON_MIME, DICOM_MIME, NIFTI_MIME = ("application/x-parquet", "application/json", "application/dicom",
                                              "application/x-nifti")
#: Croissant data types of the tables' Arrow types (a list of names is a repeated text field).
DATA_TYPES = {pa.string(): "sc:Text", pa.int64(): "sc:Integer", pa.float64(): "sc:Float", pa.bool_(): "sc:Boolean",
              pa.list_(pa.string()): "sc:Text"}
#: What each column of the described tables holds (docs/releases.md says more).
DESCRIPTIONS = {
    "series": "De-identified SeriesInstanceUID (or a non-DICOM image's content hash): the series key.",
    "patient": "Pseudonymous patient ID.", "study": "De-identified StudyInstanceUID.",
    "site": "The site the series was ingested from.", "split": "Patient-level split (train/validation/test).",
    "format": "Source format (dicom, png, ...).", "modality": "DICOM Modality.", "kind": "Series kind (classifier).",
    "body_part": "Body part (classifier).", "n_files": "Number of released files of the series.",
    "content_sha256": "SHA-256 over the series' released paths and file hashes.",
    "final_decision": "Final quality decision.", "decision_source": "Who decided: human review or model.",
    "decision_reason": "Why.", "reviewers": "Pseudonyms of the human reviewers.",
    "model_decision": "The quality model's decision.", "quality_metrics": "Quality metrics (JSON).",
    "attributes": "Classifier output (JSON).", "round": "Annotation round id.", "reader": "Reader pseudonym.",
    "reader_passes_qc": "Whether the reader passed the round's QC.", "reader_qc_flags": "QC rules the reader tripped.",
    "record": "label or roi.", "label": "Label name.", "ordinal": "n-th region of the task and label.",
    "value": "Answer (1 yes, 0 no).", "confidence": "Reader's confidence.", "seconds": "Time spent.",
    "roi_kind": "box, freehand or mask.", "instance": "0-based index of the instance in the series.",
    "frame": "Frame number.", "x0": "Box left (pixels).", "y0": "Box top (pixels).", "x1": "Box right (pixels).",
    "y1": "Box bottom (pixels).", "points": "Freehand points (JSON).",
    "mask": "Consensus mask of one slice: {rows, columns, rle} run lengths, background first (JSON).", "is_gold": "Whether the item is a gold item."}


@dataclass(frozen=True)
class DatasetCard:
    """What croissant.json says of the release besides its files: identity, license, description."""

    name: str
    version: str
    released_on: date
    license: str = LICENSE_PLACEHOLDER
    description: str = ""

    @property
    def cite_as(self) -> str:
        return f"{self.name}@{self.version}"


def _file_object(entry: ManifestEntry, fmt: str, description: str) -> dict[str, Any]:
    return {"@type": "cr:FileObject", "@id": entry.path, "name": entry.path, "description": description,
            "contentUrl": entry.path, "contentSize": f"{entry.size} B", "encodingFormat": fmt, "sha256": entry.sha256}


def _file_set(set_id: str, fmt: str, include: str, description: str) -> dict[str, Any]:
    return {"@type": "cr:FileSet", "@id": set_id, "name": set_id, "description": description, "encodingFormat": fmt,
            "includes": include}


def _record_set(set_id: str, path: str, schema: pa.Schema, description: str, key: str | None,
                references: dict[str, str]) -> dict[str, Any]:
    fields = []
    for column in schema:
        field: dict[str, Any] = {"@type": "cr:Field", "@id": f"{set_id}/{column.name}", "name": column.name,
                                 "description": DESCRIPTIONS.get(column.name, column.name),
                                 "dataType": DATA_TYPES[column.type],
                                 "source": {"fileObject": {"@id": path}, "extract": {"column": column.name}}}
        if pa.types.is_list(column.type):
            field["repeated"] = True
        if column.name in references:
            field["references"] = {"field": {"@id": references[column.name]}}
        fields.append(field)
    out: dict[str, Any] = {"@type": "cr:RecordSet", "@id": set_id, "name": set_id, "description": description}
    if key:
        out["key"] = {"@id": f"{set_id}/{key}"}
    out["field"] = fields
    return out


def croissant_json(card: DatasetCard, entries: list[ManifestEntry]) -> bytes:
    """croissant.json of a release whose files so far are `entries` (the tables must be among them)."""
    by_path = {e.path: e for e in entries}
    distribution = [_file_object(by_path[SERIES_TABLE], PARQUET, "One row per released series."),
                    _file_object(by_path[READINGS_TABLE], PARQUET, "Every raw reading of the released series."),
                    _file_object(by_path[CONSENSUS_TABLE], PARQUET, "Each round's consensus per series and label."),
                    _file_object(by_path[AGREEMENT_TABLE], JSON_MIME, "Each round's agreement statistics with CIs.")]
    roles = {e.role for e in entries}
    distribution.append(_file_set("dicom-images", DICOM_MIME, "images/*/*/*/*.dcm",
                                  "De-identified DICOM instances by patient/study/series (SHA-256 per file in "
                                  "manifest.json)."))
    if NIFTI_ROLE in roles:
        distribution.append(_file_set("nifti-volumes", NIFTI_MIME, "images/*/*/*.nii.gz",
                                      "NIfTI conversions of volume series (SHA-256 per file in manifest.json)."))
    if ROLES["labels"] in roles:
        distribution.append(_file_set("dicom-labels", DICOM_MIME, "labels/*/*/*/*.dcm",
                                      "Consensus labels: DICOM SR TID 1500 and SEG (SHA-256 per file in "
                                      "manifest.json)."))
    record_sets = [
        _record_set("series", SERIES_TABLE, SERIES_SCHEMA, "The released series with their split and quality.",
                    "series", {}),
        _record_set("readings", READINGS_TABLE, READING_SCHEMA, "Every raw reading (compute your own consensus).",
                    None, {"series": "series/series"})]
    doc = {"@context": CONTEXT, "@type": "sc:Dataset", "name": card.name,
           "description": card.description or f"Release {card.cite_as} of curated medical images.",
           "conformsTo": CONFORMS_TO, "citeAs": card.cite_as, "license": card.license, "version": card.version,
           "datePublished": card.released_on.isoformat(), "distribution": distribution, "recordSet": record_sets}
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


__all__ = ["CONFORMS_TO", "CROISSANT_JSON", "DatasetCard", "LICENSE_PLACEHOLDER", "croissant_json"]
