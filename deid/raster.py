"""De-identification of PNG and JPEG images: pixels only go on.

Metadata is not cleaned field by field but dropped whole: the decoded pixel values are re-encoded
into a new PNG that holds nothing but IHDR, IDAT and IEND. EXIF (with its GPS block, maker notes,
thumbnail), XMP, IPTC, PNG tEXt/zTXt/iTXt, JPEG COM and APPn segments and ICC profiles (whose
description is free text) cannot survive, because no writer call passes them on. Before that:
- EXIF orientation is applied to the pixels (the image displays as before without the tag);
- an ICC profile is applied (pixels converted to sRGB), then dropped;
- alpha is dropped (text hidden under a transparent area becomes visible and is searched);
- palette, CMYK, 1-bit and other modes become 8-bit grey or RGB; 16-bit grey stays 16-bit.
JPEG inputs are written as PNG: lossless from the decoded pixels, no second generation of loss.

Every PNG/JPEG is an image at risk (the secondary-capture rule for DICOM): burned-in text is
detected and masked with deid.pixels as for DICOM, then verified: readable text left outside the
masks, or a 4-character run of any stripped metadata / file-name word read by OCR, quarantines the
image; so does any such word (8+ characters) in the output bytes or any chunk other than IHDR,
IDAT, IEND. The output's name is derived from its content."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Iterable

import cv2
import numpy as np
from PIL import Image, ImageOps

from deid.filemeta import (PIXEL_TERM_MIN, ImageResult, byte_findings, fragment_hits, name_hints,
                           pseudonymous_name, terms_of)
from deid.ocr import OcrError
from deid.pixels import Box, residual_text, scrub_frames
from deid.verify import Finding

VERSION = "raster/1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The only chunks an output may hold: header, pixel data, end (no text, no ICC, no EXIF, no time)
ALLOWED_CHUNKS = (b"IHDR", b"IDAT", b"IEND")
MAX_PIXELS = 100_000_000  # Pillow's decompression-bomb guard, made explicit


def metadata_texts(im: Image.Image) -> list[str | bytes]:
    """Every text the container carries besides pixels: PNG text chunks, EXIF values (all IFDs),
    XMP, IPTC, JPEG comments, the ICC profile's description. Only to know what to search for:
    none of it is written."""
    texts: list[str | bytes] = []
    for k, v in (im.info or {}).items():
        if k in ("dpi", "gamma", "transparency", "aspect", "progression", "progressive", "jfif",
                 "jfif_version", "jfif_density", "jfif_unit", "interlace", "srgb", "adobe", "adobe_transform"):
            continue
        if isinstance(v, (str, bytes, bytearray)):
            texts.append(f"{k} " if isinstance(v, (bytes, bytearray)) else f"{k} {v}")
            if isinstance(v, (bytes, bytearray)) and k in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile"):
                texts.append(_printable(bytes(v)))
    for t in (getattr(im, "text", None) or {}).items():  # PNG tEXt/zTXt/iTXt
        texts.extend(t)
    try:
        exif = im.getexif()
        for ifd in (exif, *(exif.get_ifd(i) for i in (0x8769, 0x8825, 0xA005))):
            for v in ifd.values():
                if isinstance(v, (str, bytes)):
                    texts.append(v if isinstance(v, str) else _printable(v))
    except Exception:  # noqa: BLE001 - a damaged EXIF block is dropped anyway
        pass
    try:
        from PIL import IptcImagePlugin

        for v in (IptcImagePlugin.getiptcinfo(im) or {}).values():
            for item in v if isinstance(v, list) else [v]:
                texts.append(_printable(item) if isinstance(item, bytes) else str(item))
    except Exception:  # noqa: BLE001
        pass
    return texts


def _printable(b: bytes) -> str:
    """Runs of printable characters in binary metadata (EXIF, XMP, ICC, UTF-16 XP* tags)."""
    out = b.replace(b"\x00", b"").decode("latin-1")
    return "".join(c if c.isprintable() else " " for c in out)


def decode_pixels(im: Image.Image) -> np.ndarray:
    """The displayed pixels as (rows, cols) uint8/uint16 grey or (rows, cols, 3) uint8 RGB."""
    if getattr(im, "n_frames", 1) > 1:
        raise ValueError("multi-frame image (animated PNG, MPO): only single images are handled")
    if im.width * im.height > MAX_PIXELS:
        raise ValueError("image larger than the pixel limit")
    im = ImageOps.exif_transpose(im) or im
    icc = im.info.get("icc_profile")
    if icc and im.mode in ("RGB", "RGBA", "CMYK"):  # grey profiles: values kept as stored
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im if im.mode != "RGBA" else im.convert("RGB"), src,
                                           ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 - an unusable profile: pixel values as stored
            pass
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(im).astype(np.uint16)
    elif im.mode in ("I", "F"):
        a = np.asarray(im).astype(np.float64)
        lo, hi = float(a.min()), float(a.max())
        arr = (a if 0 <= lo and hi <= 65535 else (a - lo) * (65535.0 / max(hi - lo, 1e-9))).astype(np.uint16)
    elif im.mode in ("L", "1"):
        arr = np.asarray(im.convert("L"))
    elif im.mode in ("LA", "La"):
        arr = np.asarray(im.getchannel(0))
    else:  # RGB, RGBA, P, PA, CMYK, YCbCr, LAB, HSV...
        arr = np.asarray(im.convert("RGBA").convert("RGB") if im.mode in ("P", "PA") else im.convert("RGB"))
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        arr = np.ascontiguousarray(arr[..., 0])  # grey stored as RGB: one channel (what it is)
    return arr


def light_background(arr: np.ndarray) -> bool:
    """Whether most of the image is light (median above mid-grey): where text is dark."""
    g = arr if arr.ndim == 2 else arr.max(axis=2)
    top = 65535 if g.dtype == np.uint16 else 255
    return bool(np.median(g) > top / 2)


def encode_png(arr: np.ndarray) -> bytes:
    """A PNG of exactly these pixels with no ancillary chunk (OpenCV's writer adds none)."""
    img = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG in order (CRC checked); ValueError on a malformed stream."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    out, i = [], len(PNG_SIGNATURE)
    while i < len(data):
        n, typ = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        (crc,) = struct.unpack(">I", data[i + 8 + n:i + 12 + n])
        if zlib.crc32(typ + body) != crc:
            raise ValueError("PNG chunk CRC mismatch")
        out.append(typ)
        i += 12 + n
    return out


def verify_png(out: bytes, pixels: np.ndarray, terms: set[str]) -> list[Finding]:
    """The written bytes: only IHDR/IDAT/IEND, the masked pixels exactly, no stripped word (8+)."""
    findings: list[Finding] = []
    try:
        chunks = png_chunks(out)
    except (ValueError, struct.error):
        return [Finding("structure", "png", detail="output is not a well-formed PNG")]
    extra = sorted({c.decode("latin-1") for c in chunks if c not in ALLOWED_CHUNKS})
    if extra:
        findings.append(Finding("structure", "png chunks", detail=f"chunks other than IHDR/IDAT/IEND: {extra}"))
    back = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED)
    if back is not None and back.ndim == 3:
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
    if back is None or back.shape != pixels.shape or not np.array_equal(back, pixels):
        findings.append(Finding("structure", "png pixels", detail="decoded output differs from the masked pixels"))
    return findings + byte_findings(out, terms, PIXEL_TERM_MIN, "png")


def deidentify_raster(data: bytes, source_names: Iterable[str] = ()) -> ImageResult:
    """De-identify one PNG or JPEG (bytes). ``source_names``: the file's name(s) at the source,
    used only as identifying values to search for (never written)."""
    res = ImageResult("written", hashlib.sha256(data).hexdigest())
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("PNG", "JPEG", "MPO"):
                return res.quarantine("not_image", f"not a PNG or JPEG image ({im.format})")
            terms = terms_of([*metadata_texts(im), *name_hints(source_names)])
            arr = decode_pixels(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return res.quarantine("unreadable", f"image cannot be decoded ({type(exc).__name__}: {exc})"[:200])
    res.counts["images"] += 1
    res.counts["metadata_terms"] = len(terms)
    frames = np.array(arr[None], copy=True)
    # light text on dark (what scanners burn in); on a light background (a screenshot, a scanned
    # form) dark text too, searched on the inverted image and masked with the background's white
    passes = (False, True) if light_background(arr) else (False,)
    boxes: list[tuple[int, ...]] = []
    findings: list[Finding] = []
    calls = 0
    try:
        for invert in passes:
            pres, _lines = scrub_frames(frames, True, invert)
            boxes += sorted({tuple(b) for _, b in pres.masked_boxes})
            calls += pres.ocr_calls
        masked_boxes = [Box(*b) for b in boxes]
        for invert in passes:  # verification once everything is masked, around every box
            read, bad, n = residual_text(frames, True, invert, masked_boxes)
            calls += n
            findings += [Finding("pixel_text", f"box {ln.box.as_list()}", detail="readable text left after masking")
                         for ln in bad]
            findings += [Finding("pixel_text", f"box {ln.box.as_list()}", "metadata",
                                 "a stripped metadata or file-name word read by OCR")
                         for ln in read if fragment_hits(ln.text, terms)]
    except OcrError as exc:
        return res.quarantine("pixels_unhandled", f"pixel text could not be checked: {exc}")
    res.pixels = {"at_risk": True, "masked_boxes": len(boxes), "boxes": [list(b) for b in boxes],
                  "frames": 1, "ocr_calls": calls}
    if findings:
        return res.quarantine("pixel_text_left", "burned-in text left after masking", findings)
    masked = frames[0]
    out = encode_png(masked)
    findings = verify_png(out, masked, terms)
    if findings:
        return res.quarantine("phi_leak", "verification found identifying data: "
                              + ", ".join(sorted({f"{f.kind}:{f.where}" for f in findings}))[:300], findings)
    if boxes:
        res.counts["pixel_images_masked"] += 1
    res.data, res.name = out, pseudonymous_name(out, ".png")
    return res
