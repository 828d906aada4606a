"""Writing small "scanner" DICOM series for tests, independently of curation.volume (so the loader
is checked against geometry we chose, not against its own writer)."""
from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"


def study_header(seed: int = 0, study_uid: str | None = None, frame_uid: str | None = None) -> Dataset:
    ds = Dataset()
    ds.PatientName = "TEST^REGISTRATION"
    ds.PatientID = f"REG{seed:04d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid or generate_uid(entropy_srcs=["study", str(seed)])
    ds.StudyDate = "20200101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""
    ds.FrameOfReferenceUID = frame_uid or generate_uid(entropy_srcs=["for", str(seed)])
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "TEST"
    ds.Modality = "MR"
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "HEAD"
    return ds


def write_series(
    volumes: sitk.Image | Sequence[sitk.Image],
    folder: Path,
    header: Dataset,
    series_number: int = 3,
    description: str = "t2_tse_tra",
    b_values: Sequence[float] | None = None,
    temporal: bool = False,
    slope: float = 1.0,
    intercept: float = 0.0,
    acquisition_3d: bool = True,
    te: float = 100.0,
    tr: float = 4000.0,
    shuffle_seed: int | None = 7,
) -> str:
    """Write volume(s) as a classic MR series, one file per slice, files named in random order."""
    vols = [volumes] if isinstance(volumes, sitk.Image) else list(volumes)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid(entropy_srcs=[str(folder), description])
    files = []
    instance = 0
    for v, vol in enumerate(vols):
        arr = sitk.GetArrayFromImage(vol).astype(np.float64)
        stored = np.clip(np.rint((arr - intercept) / slope), 0, 65535).astype(np.uint16)
        d = np.asarray(vol.GetDirection()).reshape(3, 3)
        for k in range(stored.shape[0]):
            instance += 1
            ds = Dataset()
            ds.update(header)
            ds.SOPClassUID = MR
            ds.SOPInstanceUID = generate_uid()
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.SeriesDescription = description
            ds.ProtocolName = description
            ds.InstanceNumber = instance
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "3D" if acquisition_3d else "2D"
            ds.EchoTime = te
            ds.RepetitionTime = tr
            ds.EchoTrainLength = 1
            ds.MagneticFieldStrength = 1.5
            ds.ImagePositionPatient = [f"{c:.6f}" for c in vol.TransformIndexToPhysicalPoint((0, 0, k))]
            ds.ImageOrientationPatient = [f"{c:.8f}" for c in np.concatenate([d[:, 0], d[:, 1]])]
            sp = vol.GetSpacing()
            ds.PixelSpacing = [f"{sp[1]:.6f}", f"{sp[0]:.6f}"]
            ds.SliceThickness = f"{sp[2]:.6f}"
            ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            if slope != 1.0 or intercept != 0.0:
                ds.RescaleSlope = f"{slope:g}"
                ds.RescaleIntercept = f"{intercept:g}"
            if b_values is not None:
                ds.DiffusionBValue = float(b_values[v])
                ds.DiffusionGradientOrientation = [0.0, 0.0, 0.0] if b_values[v] == 0 else [
                    float(x) for x in np.eye(3)[(v - 1) % 3]]
            if temporal:
                ds.TemporalPositionIdentifier = v + 1
                ds.NumberOfTemporalPositions = len(vols)
            ds.AcquisitionNumber = 1 if (b_values is None and not temporal) else v + 1
            ds.PixelData = stored[k].tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = MR
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            files.append(ds)
    names = [f"IM{i:05d}" for i in range(len(files))]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(names)
    for ds, name in zip(files, names):
        ds.save_as(folder / name, enforce_file_format=True)
    return series_uid


def oblique_direction(rx: float = 12.0, ry: float = -8.0, rz: float = 20.0) -> np.ndarray:
    from curation.registration.transforms import rigid_matrix

    return rigid_matrix((rx, ry, rz), (0.0, 0.0, 0.0))[:3, :3]
