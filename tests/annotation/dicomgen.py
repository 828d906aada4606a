"""Small de-identified DICOM objects made from numpy arrays for the annotation tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# Values that must never come out of the service (planted in headers the pipeline "missed").
PLANTED_PHI = {
    "InstitutionName": "Saint Elsewhere Hospital",
    "OperatorsName": "Doe^Operator",
    "PatientAddress": "42 Harbour Street Springfield",
    "OtherPatientIDs": "MRN-99887766",
}


def ct_dataset(pixels: np.ndarray, *, study_uid: str, series_uid: str, frame_uid: str, index: int,
               plant_phi: bool = False) -> Dataset:
    """A CT image storage object (16-bit signed, HU via rescale) with pseudonymous patient fields."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "ANON^0001", "PSEUDO-0001", "", "F"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "20200101", "120000", "", "", "1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, index + 1
    ds.Manufacturer = "synthetic"
    ds.ImagePositionPatient = [0.0, 0.0, float(index) * 2.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = pixels.astype("<i2").tobytes()
    if plant_phi:
        for key, value in PLANTED_PHI.items():
            setattr(ds, key, value)
        ds.add_new(0x00091010, "LO", "private clinic note")
    return ds


def phantom(rows: int, cols: int, seed: int) -> np.ndarray:
    """A disc of soft tissue with a bright lesion on air, in stored values (HU + 1024)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    img = np.zeros((rows, cols), dtype=np.float64)
    img[(yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 < (min(rows, cols) * 0.4) ** 2] = 1064
    cy, cx = rows * (0.35 + 0.3 * rng.random()), cols * (0.35 + 0.3 * rng.random())
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < (min(rows, cols) * 0.06) ** 2] = 1300
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 4000).astype(np.int16)


def write_series(folder: Path, n: int, rows: int = 64, cols: int = 64, seed: int = 0, plant_phi: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        ds = ct_dataset(phantom(rows, cols, seed * 1000 + i), study_uid=study, series_uid=series, frame_uid=frame,
                        index=i, plant_phi=plant_phi)
        path = folder / f"{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_multiframe(path: Path, frames: int = 3, rows: int = 64, cols: int = 64, seed: int = 0) -> Path:
    """A multi-frame CT-like object (Enhanced attributes omitted: a legacy multi-frame)."""
    ds = ct_dataset(phantom(rows, cols, seed), study_uid=generate_uid(), series_uid=generate_uid(),
                    frame_uid=generate_uid(), index=0)
    ds.NumberOfFrames = frames
    ds.PixelData = np.stack([phantom(rows, cols, seed + f) for f in range(frames)]).astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
