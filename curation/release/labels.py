"""A release's consensus labels as DICOM: findings and boxes as SR TID 1500 (Measurement Report),
masks as binary SEG, both built with highdicom and referencing only the released (de-identified)
instances. The observer is the consensus method (a device), never a reader: readers stay
pseudonymous in the release's Parquet readings.

Every UID and date is derived from the release identity, not from randomness or the clock, so
rebuilding a release gives byte-identical files (the manifest hash is the release's identity)."""
from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import highdicom as hd
import numpy as np
import pandas as pd
from pydicom import Dataset
from pydicom.sr.codedict import codes

SCHEME = "99CURATE"  # private coding scheme for project-defined labels and consensus methods
MANUFACTURER = "curate release"
SR_SERIES_NUMBER = 9101
SEG_SERIES_NUMBER = 9102
IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")
ABNORMAL = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure")
POSTERIOR = hd.sr.CodedConcept("posterior", SCHEME, "Consensus posterior probability")
N_READERS = hd.sr.CodedConcept("n-readers", SCHEME, "Number of readers")
NO_UNIT = hd.sr.CodedConcept("1", "UCUM", "no units")
READERS_UNIT = hd.sr.CodedConcept("{readers}", "UCUM", "readers")
UID_NAMESPACE = uuid.UUID("6f1c5e52-8d0e-5a4b-9a41-63757261746f")  # fixed: changing it changes every release UID


@dataclass(frozen=True)
class ReleaseIdentity:
    """What a label object belongs to: its UIDs are hashes of these plus the series and the
    object's kind, and its content date is the release date."""

    name: str
    version: str
    released_on: date

    def uid(self, *parts: object) -> hd.UID:
        """A UUID-derived UID (2.25.<int>, PS3.5 B.2) from a name-based UUID of the parts."""
        key = "\x00".join([self.name, self.version, *map(str, parts)])
        return hd.UID(f"2.25.{uuid.uuid5(UID_NAMESPACE, key).int}")

    @property
    def da(self) -> str:
        return self.released_on.strftime("%Y%m%d")


@dataclass(frozen=True)
class Finding:
    """One label's consensus on a series: value 1 present, 0 absent, None undecided (a tie)."""

    label: str
    value: int | None
    method: str
    n_readers: int
    posterior: float | None = None


@dataclass(frozen=True)
class Box:
    """One consensus rectangle in pixel coordinates (column x, row y) on one released instance;
    `frame` is the 1-based frame number in a multi-frame instance."""

    label: str
    sop_instance_uid: str
    x0: float
    y0: float
    x1: float
    y1: float
    method: str = "box"
    n_readers: int = 0
    frame: int | None = None


def _code_value(text: str) -> str:
    """A code value fits 16 characters (SH); longer names keep a prefix and a hash so two
    labels sharing their first 16 characters still get different codes."""
    return text if len(text) <= 16 else f"{text[:7]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def label_code(label: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(_code_value(label), SCHEME, label[:64])


def method_code(method: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(_code_value(method), SCHEME, f"consensus by {method}"[:64])


def consensus_findings(table: pd.DataFrame, item: str, *, method: str | None = None,
                       instance_uid: str | None = None) -> tuple[list[Finding], list[Box]]:
    """One item's rows of a `consensus_labels` table as findings and boxes. The table does
    not name its method (it is the query's argument): pass `method`, or concatenate tables
    with a `method` column. Rows with coordinates are boxes, drawn on the item's one image, so
    `instance_uid` names it; boxes with no instance named are refused rather than guessed."""
    if method is None and "method" not in table.columns:
        raise ValueError("name the consensus method: the table has no method column")
    findings: list[Finding] = []
    boxes: list[Box] = []
    for r in table[table["item"] == item].itertuples(index=False):
        how = str(getattr(r, "method", None) or method)
        if _present(r.x0):
            if instance_uid is None:
                raise ValueError(f"item {item} has boxes: name the instance they are drawn on")
            boxes.append(Box(label=r.label, sop_instance_uid=instance_uid, x0=float(r.x0), y0=float(r.y0),
                             x1=float(r.x1), y1=float(r.y1), method=how, n_readers=int(r.n_readers)))
        else:
            findings.append(Finding(label=r.label, value=int(r.value) if _present(r.value) else None,
                                    method=how, n_readers=int(r.n_readers),
                                    posterior=float(r.posterior) if _present(r.posterior) else None))
    return findings, boxes


def _present(v: object) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _rectangle(box: Box) -> np.ndarray:
    x0, x1 = sorted((box.x0, box.x1))
    y0, y1 = sorted((box.y0, box.y1))
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float64)


def in_patient_space(ds: Dataset) -> bool:
    """Whether an image's pixels are placed in patient space: a frame of reference with plane
    position (and orientation), as highdicom decides. A Frame of Reference UID alone (some
    secondary captures) places nothing: a SEG over it is one frame per instance, like a radiograph."""
    return hd.spatial.get_image_coordinate_system(ds) is not None


def _frames(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def _observer(identity: ReleaseIdentity, series_uid: str, n_readers: int) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=identity.uid(series_uid, "observer"), name=f"consensus of {n_readers} readers"[:64],
        manufacturer_name=MANUFACTURER, model_name=f"{identity.name} {identity.version}"[:64])
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def _algorithm(method: str, n_readers: int) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=f"{method} consensus of {n_readers} readers"[:64], version="1")


def _finding_group(identity: ReleaseIdentity, series_uid: str, f: Finding,
                   sources: Sequence[Dataset]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    value = {1: codes.SCT.Present, 0: codes.SCT.Absent}.get(f.value, codes.SCT.Indeterminate)
    measurements = [hd.sr.Measurement(name=N_READERS, value=float(f.n_readers), unit=READERS_UNIT)]
    if f.posterior is not None:
        measurements.insert(0, hd.sr.Measurement(name=POSTERIOR, value=float(f.posterior), unit=NO_UNIT))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=identity.uid(series_uid, "finding", f.label, f.method), identifier=f"{f.label} {f.method}"[:64]),
        finding_type=label_code(f.label), method=method_code(f.method), algorithm_id=_algorithm(f.method, f.n_readers),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=label_code(f.label), value=value)],
        measurements=measurements,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources],
    )


def _box_group(identity: ReleaseIdentity, series_uid: str, n: int, box: Box,
               by_uid: Mapping[str, Dataset]) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    src = by_uid.get(box.sop_instance_uid)
    if src is None:
        raise ValueError(f"box {n} ({box.label}) refers to {box.sop_instance_uid}, not a released instance")
    multi = _frames(src) > 1
    if multi and box.frame is None:
        raise ValueError(f"box {n} ({box.label}) is on a multi-frame instance: name its frame")
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=_rectangle(box),
        source_image=hd.sr.SourceImageForRegion.from_source_image(
            src, referenced_frame_numbers=[box.frame] if multi else None))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=identity.uid(series_uid, "box", n), identifier=f"{box.label} box {n}"[:64]),
        referenced_region=region, finding_type=label_code(box.label), method=method_code(box.method),
        algorithm_id=_algorithm(box.method, box.n_readers),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=label_code(box.label), value=codes.SCT.Present)],
    )


def _pin_dates(ds: Dataset, identity: ReleaseIdentity) -> None:
    """Replace the clock's dates and times highdicom set with the release date (midnight)."""
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = identity.da + "000000"
    for tag in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if tag in ds:
            setattr(ds, tag, identity.da)
    for tag in ("ContentTime", "SeriesTime", "InstanceCreationTime"):
        if tag in ds:
            setattr(ds, tag, "000000")


#: Type 3 sequences of the Patient and General Study modules that highdicom copies from the source images.
#: The de-identifier empties them (PS3.15 Annex E allows it), but in the label object an empty Type 3
#: sequence is invalid (dciodvfy: "Bad Sequence number of Items 0"): present means at least one item.
COPIED_TYPE3_SEQUENCES = ("ReferencedStudySequence", "ReferencedPatientSequence")


def _drop_empty_copied_sequences(ds: Dataset) -> None:
    """Remove the copied Type 3 sequences that arrived empty (absent is what an empty one means)."""
    for keyword in COPIED_TYPE3_SEQUENCES:
        if keyword in ds and not ds[keyword].value:
            delattr(ds, keyword)


def findings_sr(source_datasets: Sequence[Dataset], findings: Iterable[Finding], boxes: Iterable[Box] = (), *,
                identity: ReleaseIdentity, series_uid: str, instance_number: int = 1,
                manufacturer: str = MANUFACTURER) -> hd.sr.ComprehensiveSR:
    """TID 1500 Measurement Report of one released series: one measurement group per finding
    (present/absent/indeterminate, the method, the posterior and the number of readers), one
    planar ROI group per box (a closed SCOORD POLYLINE rectangle on its released instance, with
    its frame when multi-frame). Comprehensive SR suffices: every coordinate is 2D (SCOORD)."""
    sources = list(source_datasets)
    if not sources:
        raise ValueError("a findings report needs the released instances it describes")
    findings, boxes = sorted(findings, key=lambda f: (f.label, f.method)), list(boxes)
    by_uid = {str(s.SOPInstanceUID): s for s in sources}
    groups: list = [_finding_group(identity, series_uid, f, sources) for f in findings]
    groups += [_box_group(identity, series_uid, n, b, by_uid) for n, b in enumerate(boxes, start=1)]
    n_readers = max([f.n_readers for f in findings] + [b.n_readers for b in boxes] + [0])
    report = hd.sr.MeasurementReport(observation_context=_observer(identity, series_uid, n_readers),
                                     procedure_reported=IMAGING_PROCEDURE, imaging_measurements=groups)
    sr = hd.sr.ComprehensiveSR(
        evidence=sources, content=report[0], series_instance_uid=identity.uid(series_uid, "sr", "series"),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=identity.uid(series_uid, "sr", "instance", instance_number),
        instance_number=instance_number, manufacturer=manufacturer, is_complete=True,
        series_description=f"consensus findings, release {identity.name} {identity.version}"[:64],
    )
    _pin_dates(sr, identity)
    _drop_empty_copied_sequences(sr)
    return sr


def boxes_to_masks(boxes: Iterable[Box], source_datasets: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """Box-only labels as masks for a SEG: per label a bool array (frames, rows, cols) over the
    sources' frames in order (one per single-frame instance, or each frame of a multi-frame
    one); a box covers every pixel it touches."""
    sources = list(source_datasets)
    rows, cols = int(sources[0].Rows), int(sources[0].Columns)
    offsets, total = {}, 0
    for s in sources:
        offsets[str(s.SOPInstanceUID)] = (total, _frames(s))
        total += _frames(s)
    masks: dict[str, np.ndarray] = {}
    for b in boxes:
        if b.sop_instance_uid not in offsets:
            raise ValueError(f"box {b.label} refers to {b.sop_instance_uid}, not a released instance")
        start, n = offsets[b.sop_instance_uid]
        frame = start + ((b.frame or 1) - 1 if n > 1 else 0)
        x0, x1 = sorted((b.x0, b.x1))
        y0, y1 = sorted((b.y0, b.y1))
        m = masks.setdefault(b.label, np.zeros((total, rows, cols), dtype=bool))
        r0, r1 = max(0, math.floor(y0)), min(rows, math.ceil(y1))
        c0, c1 = max(0, math.floor(x0)), min(cols, math.ceil(x1))
        m[frame, r0:r1, c0:c1] = True
    return masks


def consensus_seg(source_datasets: Sequence[Dataset], masks: Mapping[str, np.ndarray], *,
                  identity: ReleaseIdentity, series_uid: str, method: str, n_readers: int,
                  instance_number: int = 1, manufacturer: str = MANUFACTURER,
                  software_version: str = "1") -> hd.seg.Segmentation:
    """Binary SEG of one released series: one segment per label (sorted, so numbering is
    stable), masks shaped (frames, rows, cols) over the sources' frames in order; empty frames
    are left out, as highdicom does by default. Sources without a frame of reference
    (projection radiographs) or with one but no plane geometry (secondary captures) allow
    only one frame per SEG: use `consensus_segs` for those."""
    sources = list(source_datasets)
    labels = sorted(masks)
    if not sources or not labels:
        raise ValueError("a segmentation needs released instances and at least one labelled mask")
    missing = [str(s.SOPInstanceUID) for s in sources if in_patient_space(s) and _frames(s) == 1
               and "SliceThickness" not in s]
    if missing:  # highdicom copies the source's Pixel Measures and fails (AttributeError) without it
        raise ValueError(f"{len(missing)} instance(s) have plane geometry but no Slice Thickness: no SEG over them")
    arr = np.stack([np.asarray(masks[label], dtype=bool) for label in labels], axis=-1)
    if arr.ndim == 3:
        arr = arr[np.newaxis]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"{method} consensus of {n_readers} readers"[:64], family=codes.cid7162.ManualProcessing,
        version=software_version)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=label[:64], segmented_property_category=ABNORMAL,
            segmented_property_type=label_code(label), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm, tracking_uid=identity.uid(series_uid, "seg", label),
            tracking_id=f"{label} {method} consensus"[:64])
        for n, label in enumerate(labels, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=identity.uid(series_uid, "seg", "series"),
        series_number=SEG_SERIES_NUMBER, sop_instance_uid=identity.uid(series_uid, "seg", "instance", instance_number),
        instance_number=instance_number, manufacturer=manufacturer, manufacturer_model_name="curate release",
        software_versions=software_version, device_serial_number="0", content_label="CONSENSUS",
        series_description=f"consensus masks, release {identity.name} {identity.version}"[:64],
    )
    if not in_patient_space(sources[0]):
        # No patient coordinate system: no frame of reference, or one without plane position and
        # orientation (a secondary capture may carry a Frame of Reference UID alone, which
        # highdicom copies). General Image's Patient Orientation is then Type 2C (required when
        # the image has no Image Orientation (Patient)) and highdicom leaves it out; its Pixel
        # Measures there lack Slice Thickness, which highdicom's own reader then refuses, and
        # the macro is only required with plane geometry (dciodvfy agrees)
        seg.PatientOrientation = sources[0].get("PatientOrientation", "")
        for group in seg.get("SharedFunctionalGroupsSequence", []):
            if "PixelMeasuresSequence" in group and "SliceThickness" not in group.PixelMeasuresSequence[0]:
                del group.PixelMeasuresSequence
    _pin_uids(seg, identity, series_uid)
    _pin_dates(seg, identity)
    _drop_empty_copied_sequences(seg)
    return seg


def consensus_segs(source_datasets: Sequence[Dataset], masks: Mapping[str, np.ndarray], *,
                   identity: ReleaseIdentity, series_uid: str, method: str, n_readers: int,
                   manufacturer: str = MANUFACTURER, software_version: str = "1") -> list[hd.seg.Segmentation]:
    """The SEG series of one released series: one SEG when the sources are placed in patient
    space (`in_patient_space`), else (projection radiographs, secondary captures: DICOM SEG can
    reference them one frame at a time) one SEG per single-frame instance that any mask touches,
    numbered in source order."""
    sources = list(source_datasets)
    if all(in_patient_space(s) for s in sources) or (len(sources) == 1 and _frames(sources[0]) == 1):
        return [consensus_seg(sources, masks, identity=identity, series_uid=series_uid, method=method,
                              n_readers=n_readers, manufacturer=manufacturer, software_version=software_version)]
    if any(_frames(s) > 1 for s in sources):
        raise ValueError("a multi-frame instance without a frame of reference cannot be segmented in DICOM SEG")
    out = []
    for i, src in enumerate(sources):
        touched = {label: np.asarray(m, dtype=bool)[i:i + 1] for label, m in masks.items() if np.asarray(m)[i].any()}
        if touched:
            out.append(consensus_seg([src], touched, identity=identity, series_uid=series_uid, method=method,
                                     n_readers=n_readers, instance_number=len(out) + 1, manufacturer=manufacturer,
                                     software_version=software_version))
    return out


def _pin_uids(seg: Dataset, identity: ReleaseIdentity, series_uid: str) -> None:
    """highdicom draws the dimension organisation UID at random: derive it from the release."""
    uid = identity.uid(series_uid, "seg", "dimension-organisation")
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = uid
    for item in seg.get("DimensionIndexSequence", []):
        if "DimensionOrganizationUID" in item:
            item.DimensionOrganizationUID = uid


__all__ = ["Box", "Finding", "ReleaseIdentity", "boxes_to_masks", "consensus_findings", "consensus_seg",
           "consensus_segs", "findings_sr", "in_patient_space", "label_code"]
