"""Small de-identified DICOM objects made from numpy arrays for the annotation tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# Values that must never come out of the service (planted in headers the pipeline "missed").
PLANTED_PHI = {
    "InstitutionName": "Saint Elsewhere Hospital",
    "OperatorsName": "Doe^Operator",
    "PatientAddress": "42 Harbour Street Springfield",
    "OtherPatientIDs": "MRN-99887766",
}


def file_dataset(sop_class: str) -> Dataset:
    """An empty object of this SOP class with its file meta (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    return ds


def ct_dataset(pixels: np.ndarray, *, study_uid: str, series_uid: str, frame_uid: str, index: int,
               plant_phi: bool = False) -> Dataset:
    """A CT image storage object (16-bit signed, HU via rescale) with pseudonymous patient fields."""
    ds = file_dataset(CTImageStorage)
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


# ---- objects of every photometric interpretation and bit depth (rendering tests) ----------------

def gradient(rows: int, cols: int, lo: float, hi: float, frames: int = 1, seed: int = 0) -> np.ndarray:
    """A ramp from lo to hi with a bright square and noise: any inversion, clipping or channel swap shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    out = []
    for f in range(frames):
        img = lo + (hi - lo) * (xx / max(1, cols - 1)) * 0.8
        img[rows // 4: rows // 2, cols // 5 + 4 * f: cols // 2 + 4 * f] = hi
        img += rng.normal(0, (hi - lo) * 0.02, img.shape)
        out.append(np.clip(img, lo, hi))
    arr = np.stack(out)
    return arr if frames > 1 else arr[0]


def colour_image(rows: int, cols: int, frames: int = 1, seed: int = 0) -> np.ndarray:
    """RGB uint8: red ramp across, green ramp down, a blue square, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    out = []
    for f in range(frames):
        rgb = np.zeros((rows, cols, 3), dtype=np.float64)
        rgb[..., 0] = 255 * xx / max(1, cols - 1)
        rgb[..., 1] = 255 * yy / max(1, rows - 1)
        rgb[rows // 3: 2 * rows // 3, cols // 3 + 3 * f: 2 * cols // 3 + 3 * f, 2] = 220
        rgb += rng.normal(0, 6, rgb.shape)
        out.append(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
    arr = np.stack(out)
    return arr if frames > 1 else arr[0]


def _base(modality: str, sop_class: str, rows: int, cols: int, frames: int) -> Dataset:
    ds = file_dataset(sop_class)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "ANON^0002", "PSEUDO-0002", "", "O"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "20200101", "120000", "", "", "1"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = modality, 1, 1, "synthetic"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def write_greyscale(path: Path, *, photometric: str = "MONOCHROME2", bits_stored: int = 16, signed: bool = False,
                    frames: int = 1, rows: int = 48, cols: int = 64, slope: float = 1.0, intercept: float = 0.0,
                    window: tuple[float, float] | None = None, seed: int = 0) -> Path:
    """A greyscale object (Secondary Capture, or CR-like for MONOCHROME1) of any bit depth and sign."""
    from pydicom.uid import SecondaryCaptureImageStorage

    allocated = 8 if bits_stored <= 8 else 16
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
    pixels = np.round(gradient(rows, cols, lo + (hi - lo) * 0.05, hi - (hi - lo) * 0.05, frames, seed)).astype(np.int64)
    ds = _base("CR" if photometric == "MONOCHROME1" else "OT", SecondaryCaptureImageStorage, rows, cols, frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, bits_stored, bits_stored - 1, int(signed)
    if slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    dtype = {(8, False): "u1", (8, True): "i1", (16, False): "<u2", (16, True): "<i2"}[(allocated, signed)]
    ds.PixelData = pixels.astype(dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_colour(path: Path, *, photometric: str = "RGB", frames: int = 1, rows: int = 48, cols: int = 64,
                 palette_bits: int = 8, seed: int = 0) -> Path:
    """A colour object: RGB, YBR_FULL, YBR_FULL_422 (uncompressed, subsampled as PS3.5 8.2.2 says) or
    PALETTE COLOR (8-bit indices, 8- or 16-bit LUT entries)."""
    from pydicom.pixels import convert_color_space
    from pydicom.uid import SecondaryCaptureImageStorage, UltrasoundMultiFrameImageStorage

    sop = UltrasoundMultiFrameImageStorage if frames > 1 else SecondaryCaptureImageStorage
    ds = _base("US" if frames > 1 else "OT", sop, rows, cols, frames)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    rgb = colour_image(rows, cols, frames, seed)
    if photometric == "PALETTE COLOR":
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        index = np.round(gradient(rows, cols, 0, 255, frames, seed)).astype(np.uint8)
        ramp = np.arange(256)
        lut = {"Red": ramp, "Green": 255 - ramp, "Blue": (ramp * 3) % 256}
        for colour, values in lut.items():
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, palette_bits])
            data = (values * 257 if palette_bits == 16 else values).astype("<u2").tobytes()
            ds.add_new(tag_for_keyword(f"{colour}PaletteColorLookupTableData"), "OW", data)
        ds.PixelData = index.tobytes()
    else:
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = photometric
        if photometric == "RGB":
            data = rgb
        else:
            ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
            data = ybr
            if photometric == "YBR_FULL_422":  # Y1 Y2 Cb Cr per pixel pair, chroma of the pair averaged
                flat = ybr.reshape(-1, cols, 3)
                y = flat[..., 0].reshape(-1, cols // 2, 2)
                cb = flat[..., 1].reshape(-1, cols // 2, 2).astype(np.int32).mean(axis=2).round().astype(np.uint8)
                cr = flat[..., 2].reshape(-1, cols // 2, 2).astype(np.int32).mean(axis=2).round().astype(np.uint8)
                data = np.stack([y[..., 0], y[..., 1], cb, cr], axis=-1)
        ds.PixelData = np.ascontiguousarray(data).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
