"""2D images in YCbCr: pydicom's pixel_array already gives RGB, so the quality stage must not
convert again (a JPEG YBR_FULL_422 or RLE YBR_FULL ultrasound series without burned-in text
reaches the deid zone in its own encoding)."""
from __future__ import annotations

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from curation.quality.series import _projection_image


def _us(path, pixels: np.ndarray, photometric: str) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.6.1", generate_uid(), "US"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PlanarConfiguration, ds.PhotometricInterpretation = 3, 0, photometric
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_ybr_full_image_reads_as_its_rgb(tmp_path):
    rng = np.random.default_rng(3)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), (0, 0), 2)
    ybr = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., [0, 2, 1]]
    _us(tmp_path / "rgb.dcm", rgb, "RGB")
    _us(tmp_path / "ybr.dcm", ybr, "YBR_FULL")
    a, _ = _projection_image([tmp_path / "rgb.dcm"])
    b, _ = _projection_image([tmp_path / "ybr.dcm"])
    assert a.shape == b.shape == rgb.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # YCbCr rounding only
