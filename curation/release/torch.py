"""A release as a torch Dataset: one item per series (a volume) or per instance (an image), with
the consensus of the release as the target. Images are read with SimpleITK from verified local
paths (`Release.path`), so what a model sees is exactly what the manifest lists; a series item
reads the release's NIfTI conversion of the series when it has one.

torch is imported here only: the rest of `curation.release` works without it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
import torch
from torch.utils.data import Dataset

from curation.release.reader import Release

UNITS = ("series", "instance")


def _is_dicom(path: str) -> bool:
    return path.lower().endswith(".dcm")


def _slice_order(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """DICOM files of one series in volume order (along the slice normal, else InstanceNumber) with
    their SOPInstanceUIDs, so masks line up with the volume's slices."""
    keyed = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        position = 0.0
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            o = np.asarray(ds.ImageOrientationPatient, dtype=float)
            position = float(np.dot(np.cross(o[:3], o[3:]), np.asarray(ds.ImagePositionPatient, dtype=float)))
        keyed.append((position, int(getattr(ds, "InstanceNumber", 0) or 0), str(path), str(ds.SOPInstanceUID)))
    keyed.sort()
    return [(Path(p), uid) for _, _, p, uid in keyed]


def read_volume(paths: Sequence[Path]) -> np.ndarray:
    """One series as an array: DICOM slices stacked in the given order (z, y, x); a single file
    (NIfTI, PNG, one DICOM) as SimpleITK reads it."""
    if len(paths) == 1:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(paths[0])))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in paths])
    return sitk.GetArrayFromImage(reader.Execute())


def read_image(path: Path) -> np.ndarray:
    """One instance: a 2D array (y, x), or (frames, y, x) for a multi-frame object or a volume file."""
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return array[0] if array.ndim == 3 and array.shape[0] == 1 else array


class ReleaseDataset(Dataset):
    """Items of one split of a release: `(image, target)` with image a float32 tensor of the image's
    shape ((z, y, x) for a series, z = 1 for a single image; (y, x) for an instance) after `transform`, and target a dict:
    `series`, `labels` (float32 per name in `self.labels`: 1 yes, 0 no, NaN no consensus), `boxes`
    (N, 4: x0, y0, x1, y1 in pixels) and `box_labels` (indices into `self.labels`), plus `instance`
    for instance items and `masks` (segments, *image shape) with `mask_labels` where the release
    holds a DICOM SEG of the series. Consensus boxes are drawn on an annotation item's one image:
    instance items carry them only when their series has a single instance."""

    def __init__(self, release: Release, split: str | None = "train", unit: str = "series",
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 labels: Sequence[str] | None = None) -> None:
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
        self.release = release.split(split) if split is not None else release
        self.unit, self.transform = unit, transform
        consensus = self.release.consensus
        found = sorted(set(consensus["label"].dropna()))
        self.labels = list(labels) if labels is not None else found
        self._matrix = self.release.label_matrix(self.labels)
        self._segs: dict[str, list[Path]] | None = None
        series = list(self.release.series["series"])
        if unit == "series":
            self.items: list[tuple[str, str | None]] = [(s, None) for s in series]
        else:
            self.items = [(s, p) for s in series for p in self.release.series_files(s)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        series, path = self.items[index]
        files = self.release.series_files(series)
        target: dict[str, Any] = {"series": series, "labels": torch.tensor(self._label_row(series), dtype=torch.float32)}
        if path is None:
            array, uids = self._volume(series, files)
        else:
            target["instance"] = path
            local_one = self.release.path(path)
            array = read_image(local_one)
            uids = [str(pydicom.dcmread(local_one, stop_before_pixels=True).SOPInstanceUID)] if _is_dicom(path) else []
        boxes = self.release.boxes(series) if path is None or len(files) == 1 else None
        target.update(self._boxes(boxes))
        masks = self._masks(series, uids, array.shape)
        if masks is not None:
            target["masks"], target["mask_labels"] = masks
        image = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.transform is not None:
            image = self.transform(image)
        return image, target

    def _volume(self, series: str, files: list[str]) -> tuple[np.ndarray, list[str]]:
        """A series item's array and its instances' SOPInstanceUIDs in slice order (what masks are
        laid on). The release's NIfTI conversion where it has one (one file to fetch and read; its
        slices are ordered along the normal as `_slice_order` orders the DICOM), else the DICOM
        stacked; the DICOM headers are read for the UIDs only when the series has a SEG."""
        nifti = self.release.nifti_file(series)
        dicom = all(_is_dicom(p) for p in files)
        if nifti is not None:
            array = read_volume([self.release.path(nifti)])
            needs_uids = dicom and bool(self._seg_files().get(series))
            uids = [u for _, u in _slice_order([self.release.path(p) for p in files])] if needs_uids else []
            return array, uids
        local = [self.release.path(p) for p in files]
        ordered = _slice_order(local) if dicom else [(p, "") for p in local]
        return read_volume([p for p, _ in ordered]), [u for _, u in ordered]

    def _label_row(self, series: str) -> list[float]:
        if series not in self._matrix.index:
            return [math.nan] * len(self.labels)
        return [float(v) for v in self._matrix.loc[series, self.labels]]

    def _boxes(self, table: Any) -> dict[str, torch.Tensor]:
        if table is None or len(table) == 0:
            return {"boxes": torch.zeros((0, 4), dtype=torch.float32), "box_labels": torch.zeros(0, dtype=torch.int64)}
        index = {name: i for i, name in enumerate(self.labels)}
        coords = table[["x0", "y0", "x1", "y1"]].astype("float64").to_numpy()
        names = [index.get(label, -1) for label in table["label"]]
        return {"boxes": torch.tensor(coords, dtype=torch.float32), "box_labels": torch.tensor(names, dtype=torch.int64)}

    def _seg_files(self) -> dict[str, list[Path]]:
        """SEG objects among the release's label files, by the SeriesInstanceUID they segment."""
        if self._segs is None:
            self._segs = {}
            for entry in sorted(self.release.manifest.entries):
                if entry.role != "label" or not _is_dicom(entry.path):
                    continue
                local = self.release.path(entry.path)
                ds = pydicom.dcmread(local, stop_before_pixels=True)
                if ds.get("Modality") != "SEG":
                    continue
                for ref in ds.get("ReferencedSeriesSequence", []):
                    self._segs.setdefault(str(ref.SeriesInstanceUID), []).append(local)
        return self._segs

    def _masks(self, series: str, uids: list[str], shape: tuple[int, ...]) -> tuple[torch.Tensor, list[str]] | None:
        """Masks of the series' SEGs over the given instances in order, shaped (segments, *shape)."""
        segs = self._seg_files().get(series) if uids else None
        if not segs:
            return None
        import highdicom as hd

        by_label: dict[str, np.ndarray] = {}
        rows_cols = shape[-2:]
        for path in segs:
            seg = hd.seg.segread(path)
            covered = {sop for _, _, sop in seg.get_source_image_uids()}
            wanted = [u for u in uids if u in covered]
            if not wanted:
                continue
            numbers = list(seg.segment_numbers)
            pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=wanted, segment_numbers=numbers,
                                                       assert_missing_frames_are_empty=True)
            for k, number in enumerate(numbers):
                label = str(seg.get_segment_description(number).segment_label)
                full = by_label.setdefault(label, np.zeros((len(uids), *rows_cols), dtype=bool))
                for j, uid in enumerate(wanted):
                    full[uids.index(uid)] |= pixels[j, :, :, k].astype(bool)
        if not by_label:
            return None
        names = sorted(by_label)
        stacked = np.stack([by_label[n].reshape(shape) if by_label[n].size == int(np.prod(shape))
                            else by_label[n] for n in names])
        return torch.from_numpy(stacked), names


def keep_dicts(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """A DataLoader collate that keeps each item's image and target as they are (shapes differ)."""
    return [image for image, _ in batch], [target for _, target in batch]


__all__ = ["ReleaseDataset", "UNITS", "keep_dicts", "read_image", "read_volume"]
