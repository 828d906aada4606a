"""PNG, JPEG and NIfTI files that carry a patient's identity everywhere such files carry text:
PNG text chunks (tEXt/zTXt/iTXt), eXIf and iCCP; JPEG EXIF, XMP, IPTC (APP13) and COM segments;
burned-in text in the pixels (light on dark, and dark on a light screenshot); NIfTI descrip,
aux_file, intent_name, db_name and an extension; and file names holding the name and the MRN."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from PIL import Image, ImageCms, PngImagePlugin

SURNAME, GIVEN, MRN = "Smith", "John", "84736251"
#: What must never appear in any output (lowercased; bytes and OCR)
IDENTIFIERS = (SURNAME.lower(), GIVEN.lower(), MRN)


def _speckle(shape: tuple[int, ...], seed: int, mean: float = 70.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(mean, 18.0, shape).clip(0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 0)


def radiograph(seed: int = 1) -> np.ndarray:
    """A grey radiograph-like image: a bright blurred ellipse (the body) on dark noise."""
    img = _speckle((256, 320), seed, 40.0).astype(np.float32)
    body = np.zeros_like(img)
    cv2.ellipse(body, (160, 140), (110, 90), 0, 0, 360, 120.0, -1)
    img = np.clip(img + cv2.GaussianBlur(body, (31, 31), 0), 0, 255)
    return img.astype(np.uint8)


def png_with_chunks() -> bytes:
    """A clean radiograph whose tEXt/zTXt/iTXt, eXIf and iCCP chunks name the patient."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"Patient: {GIVEN} {SURNAME}")
    info.add_text("Author", f"{SURNAME}^{GIVEN}", zip=True)
    info.add_itxt("Description", f"MRN {MRN}", lang="en", tkey="Beschreibung")
    exif = Image.Exif()
    exif[0x013B] = f"{GIVEN} {SURNAME}"  # Artist
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(radiograph()).save(buf, "PNG", pnginfo=info, exif=exif.tobytes(), icc_profile=icc)
    return buf.getvalue()


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_with_markers() -> bytes:
    """A colour photo whose EXIF (Artist, ImageDescription, XPAuthor), XMP (dc:creator), IPTC
    (By-line, Object Name) and COM segments name the patient."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([120 + 60 * np.sin(x / 40), 100 + 50 * np.cos(y / 30), 80 + 40 * np.sin((x + y) / 50)], -1)
    rgb = cv2.GaussianBlur((rgb + rng.normal(0, 6, rgb.shape)).clip(0, 255).astype(np.uint8), (3, 3), 0)
    exif = Image.Exif()
    exif[0x013B] = f"{GIVEN} {SURNAME}"
    exif[0x010E] = f"wound photo, MRN {MRN}"
    exif[0x9C9D] = f"{SURNAME} {GIVEN}".encode("utf-16-le")  # XPAuthor
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92, exif=exif.tobytes(), comment=f"{SURNAME} {GIVEN} {MRN}".encode())
    data = buf.getvalue()
    xmp = (b"http://ns.adobe.com/xap/1.0/\x00" + f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
           f'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
           f"<dc:creator>{GIVEN} {SURNAME}</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>".encode())

    def iptc(rec: int, ds: int, value: str) -> bytes:
        v = value.encode()
        return struct.pack(">BBBH", 0x1C, rec, ds, len(v)) + v

    block = iptc(2, 80, f"{SURNAME} {GIVEN}") + iptc(2, 5, MRN)
    res = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(block)) + block
    res += b"\x00" * (len(res) % 2)
    app13 = _segment(0xED, b"Photoshop 3.0\x00" + res)
    return data[:2] + _segment(0xE1, xmp) + app13 + data[2:]


def burned_in_png() -> bytes:
    """A grey speckled image with the patient's name and MRN burned in (light text, top left)."""
    img = radiograph(5)
    cv2.putText(img, f"{SURNAME.upper()} {GIVEN.upper()}", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    cv2.putText(img, f"ID {MRN}", (8, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def screenshot_png() -> bytes:
    """A viewer screenshot: flat light panels, dark text naming the patient, a radiograph inside."""
    s = np.full((360, 480, 3), 235, np.uint8)
    s[:36] = (40, 70, 150)
    s[36:, :120] = (215, 220, 228)
    s[60:340, 140:460] = cv2.resize(radiograph(7), (320, 280))[..., None]
    cv2.putText(s, f"{SURNAME} {GIVEN}", (6, 90), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    cv2.putText(s, MRN, (6, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    buf = io.BytesIO()
    Image.fromarray(s).save(buf, "PNG")
    return buf.getvalue()


def nifti_with_text(descrip: str = f"T1w {GIVEN} {SURNAME}") -> tuple[bytes, nib.Nifti1Image]:
    """A .nii.gz (int16 head-like volume, oblique affine, scaling) whose text fields and an
    extension name the patient."""
    rng = np.random.default_rng(11)
    z, y, x = np.mgrid[0:24, 0:28, 0:20]
    vol = (300 * (((x - 10) / 8.0) ** 2 + ((y - 14) / 11.0) ** 2 + ((z - 12) / 10.0) ** 2 < 1)
           + rng.normal(20, 5, x.shape)).astype(np.int16)
    c, s = np.cos(np.radians(6)), np.sin(np.radians(6))  # a slightly oblique scan, 0.9 x 0.95 x 1.2 mm
    affine = np.eye(4)
    affine[:3, :3] = np.array([[-c, -s, 0], [-s, c, 0], [0, 0, 1.0]]) @ np.diag([0.9, 0.95, 1.2])
    affine[:3, 3] = (90, -120, -60)
    img = nib.Nifti1Image(np.transpose(vol, (2, 1, 0)), affine)
    img.header.set_slope_inter(2.0, -5.0)
    img.header["descrip"] = descrip.encode()
    img.header["aux_file"] = f"{SURNAME}_{MRN}".encode()
    img.header["intent_name"] = SURNAME.encode()
    img.header["db_name"] = f"{GIVEN} {SURNAME}".encode()
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", f"Patient {SURNAME}^{GIVEN} MRN {MRN}".encode()))
    import gzip

    return gzip.compress(img.to_bytes(), mtime=0), img


def write_source(folder: Path) -> dict[str, str]:
    """The corpus as a source folder, file names holding the name and the MRN: {relative path: kind}."""
    files = {
        f"{SURNAME}_{GIVEN}/{SURNAME}_{GIVEN}_{MRN}_chest.png": (png_with_chunks(), "DX"),
        f"{SURNAME}_{GIVEN}/{SURNAME}^{GIVEN}_MRN{MRN}.jpg": (jpeg_with_markers(), "PHOTO"),
        f"{SURNAME}_{GIVEN}/burned_{MRN}.png": (burned_in_png(), "DX"),
        f"{SURNAME}_{GIVEN}/screen_{SURNAME}.png": (screenshot_png(), "SCREENSHOT"),
        f"{SURNAME}_{GIVEN}/{MRN}_{SURNAME}.nii.gz": (nifti_with_text()[0], "T1W"),
        # nothing but the name in descrip: no acquisition word stays, the kind is VOLUME
        f"{SURNAME}_{GIVEN}/{SURNAME}.nii": (nifti_with_text(f"{GIVEN} {SURNAME}")[1].to_bytes(), "VOLUME"),
    }
    for rel, (data, _kind) in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return {rel: kind for rel, (_data, kind) in files.items()}
