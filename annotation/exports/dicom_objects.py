"""DICOM SR (TID 1500 measurement report) and DICOM SEG built with highdicom, one per reading,
referencing the source instances (their cleaned copies, so no identifying attribute is copied)."""
from __future__ import annotations

from collections.abc import Callable

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from annotation import __version__, masks
from annotation.exports.readings import Reading

SCHEME = "99CURATE"  # private coding scheme for project-defined labels
MANUFACTURER = "curate annotation service"
IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging procedure")
ABNORMAL = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure")
CONFIDENCE = hd.sr.CodedConcept("confidence", SCHEME, "Reader confidence")

LoadDataset = Callable[[str], Dataset]


def label_code(reading: Reading, label_id: str) -> hd.sr.CodedConcept:
    name = reading.schema_labels.get(label_id, {}).get("name") or label_id
    return hd.sr.CodedConcept(label_id, SCHEME, name[:64])


def _closed(points: list[list[float]], kind: str) -> np.ndarray:
    if kind == "box":
        (x0, y0), (x1, y1) = points
        pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    else:
        pts = [list(p) for p in points]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    return np.asarray(pts, dtype=np.float64)


def build_sr(reading: Reading, load: LoadDataset) -> Dataset:
    """TID 1500: one planar ROI group per ROI (SCOORD on the source frame), one group for the
    classification labels (present/absent with the reader's confidence)."""
    sources = [load(inst.uri) for inst in reading.item.instances]
    groups: list = []
    for n, roi in enumerate(reading.rois, start=1):
        src = sources[roi["instance"]]
        frames = int(getattr(src, "NumberOfFrames", 1) or 1)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=_closed(roi["points"], roi["kind"]),
            source_image=hd.sr.SourceImageForRegion.from_source_image(
                src, referenced_frame_numbers=[roi["frame"] + 1] if frames > 1 else None),
        )
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{roi['kind']} ROI {n}"),
            referenced_region=region, finding_type=label_code(reading, roi["label"]),
        ))
    if reading.labels:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="classification"),
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(name=label_code(reading, lv["label"]),
                                            value=codes.SCT.Present if lv["value"] else codes.SCT.Absent)
                for lv in reading.labels
            ],
            measurements=[
                hd.sr.Measurement(name=hd.sr.CodedConcept(f"confidence-{lv['label']}"[:16], SCHEME,
                                                          f"Reader confidence: {lv['label']}"),
                                  value=float(lv["confidence"]), unit=codes.UCUM.Percent)
                for lv in reading.labels
            ],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources[:1]],
        ))
    observer = hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=reading.reader.replace("^", "_")),
    ))
    report = hd.sr.MeasurementReport(observation_context=observer, procedure_reported=IMAGING_PROCEDURE,
                                     imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=sources, content=report[0], series_instance_uid=generate_uid(), series_number=9001,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description=f"annotation task {reading.task_id}",
    )


def _mask(roi: dict, rows: int, cols: int) -> np.ndarray:
    """The ROI's pixels on its slice: a drawn mask as stored, a box or outline rasterised."""
    points, kind = roi.get("points"), roi["kind"]
    if kind == "mask":
        mask = masks.roi_mask(roi)
        if mask.shape != (rows, cols):
            raise ValueError(f"mask '{roi['label']}' is {mask.shape[0]} x {mask.shape[1]}, its image {rows} x {cols}")
        return mask
    img = Image.new("1", (cols, rows), 0)
    draw = ImageDraw.Draw(img)
    if kind == "box":
        (x0, y0), (x1, y1) = points
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1)
    else:
        draw.polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(img, dtype=bool)


def build_seg(reading: Reading, load: LoadDataset) -> list[Dataset]:
    """One binary SEG per source object the ROIs touch (a single-frame series counts as one),
    one segment per ROI label (a mask label's segment: the reader's masks of every slice)."""
    if not reading.rois:
        return []
    instances = reading.item.instances
    single_frame = all(i.frames == 1 for i in instances)
    groups: dict[tuple[int, ...], list[dict]] = {}
    for roi in reading.rois:
        key = tuple(range(len(instances))) if single_frame else (roi["instance"],)
        groups.setdefault(key, []).append(roi)
    out: list[Dataset] = []
    for key, rois in groups.items():
        sources = [load(instances[i].uri) for i in key]
        rows, cols = int(sources[0].Rows), int(sources[0].Columns)
        n_frames = len(sources) if single_frame else int(getattr(sources[0], "NumberOfFrames", 1) or 1)
        labels = sorted({r["label"] for r in rois})
        arr = np.zeros((n_frames, rows, cols, len(labels)), dtype=bool)
        for roi in rois:
            frame = key.index(roi["instance"]) if single_frame else roi["frame"]
            arr[frame, :, :, labels.index(roi["label"])] |= _mask(roi, rows, cols)
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=n, segment_label=label[:64], segmented_property_category=ABNORMAL,
                segmented_property_type=label_code(reading, label), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
                tracking_uid=generate_uid(), tracking_id=f"{label} by reader",
            )
            for n, label in enumerate(labels, start=1)
        ]
        out.append(_deidentified_as(sources[0], hd.seg.Segmentation(
            source_images=sources, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=9002,
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name="curate-annotation", software_versions=__version__, device_serial_number="0",
            content_label="ROIS", content_creator_name=reading.reader.replace("^", "_"),
            series_description=f"annotation task {reading.task_id}",
        )))
    return out


def _deidentified_as(source: Dataset, seg: Dataset) -> Dataset:
    """A SEG says Patient Identity Removed like its source; the standard then wants the method
    (Type 1C), which highdicom does not copy: the source's, else what this service knows."""
    if str(seg.get("PatientIdentityRemoved", "")).upper() == "YES" and "DeidentificationMethod" not in seg:
        if "DeidentificationMethodCodeSequence" in source:
            seg.DeidentificationMethodCodeSequence = source.DeidentificationMethodCodeSequence
        seg.DeidentificationMethod = source.get("DeidentificationMethod") or "de-identified source instances (curate deid)"
    return seg
