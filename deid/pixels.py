"""Burned-in text in pixel data: cheap OpenCV text detection on every frame, tesseract only on
candidate lines (all of an image's candidates in ONE tesseract call, as a mosaic), masking of
every text box in every frame.

Detection: a white top-hat isolates thin bright strokes, character-sized connected components are
kept and closed horizontally into lines; a line of >= 3 aligned characters of uniform height is
"strong" text. On images at risk (US, SC/OT, XA, ES, colour, BurnedInAnnotation YES) every
candidate line is masked (recall first); elsewhere (CT, MR...) only strong lines are OCR'd and a
line is masked when tesseract confirms it, so anatomy is not blanked on a noisy slice. After
masking, verification detects again and OCRs every candidate left (``residual_text``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
cv2.setNumThreads(1)  # the process pool is the parallelism; threads only add overhead on small frames

AT_RISK_MODALITIES = frozenset({"US", "SC", "OT", "XA", "ES", "XC", "GM", "SM", "DOC", "IVUS", "RF"})
SC_SOP_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
PAD = 3
#: OCR confidence of a word that counts as read text (verification; masking outside images at risk)
READABLE_CONF = 75.0


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def padded(self, p: int, shape: tuple[int, int]) -> "Box":
        x0, y0 = max(0, self.x - p), max(0, self.y - p)
        x1, y1 = min(shape[1], self.x + self.w + p), min(shape[0], self.y + self.h + p)
        return Box(x0, y0, x1 - x0, y1 - y0)

    def iou(self, o: "Box") -> float:
        ix = max(0, min(self.x + self.w, o.x + o.w) - max(self.x, o.x))
        iy = max(0, min(self.y + self.h, o.y + o.h) - max(self.y, o.y))
        inter = ix * iy
        return inter / float(self.w * self.h + o.w * o.h - inter or 1)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class Line:
    box: Box
    chars: int
    strong: bool
    flat: bool = False
    frames: set[int] = field(default_factory=set)
    text: str = ""
    confirmed: bool = False
    conf: float = -1.0


def at_risk(ds) -> bool:
    """Images whose kind is known to carry burned-in text, or that say they do."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return True
    if str(ds.get("Modality", "")).upper() in AT_RISK_MODALITIES:
        return True
    if str(ds.get("SOPClassUID", "")).startswith(SC_SOP_CLASS_PREFIX):
        return True
    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    return pi.startswith(("RGB", "YBR", "PALETTE"))


def frames_of(arr: np.ndarray, n_frames: int, samples: int) -> np.ndarray:
    """Pixel array as (frames, rows, cols[, samples])."""
    if n_frames > 1:
        return arr
    return arr[None]


def to_gray_u8(frame: np.ndarray) -> np.ndarray:
    """One uint8 plane for detection: max over colour channels (burned-in text is light), full
    dynamic range for deeper data (text is drawn at or near the maximum)."""
    if frame.ndim == 3:
        frame = frame.max(axis=2)
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype not in (np.uint16, np.int16, np.float32, np.float64, np.int32, np.uint32):
        frame = frame.astype(np.float32)
    if frame.dtype in (np.int32, np.uint32):
        frame = frame.astype(np.float32)
    return cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


_TOPHAT_K = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15))
_LINE_K = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 1))
_DOT = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


def detect_lines(g: np.ndarray, strict_intensity: bool = False) -> list[Line]:
    """Candidate text lines of one uint8 frame."""
    th = cv2.morphologyEx(g, cv2.MORPH_TOPHAT, _TOPHAT_K)
    _, bw = cv2.threshold(th, 70, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(bw) < 12:  # not even one short word of strokes: most CT/MR slices stop here
        return []
    n, lab, st, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    if n <= 1:
        return []
    hs, ws, areas = st[:, 3], st[:, 2], st[:, 4]
    # characters, plus small marks (hyphens, dots, commas) that join them into one line
    charlike = (hs <= 48) & (ws <= 48) & (areas >= 2)
    charlike[0] = False
    ids = np.nonzero(charlike)[0]
    if len(ids) == 0:
        return []
    lut = np.zeros(n, np.uint8)
    lut[ids] = 255
    chars = lut[lab]
    closed = cv2.morphologyEx(chars, cv2.MORPH_CLOSE, _LINE_K)
    n2, lab2, st2, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    lines: list[Line] = []
    # the line each character belongs to (any of its pixels: a thin '1' has no pixel at its centre)
    # (closing only adds pixels, so a character lies inside one line: any of its pixels tells which;
    # duplicate writes below all carry the same value)
    on = chars > 0
    comp_line = np.zeros(n, np.int32)
    comp_line[lab[on]] = lab2[on]
    line_of = comp_line[ids]
    for i in range(1, n2):
        x, y, w, h, _a = (int(v) for v in st2[i])
        if h < 5 or h > 50 or w < h:
            continue
        members = ids[line_of == i]
        members = members[(hs[members] >= 3) & (areas[members] >= 4)]
        k = len(members)
        if k < 2:
            continue
        mh = hs[members]
        tall = mh[mh >= 0.5 * mh.max()]
        uniform = len(tall) >= 3 and float(np.std(tall)) <= 0.3 * float(np.mean(tall)) + 1
        patch = g[y:y + h, x:x + w]
        stroke = cv2.dilate(bw[y:y + h, x:x + w], _DOT)
        strokes = patch[bw[y:y + h, x:x + w] > 0]
        background = patch[stroke == 0]
        flat = background.size >= 4 and float(background.std()) <= 14.0 and strokes.size > 0 and \
            float(strokes.mean()) - float(background.mean()) >= 60
        bright = True
        if strict_intensity:
            bright = strokes.size > 0 and float(np.percentile(strokes, 90)) >= 200
        lines.append(Line(Box(x, y, w, h), k, bool(uniform and bright), flat=bool(flat)))
    return lines


def merge_lines(per_frame: list[list[Line]]) -> list[Line]:
    """One list of lines across frames: a line seen at the same place in several frames is one."""
    merged: list[Line] = []
    for f, lines in enumerate(per_frame):
        for ln in lines:
            for m in merged:
                if m.box.iou(ln.box) > 0.6:
                    m.frames.add(f)
                    m.strong = m.strong or ln.strong
                    m.flat = m.flat or ln.flat
                    break
            else:
                ln.frames = {f}
                merged.append(ln)
    return merged


def _crop_for_ocr(gray: np.ndarray, box: Box) -> np.ndarray:
    b = box.padded(PAD + 2, gray.shape)
    crop = gray[b.y:b.y + b.h, b.x:b.x + b.w]
    if b.h < 32:
        crop = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    crop = 255 - crop
    return cv2.copyMakeBorder(crop, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)


def ocr_lines(gray_frames: list[np.ndarray], lines: list[Line]) -> int:
    """Read each line (one OCR call per line crop, from the first frame it was seen in); sets
    ``text`` and ``confirmed`` (a word of >= 2 alphanumerics read with confidence >= 40).
    Returns the number of OCR calls; raises deid.ocr.OcrError when tesseract cannot run."""
    from deid.ocr import read_line

    for ln in lines:
        f = min(ln.frames) if ln.frames else 0
        words = read_line(_crop_for_ocr(gray_frames[f], ln.box))
        ln.text = " ".join(w.text for w in words)
        good = [w.conf for w in words if sum(c.isalnum() for c in w.text) >= 2]
        ln.conf = max(good, default=-1.0)
        ln.confirmed = ln.conf >= 40
    return len(lines)


def mask_frames(frames: np.ndarray, boxes_per_frame: dict[int, list[Box]], fill: int = 0) -> int:
    """Set every pixel of every box to ``fill`` in place, all samples; returns pixels masked."""
    n = 0
    for f, boxes in boxes_per_frame.items():
        for b in boxes:
            frames[f, b.y:b.y + b.h, b.x:b.x + b.w, ...] = fill
            n += b.w * b.h
    return n


@dataclass
class PixelResult:
    scanned: bool = False
    at_risk: bool = False
    candidates: int = 0
    ocr_calls: int = 0
    masked_boxes: list[tuple[int, list[int]]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def find_text(frames: np.ndarray, risky: bool, invert: bool = False) -> tuple[list[Line], list[np.ndarray], int]:
    """Detect text lines on every frame and decide which to mask: on images at risk every
    candidate; elsewhere strong lines on a flat background that tesseract reads with confidence.
    Returns (lines to mask, gray frames, OCR calls). ``invert`` for MONOCHROME1 (text burned in at
    the minimum stored value displays white)."""
    grays = [_gray(fr, invert) for fr in frames]
    lines = merge_lines([detect_lines(g, strict_intensity=not risky) for g in grays])
    if not lines:
        return [], grays, 0
    if risky:
        # recall first: on an image at risk every candidate line is masked (speckle that looks
        # like characters loses a few pixels; a missed digit would be a leak)
        return lines, grays, 0
    # elsewhere (CT, MR...): only uniform character lines on a flat background, and only what
    # tesseract reads with confidence (noise in a low-signal DWI slice must not blank anatomy)
    unsure = [ln for ln in lines if ln.strong and ln.flat]
    calls = ocr_lines(grays, unsure) if unsure else 0
    keep = [ln for ln in unsure if ln.conf >= READABLE_CONF and sum(c.isalnum() for c in ln.text) >= 3]
    return keep, grays, calls


def _gray(frame: np.ndarray, invert: bool) -> np.ndarray:
    g = to_gray_u8(frame)
    return 255 - g if invert else g


def scrub_frames(frames: np.ndarray, risky: bool, invert: bool = False) -> tuple[PixelResult, list[Line]]:
    """Detect and mask text in ``frames`` (F, R, C[, S]) in place; every line found in any frame is
    masked in every frame (cine loops repeat their annotations)."""
    res = PixelResult(scanned=True, at_risk=risky)
    lines, _grays, calls = find_text(frames, risky, invert)
    res.ocr_calls = calls
    res.candidates = len(lines)
    if lines:
        shape = frames.shape[1:3]
        boxes = [ln.box.padded(PAD, shape) for ln in lines]
        fill = int(frames.max()) if invert else 0  # masked boxes display black
        mask_frames(frames, {f: boxes for f in range(frames.shape[0])}, fill)
        res.masked_boxes = [(f, b.as_list()) for f in range(frames.shape[0]) for b in boxes]
    return res, lines


def residual_text(frames: np.ndarray, risky: bool, invert: bool = False) -> tuple[list[Line], list[Line], int]:
    """Verification after masking: detect again on every frame and OCR every candidate left;
    a line tesseract reads with confidence (a word of >= 2 alphanumerics at >= READABLE_CONF, >= 3
    alphanumerics in the line) is a finding. The caller also matches every text read against the
    object's identifying values. Returns (lines read,
    findings, OCR calls)."""
    grays = [_gray(fr, invert) for fr in frames]
    lines = merge_lines([detect_lines(g, strict_intensity=not risky) for g in grays])
    if not risky:
        lines = [ln for ln in lines if ln.strong]
    if not lines:
        return [], [], 0
    calls = ocr_lines(grays, lines)
    bad = [ln for ln in lines if ln.conf >= READABLE_CONF and sum(c.isalnum() for c in ln.text) >= 3]
    return lines, bad, calls
