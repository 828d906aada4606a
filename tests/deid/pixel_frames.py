"""Labelled pixel cases for the burned-in text tests (deterministic seeds): speckled ultrasound
frames with text in known boxes and anatomy (a lesion) beside it, DICOM wrapping, and an OCR
pass independent of the de-identifier's (pytesseract CLI over the whole image, sparse-text page
segmentation, 2x upscale and Otsu binarisation; the de-identifier reads line crops with
tesserocr in single-line mode)."""
from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

FONT = cv2.FONT_HERSHEY_SIMPLEX
US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"


def speckled_us(seed: int, shape: tuple[int, int] = (480, 640), amp: float = 30.0,
                lesion: tuple[int, int, int] | None = None) -> np.ndarray:
    """The reported frame: a blurred bright ellipse (tissue) on a dim background, speckle of
    amplitude ``amp`` everywhere; ``lesion`` (x, y, radius): a dark round lesion with a bright
    rim."""
    rng = np.random.default_rng(seed)
    h, w = shape
    base = np.full(shape, 20, np.float32)
    cv2.ellipse(base, (w // 2, h // 2 + 40), (int(w * 0.36), int(h * 0.36)), 0, 0, 360, 130, -1)
    base = cv2.GaussianBlur(base, (0, 0), 20)
    if lesion is not None:
        les = np.zeros(shape, np.float32)
        cv2.circle(les, lesion[:2], lesion[2] + 4, 70, -1)
        cv2.circle(les, lesion[:2], lesion[2], -90, -1)
        base += cv2.GaussianBlur(les, (0, 0), 2)
    img = base + rng.uniform(-amp, amp, shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def fan_us(seed: int, shape: tuple[int, int] = (480, 640), lesion: tuple[int, int, int] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """A B-mode sector (Rayleigh speckle over an organ, black outside the fan) and its fan mask."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r = np.hypot(yy - 40.0, xx - cols / 2)
    ang = np.arctan2(xx - cols / 2, yy - 40.0)
    fan = (r > 30) & (r < rows - 30) & (np.abs(ang) < np.deg2rad(40))
    echo = np.full(shape, 0.55)
    organ = (((xx - cols * 0.45) / 150) ** 2 + ((yy - rows * 0.55) / 90) ** 2) < 1
    echo[organ] = 0.8
    if lesion is not None:
        d = np.hypot(xx - lesion[0], yy - lesion[1])
        echo[d < lesion[2] + 5] = 1.1
        echo[d < lesion[2]] = 0.1
    img = 200 * echo * rng.rayleigh(0.5, shape) * np.exp(-r / (rows * 1.4))
    img[~fan] = 0
    return np.clip(img, 0, 255).astype(np.uint8), fan


def scale_for(px: int, thickness: int) -> float:
    """Hershey scale whose capital letters are ``px`` pixels high."""
    h1 = cv2.getTextSize("H", FONT, 1.0, thickness)[0][1]
    return px / h1


def draw(img: np.ndarray, text: str, org: tuple[int, int], px: int, thickness: int | None = None,
         value: int = 255) -> list[int]:
    """Draw white text (capitals ``px`` high) on a grey or RGB frame in place; returns the exact
    [x, y, w, h] box of its drawn pixels."""
    t = thickness or max(1, round(px / 14))
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.putText(mask, text, org, FONT, scale_for(px, t), 255, t, cv2.LINE_AA)
    on = mask > 0
    if img.ndim == 3:
        img[on] = np.maximum(img[on], (mask[on, None].astype(np.uint16) * value // 255).astype(np.uint8))
    else:
        img[on] = np.maximum(img[on], (mask[on].astype(np.uint16) * value // 255).astype(np.uint8))
    rr, cc = np.nonzero(mask >= 64)
    return [int(cc.min()), int(rr.min()), int(cc.max() - cc.min() + 1), int(rr.max() - rr.min() + 1)]


def text_pixels(img_shape: tuple[int, ...], text: str, org: tuple[int, int], px: int,
                thickness: int | None = None) -> np.ndarray:
    """Boolean mask of the clearly drawn pixels (>= 64 of 255) of a line drawn by ``draw``."""
    t = thickness or max(1, round(px / 14))
    mask = np.zeros(img_shape[:2], np.uint8)
    cv2.putText(mask, text, org, FONT, scale_for(px, t), 255, t, cv2.LINE_AA)
    return mask >= 64


def us_dicom(pixels: np.ndarray, name: str = "MCALLISTER^JOHANNA", pid: str = "48213377",
             flag: str | None = None) -> bytes:
    """A single-frame US object (grey or RGB) around ``pixels``, with the patient's identifiers."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = US_IMAGE_STORAGE, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, pid, "19610523"
    ds.AccessionNumber = "A7730912"
    ds.StudyDate = "20240304"
    if flag:
        ds.BurnedInAnnotation = flag
    rows, cols = pixels.shape[:2]
    ds.Rows, ds.Columns = rows, cols
    rgb = pixels.ndim == 3
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return pydicom.dcmread(io.BytesIO(data)).pixel_array


def independent_ocr(img: np.ndarray, min_conf: float = 50.0) -> str:
    """The words tesseract reads anywhere in a frame with confidence >= ``min_conf`` (readable,
    not speckle read as letters), by a route the de-identifier does not take: the tesseract CLI
    (pytesseract) on the whole image in sparse-text mode (--psm 11), on the grey image upscaled
    2x and inverted, and on its Otsu binarisation."""
    import pytesseract

    g = img if img.ndim == 2 else img.max(axis=2)
    if g.dtype != np.uint8:
        g = cv2.normalize(g, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    big = cv2.resize(g, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    _, otsu = cv2.threshold(big, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    out = []
    for im in (255 - big, 255 - otsu):
        d = pytesseract.image_to_data(im, config="--psm 11", output_type=pytesseract.Output.DICT, timeout=60)
        out += [t for t, c in zip(d["text"], d["conf"]) if t.strip() and float(c) >= min_conf]
    return " ".join(out)


def fragments(text: str, values: list[str], n: int = 4) -> list[str]:
    """The runs of ``n`` characters of any of ``values`` (letters and digits, case-insensitive)
    that occur in ``text``, compared word by word as read (OCR noise joins nothing)."""
    words = [re.sub(r"[^0-9a-z]", "", w) for w in text.lower().split()]
    words = [w for w in words if len(w) >= n]
    hits = []
    for v in values:
        v = re.sub(r"[^0-9a-z]", "", v.lower())
        for i in range(len(v) - n + 1):
            frag = v[i:i + n]
            if any(frag in w for w in words):
                hits.append(frag)
    return sorted(set(hits))
