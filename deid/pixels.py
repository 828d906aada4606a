"""Burned-in text in pixel data: cheap OpenCV text detection on every frame, tesseract only on
candidate lines (one in-process call per line crop: a mosaic of crops costs as much), masking of
every text line, whole, in every frame.

Detection: a white top-hat isolates thin bright strokes, character-sized connected components
(touching glyphs included) are kept and closed horizontally into lines; pieces of one line (word
gaps of a large font, a glyph lost to speckle) and lone glyphs on its band are joined, so a line
is masked from its first to its last character with a margin, never in fragments. On images at
risk a second search takes the near-white strokes alone (text over bright speckle). A line of
>= 3 aligned characters of uniform height is "strong" text.

Images at risk (US, SC/OT, XA, ES, colour, BurnedInAnnotation YES): the imaged field (fan,
collimated area, image pane) is found from texture; a line outside it is masked (recall first,
nothing of the anatomy lost); a line inside it is the exception and is masked only when it is
text (strong on a flat background, or strong and read by tesseract), so speckle is not blacked
out. Elsewhere (CT, MR...) only strong lines on a flat background that tesseract confirms are
masked. The masked area inside the imaged field is reported per object.

Verification (``residual_text``) detects again around the masked boxes (the only places where
the detector's answer can change; a line cut by such a window sends the frame to a whole search)
and reads every line there that touches a mask or is text-shaped; it also reads the band of
every masked line with OCR alone (``band_reads``), so letters the detector missed are read
whatever it made of them. The engine fails the object on any confidently read text and on any
4-character run of a patient identifier (``deid.verify.scan_fragments``). A frame identical to
an earlier one of the same object is searched once."""
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
#: glyph components up to this height (fonts of 12-40 px, descenders and anti-aliasing included)
CHAR_MAX_H = 64
LINE_MAX_H = 72
#: pieces of one line further apart than this many line heights are separate lines
LINE_GAP = 2.0
#: burned-in text is drawn at or near white: the level of the second, bright-strokes-only search
BRIGHT_LEVEL = 200
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
    #: the best confidence of a word of >= 4 alphanumerics (an ID, a name: speckle reads short)
    conf_long: float = -1.0


def at_risk(ds) -> bool:
    """Images whose kind is known to carry burned-in text, or that say they do."""
    from deid.header import text_value

    if text_value(ds, 0x00280301).upper() == "YES":  # BurnedInAnnotation
        return True
    if text_value(ds, 0x00080060).upper() in AT_RISK_MODALITIES:  # Modality
        return True
    if text_value(ds, 0x00080016).startswith(SC_SOP_CLASS_PREFIX):  # SOPClassUID
        return True
    return text_value(ds, 0x00280004).upper().startswith(("RGB", "YBR", "PALETTE"))  # PhotometricInterpretation


def frames_of(arr: np.ndarray, n_frames: int, samples: int) -> np.ndarray:
    """Pixel array as (frames, rows, cols[, samples])."""
    if n_frames > 1:
        return arr
    return arr[None]


def to_gray_u8(frame: np.ndarray) -> np.ndarray:
    """One uint8 plane for detection: max over colour channels (burned-in text is light), full
    dynamic range for deeper data (text is drawn at or near the maximum)."""
    if frame.ndim == 3:
        # channel-wise maximum: numpy's reduce over the last axis is ~15x slower on HxWx3
        m = frame[..., 0]
        for c in range(1, frame.shape[2]):
            m = np.maximum(m, frame[..., c])
        frame = m
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype not in (np.uint16, np.int16, np.float32, np.float64, np.int32, np.uint32):
        frame = frame.astype(np.float32)
    if frame.dtype in (np.int32, np.uint32):
        frame = frame.astype(np.float32)
    return cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)


_RLE_LOSSLESS = "1.2.840.10008.1.2.5"


def decode_rle_u8(ds, as_rgb: bool = True) -> np.ndarray | None:
    """8-bit unsigned RLE Lossless pixels through Pillow's PackBits decoder (C; pydicom's own
    decoder loops over runs in Python, ~3x slower), YBR_FULL converted to RGB by pydicom's own
    routine: the same array as ``ds.pixel_array``. ``as_rgb=False`` keeps YBR_FULL samples as
    stored (the de-identifier detects and masks text on them and converts only what it writes:
    pydicom's float conversion costs ~4 ms per 480x360 frame, and an image without text is not
    rewritten at all). None when the object is not like that (the caller decodes it with
    pydicom)."""
    import struct

    from PIL import Image
    from pydicom.encaps import generate_frames

    pi = str(ds.get("PhotometricInterpretation", "")).upper()
    if (str(ds.file_meta.get("TransferSyntaxUID", "")) != _RLE_LOSSLESS or int(ds.get("BitsAllocated", 0)) != 8
            or int(ds.get("PixelRepresentation", 0)) != 0 or pi not in ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL")):
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    n, spp = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1) or 1)
    out = np.empty((n, spp, rows, cols), np.uint8)
    got = 0
    for f, frag in enumerate(generate_frames(ds.PixelData, number_of_frames=n)):
        if f >= n or len(frag) < 64 or struct.unpack_from("<L", frag, 0)[0] != spp:
            return None
        offs = struct.unpack_from(f"<{spp}L", frag, 4) + (len(frag),)
        for s in range(spp):
            seg = Image.frombytes("L", (cols, rows), frag[offs[s]:offs[s + 1]], "packbits", "L")
            out[f, s] = np.asarray(seg)
        got += 1
    if got != n:
        return None
    arr = out.transpose(0, 2, 3, 1) if spp > 1 else out[:, 0]
    if pi == "YBR_FULL" and as_rgb:
        arr = ybr_full_to_rgb(arr)
    return arr if n > 1 else arr[0]


def ybr_full_to_rgb(arr: np.ndarray) -> np.ndarray:
    """8-bit YBR_FULL samples (..., 3) as RGB in C order, equal to pydicom's
    ``convert_color_space(arr, "YBR_FULL", "RGB")``, which computes every pixel in float32
    (~7 ms per 480x360 frame). A pixel with neutral chroma (Cb = Cr = 128: the grey of a
    B-mode image, most of an ultrasound cine) is R = G = B = Y exactly in that arithmetic (the
    chroma terms are zero), so it is copied; only the coloured pixels (Doppler) go through
    pydicom's routine."""
    from pydicom.pixels.processing import convert_color_space

    frames = arr if arr.ndim == 4 else arr[None]
    out = np.empty(frames.shape, np.uint8)
    for f in range(frames.shape[0]):
        y, cb, cr = (np.ascontiguousarray(frames[f, ..., c]) for c in range(3))
        cv2.merge([y, y, y], dst=out[f])
        coloured = cv2.bitwise_or(cv2.compare(cb, 128, cv2.CMP_NE), cv2.compare(cr, 128, cv2.CMP_NE))
        if cv2.countNonZero(coloured):
            sel = coloured.view(bool)
            out[f][sel] = convert_color_space(frames[f][sel], "YBR_FULL", "RGB")
    return out if arr.ndim == 4 else out[0]


_TOPHAT_K = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15))
_LINE_K = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 1))
_WIDE_LINE_K = cv2.getStructuringElement(cv2.MORPH_RECT, (39, 1))
#: characters at least this tall are also grouped with the wide closing
BIG_CHAR_H = 20
_DOT = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


def _tophat(g: np.ndarray, masked: list[Box]) -> np.ndarray:
    """White top-hat (image minus its 15x15 opening). ``masked``: boxes blacked out in ``g``;
    the opening ignores them (eroded as if absent, then black), so that around a masked box the
    image is compared with its own surroundings, not with the black box: otherwise every bright
    speckle along a box's edge stands out as a stroke and becomes a line to OCR."""
    if not masked:
        return cv2.morphologyEx(g, cv2.MORPH_TOPHAT, _TOPHAT_K)
    lifted = g.copy()
    for b in masked:
        lifted[b.y:b.y + b.h, b.x:b.x + b.w] = 255
    eroded = cv2.erode(lifted, _TOPHAT_K)
    for b in masked:
        eroded[b.y:b.y + b.h, b.x:b.x + b.w] = 0
    return cv2.subtract(g, cv2.dilate(eroded, _TOPHAT_K))


def detect_lines(g: np.ndarray, strict: bool = False, masked: list[Box] | None = None,
                 bright: bool = False) -> list[Line]:
    """Candidate text lines of one uint8 frame, top to bottom, each joined whole. With ``strict``
    each line is also classified: ``strong`` (>= 3 bright characters of uniform height) and
    ``flat`` (on a uniform background). ``masked``: boxes already blacked out in ``g``
    (verification, see ``_tophat``). ``bright``: also search the strokes at or above
    BRIGHT_LEVEL alone: text burned in over bright speckled tissue touches speckle grains that
    stand out as much as its strokes, and the characters grow into blobs that are no characters;
    burned-in text is drawn at or near white, most speckle is not."""
    th = _tophat(g, masked or [])
    _, bw = cv2.threshold(th, 70, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(bw) < 12:  # not even one short word of strokes: most CT/MR slices stop here
        return []
    lines = _lines_of(g, bw, strict)
    if bright:
        lines += _lines_of(g, cv2.bitwise_and(bw, cv2.compare(g, BRIGHT_LEVEL, cv2.CMP_GE)), strict)
    return join_line_pieces(lines)


def _lines_of(g: np.ndarray, bw: np.ndarray, strict: bool) -> list[Line]:
    """The lines of one binary stroke map (see detect_lines), searched on the strokes' bounding
    rectangle with a margin wider than any closing below reaches (so that each works there as on
    the full frame), started on even coordinates (the block-based labelling then numbers the
    components as on the full frame): a third to a half less frame to label on most frames."""
    if cv2.countNonZero(bw) < 12:
        return []
    x, y, w, h = cv2.boundingRect(bw)
    reach = 2 * _WIDE_LINE_K.shape[1]
    x0, y0 = max(0, x - reach) & ~1, max(0, y - 4) & ~1
    x1, y1 = min(g.shape[1], x + w + reach), min(g.shape[0], y + h + 4)
    if (x1 - x0) * (y1 - y0) == g.size:
        return _lines_in(g, bw, strict)
    lines = _lines_in(g[y0:y1, x0:x1], bw[y0:y1, x0:x1], strict)
    for ln in lines:
        ln.box = Box(ln.box.x + x0, ln.box.y + y0, ln.box.w, ln.box.h)
    return lines


def _lines_in(g: np.ndarray, bw: np.ndarray, strict: bool) -> list[Line]:
    """The lines of one binary stroke map with at least 12 stroke pixels (see _lines_of)."""
    # block-based labelling (faster on speckle, ~1.6x on closed lines); labels are not in raster
    # order, so the lines are sorted at the end
    n, lab, st, _ = cv2.connectedComponentsWithStatsWithAlgorithm(bw, 8, cv2.CV_32S, cv2.CCL_GRANA)
    if n <= 1:
        return []
    hs, ws, areas = st[:, 3], st[:, 2], st[:, 4]
    # characters, plus small marks (hyphens, dots, commas) that join them into one line; glyphs
    # that touch (anti-aliased capitals of a large font: "ALLI" is one component 55 px wide) are
    # one component as wide as several characters: a width limit alone dropped them, and the
    # line was masked in pieces with those letters readable between the boxes
    charlike = (hs <= CHAR_MAX_H) & ((ws <= CHAR_MAX_H) | ((hs >= 8) & (ws <= 10 * hs))) & (areas >= 2)
    charlike[0] = False
    ids = np.nonzero(charlike)[0]
    # a line needs two members of >= 3 rows and >= 4 pixels (see _group; the large glyphs of the
    # wide grouping are such members too): with fewer, no closing and labelling is needed (on
    # about half of the CT/MR slices of a site)
    if np.count_nonzero((hs[ids] >= 3) & (areas[ids] >= 4)) < 2:
        return []
    # on the region of the character components only, padded by twice the closing's length (the
    # closing of the full frame is exact there and empty outside it) and started on even
    # coordinates (the block-based labelling then numbers the lines as on the full frame):
    # about half of a frame's closing, labelling and lookups on the median frame
    sc = st[ids].astype(np.int64)
    pad = 2 * _LINE_K.shape[1]
    x0, y0 = max(0, int(sc[:, 0].min()) - pad) & ~1, max(0, int(sc[:, 1].min()) - 2) & ~1
    x1 = min(g.shape[1], int((sc[:, 0] + sc[:, 2]).max()) + pad)
    y1 = min(g.shape[0], int((sc[:, 1] + sc[:, 3]).max()) + 2)
    lines = _group(g[y0:y1, x0:x1], bw[y0:y1, x0:x1], strict, n, lab[y0:y1, x0:x1], st, ids, _LINE_K)
    if x0 or y0:
        for ln in lines:
            ln.box = Box(ln.box.x + x0, ln.box.y + y0, ln.box.w, ln.box.h)
    # large fonts space their glyphs wider than the closing (a 37 px line of thin digits: each
    # digit alone): the large characters are grouped again with a closing three times as long
    # (only text-shaped lines of that grouping count: it also joins speckle clumps to text)
    big = ids[hs[ids] >= BIG_CHAR_H]
    if len(big) >= 2 and strict:
        big = big[_side_by_side(st[big])]
    if len(big) >= 2 and strict:
        # on the region of those glyphs only (a full-frame closing and labelling cost ~0.8 ms)
        reach = _WIDE_LINE_K.shape[1] + 1
        sb = st[big].astype(np.int64)
        x0, x1 = max(0, int(sb[:, 0].min()) - reach), min(g.shape[1], int((sb[:, 0] + sb[:, 2]).max()) + reach)
        y0, y1 = max(0, int(sb[:, 1].min()) - 2), min(g.shape[0], int((sb[:, 1] + sb[:, 3]).max()) + 2)
        for ln in _group(g[y0:y1, x0:x1], bw[y0:y1, x0:x1], strict, n, lab[y0:y1, x0:x1], st, big, _WIDE_LINE_K,
                         aligned=True):
            if ln.strong:
                ln.box = Box(ln.box.x + x0, ln.box.y + y0, ln.box.w, ln.box.h)
                lines.append(ln)
    return lines


def _side_by_side(sb: np.ndarray) -> np.ndarray:
    """Which of these components (stats rows) have another on their band (vertical overlap >= 60%
    of the smaller) within the wide closing's reach: the others have nothing to join."""
    x, y, w, h = (sb[:, k].astype(np.int64) for k in range(4))
    overlap = np.minimum.outer(y + h, y + h) - np.maximum.outer(y, y)
    gap = np.maximum.outer(x, x) - np.minimum.outer(x + w, x + w)
    near = (overlap * 5 >= 3 * np.minimum.outer(h, h)) & (gap <= _WIDE_LINE_K.shape[1])
    np.fill_diagonal(near, False)
    return near.any(axis=1)


def _group(g: np.ndarray, bw: np.ndarray, strict: bool, n: int, lab: np.ndarray, st: np.ndarray,
           ids: np.ndarray, kernel: np.ndarray, aligned: bool = False) -> list[Line]:
    """Character components ``ids`` (labels of ``lab``) closed horizontally by ``kernel`` into
    lines (see detect_lines). ``aligned``: a line is strong only if every tall member lies >= 60%
    within the band of the members' median top and bottom (a speckle clump taller than the
    glyphs, reached by a long closing, is not a character of the line)."""
    hs, areas = st[:, 3], st[:, 4]
    lut = np.zeros(n, np.uint8)
    lut[ids] = 255
    chars = lut.take(lab)
    closed = cv2.morphologyEx(chars, cv2.MORPH_CLOSE, kernel)
    n2, lab2, st2, _ = cv2.connectedComponentsWithStatsWithAlgorithm(closed, 8, cv2.CV_32S, cv2.CCL_GRANA)
    h2, w2 = st2[:, 3], st2[:, 2]
    shape_ok = (h2 >= 5) & (h2 <= LINE_MAX_H) & (w2 >= h2)
    shape_ok[0] = False
    if not shape_ok.any():
        return []
    # the line each character belongs to (any of its pixels: a thin '1' has no pixel at its centre)
    # (closing only adds pixels, so a character lies inside one line: any of its pixels tells which;
    # duplicate writes below all carry the same value)
    on = cv2.findNonZero(chars)[:, 0, :]  # (x, y) of every character pixel
    flat_idx = on[:, 1].astype(np.intp) * g.shape[1] + on[:, 0]
    comp_line = np.zeros(n, np.int32)
    comp_line[lab.take(flat_idx)] = lab2.take(flat_idx)
    line_of = comp_line[ids]
    # members of line-shaped components, grouped once (sorted by line) instead of one scan per line
    keep = shape_ok[line_of] & (hs[ids] >= 3) & (areas[ids] >= 4)
    mem_ids, mem_line = ids[keep], line_of[keep]
    counts = np.bincount(mem_line, minlength=n2)
    cand = np.nonzero(shape_ok & (counts >= 2))[0]
    if len(cand) == 0:
        return []
    order = np.argsort(mem_line, kind="stable")
    sorted_ids = mem_ids[order]
    # block-based labels are not in raster order: lines are returned sorted by (top, left)
    cand = cand[np.lexsort((st2[cand, 0], st2[cand, 1]))]
    starts = np.searchsorted(mem_line[order], cand)
    ext, extra = _with_lone_glyphs(st2, cand, shape_ok & (counts >= 2))
    if strict:  # pixels at 200 or more of each component
        bright_n = np.bincount(lab[cv2.bitwise_and(bw, cv2.compare(g, 200, cv2.CMP_GE)) > 0], minlength=n)
    lines: list[Line] = []
    for j, (i, s0) in enumerate(zip(cand.tolist(), starts.tolist())):
        x, y, w, h = (int(v) for v in ext[j])
        k = int(counts[i])
        if extra[j]:
            k += int(extra[j])
        if not strict:
            lines.append(Line(Box(x, y, w, h), k, False))
            continue
        members = sorted_ids[s0:s0 + k]
        # small-array statistics in plain Python / OpenCV: numpy's per-call overhead dominated
        mh = hs[members].tolist()
        top = max(mh)
        tall = [v for v in mh if v >= 0.5 * top]
        tall_ids = [m for m, v in zip(members.tolist(), mh) if v >= 0.5 * top]
        if aligned and tall_ids:
            tops = sorted(int(st[m, 1]) for m in tall_ids)
            bots = sorted(int(st[m, 1] + st[m, 3]) for m in tall_ids)
            b0, b1 = tops[len(tops) // 2], bots[len(bots) // 2]
            if any((min(b1, st[m, 1] + st[m, 3]) - max(b0, st[m, 1])) < 0.6 * st[m, 3] for m in tall_ids):
                tall = []  # not uniform: not strong
        uniform = False
        # a component of touching glyphs counts as the characters its width holds
        if tall and sum(max(1, round(int(st[m, 2]) / (0.7 * int(st[m, 3])))) for m in tall_ids) >= 3:
            mean = sum(tall) / len(tall)
            sd = (sum((v - mean) ** 2 for v in tall) / len(tall)) ** 0.5
            uniform = sd <= 0.3 * mean + 1 + 1e-9
        # >= 10% of the character pixels (the tall members: not the speckle grains around thin
        # strokes on tissue) at 200 or more
        bright = int(bright_n[tall_ids].sum()) * 10 >= int(areas[tall_ids].sum()) > 0
        flat = False
        if uniform and bright:  # "flat" only ever qualifies a strong line: not measured on the rest
            patch = g[y:y + h, x:x + w]
            bwp = bw[y:y + h, x:x + w]
            background = cv2.bitwise_not(cv2.dilate(bwp, _DOT))  # 255 away from every stroke
            n_strokes, n_bg = cv2.countNonZero(bwp), cv2.countNonZero(background)
            if n_bg >= 4 and n_strokes > 0:
                bg_mean, bg_sd = (float(v[0][0]) for v in cv2.meanStdDev(patch, mask=background))
                flat = bg_sd <= 14.0 + 1e-9 and cv2.mean(patch, mask=bwp)[0] - bg_mean >= 60 - 1e-9
        lines.append(Line(Box(x, y, w, h), k, bool(uniform and bright), flat=bool(flat)))
    return lines


def _with_lone_glyphs(st2: np.ndarray, cand: np.ndarray, is_line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line boxes (x, y, w, h) of ``cand`` grown over the lone glyphs beside them, and how many
    each took. A glyph further than the closing from its neighbours (the "D" of "ID" once the
    "I" is cut by the image edge, a capital after a wide word gap) is no line on its own, but
    it is part of the line it stands on: same band, same height, within LINE_GAP heights."""
    h2 = st2[:, 3]
    lone = (h2 >= 8) & (h2 <= LINE_MAX_H) & ~is_line  # a thin "I" is 1 px wide
    lone[0] = False
    box = st2[cand, :4].astype(np.int64)
    extra = np.zeros(len(cand), np.int64)
    sidx = np.nonzero(lone)[0]
    if len(sidx) == 0:
        return box, extra
    sb = st2[sidx, :4].astype(np.int64)
    for _ in range(2):  # a glyph joined may bring the next one within reach
        ax, ay, aw, ah = (box[:, k:k + 1] for k in range(4))
        sx, sy, sw, sh = (sb[None, :, k] for k in range(4))
        lo, hi = np.minimum(ah, sh), np.maximum(ah, sh)
        overlap = np.minimum(ay + ah, sy + sh) - np.maximum(ay, sy)
        gap = np.maximum(ax, sx) - np.minimum(ax + aw, sx + sw)
        hit = (overlap * 2 >= lo) & (hi <= 2 * lo) & (gap <= LINE_GAP * hi) & (gap > 0)
        if not hit.any():
            break
        for j in np.nonzero(hit.any(axis=1))[0]:
            m = sb[hit[j]]
            x0 = min(box[j, 0], int(m[:, 0].min()))
            y0 = min(box[j, 1], int(m[:, 1].min()))
            x1 = max(box[j, 0] + box[j, 2], int((m[:, 0] + m[:, 2]).max()))
            y1 = max(box[j, 1] + box[j, 3], int((m[:, 1] + m[:, 3]).max()))
            box[j] = (x0, y0, x1 - x0, y1 - y0)
            extra[j] += int(hit[j].sum())
        keep = ~hit.any(axis=0)
        sb = sb[keep]
        if len(sb) == 0:
            break
    return box, extra


def join_line_pieces(lines: list[Line]) -> list[Line]:
    """Pieces of one text line joined into one line, first to last character: pieces on the same
    baseline band (vertical overlap >= half the smaller height, heights within 2x) less than
    LINE_GAP line heights apart, and boxes mostly inside another. Word gaps of a large font
    exceed the 13 px closing, and a character the detector lost (touching speckle, or a glyph run
    it could not split) leaves a gap: masked piece by piece, the letters in the gap stayed
    readable."""
    if len(lines) < 2:
        return lines
    out = lines
    while True:  # joined boxes grow and may reach further pieces: until nothing joins
        b = np.array([[ln.box.x, ln.box.y, ln.box.w, ln.box.h] for ln in out], np.int64)
        x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        lo, hi = np.minimum.outer(h, h), np.maximum.outer(h, h)
        overlap = np.minimum.outer(y + h, y + h) - np.maximum.outer(y, y)
        gap = np.maximum.outer(x, x) - np.minimum.outer(x + w, x + w)
        adj = (2 * overlap >= lo) & (hi <= 2 * lo) & (gap <= LINE_GAP * hi)
        # a box mostly inside another (the bright-strokes search finds parts of a line) is part of it
        area = w * h
        inside = np.maximum(overlap, 0) * np.maximum(-gap, 0) * 2 >= np.minimum.outer(area, area)
        adj |= inside
        np.fill_diagonal(adj, False)
        if not adj.any():
            break
        root = list(range(len(out)))

        def find(i: int) -> int:
            while root[i] != i:
                root[i] = root[root[i]]
                i = root[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(adj))):
            ri, rj = find(int(i)), find(int(j))
            if ri != rj:
                root[rj] = ri
        groups: dict[int, list[Line]] = {}
        for i, ln in enumerate(out):
            groups.setdefault(find(i), []).append(ln)
        out = [g[0] if len(g) == 1 else _joined(g) for g in groups.values()]
    out.sort(key=lambda ln: (ln.box.y, ln.box.x))
    return out


def _joined(pieces: list[Line]) -> Line:
    x0 = min(p.box.x for p in pieces)
    y0 = min(p.box.y for p in pieces)
    x1 = max(p.box.x + p.box.w for p in pieces)
    y1 = max(p.box.y + p.box.h for p in pieces)
    return Line(Box(x0, y0, x1 - x0, y1 - y0), sum(p.chars for p in pieces), any(p.strong for p in pieces),
                flat=any(p.flat for p in pieces))


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


def _crop_for_ocr(gray: np.ndarray, box: Box, mode: str = "plain") -> np.ndarray:
    """Dark-on-light crop of a line for tesseract, prepared by ``mode``: "plain" (the pixels);
    "otsu" (Otsu's threshold of the crop's top-hat: text over speckled tissue, whose strokes are
    the brightest pixels, with no brightness gradient under the line taken for a threshold);
    "tophat" (the top-hat stretched to full range, grey, upscaled 2x); "large" (the pixels
    upscaled 3x: verification's reading of what the first pass's three did not confirm)."""
    # 2 px above and below: lines of small print stand ~4 px apart, and a crop that takes in the
    # strokes of the next line reads as nothing in single-line mode
    x0, x1 = max(0, box.x - PAD - 2), min(gray.shape[1], box.x + box.w + PAD + 2)
    y0, y1 = max(0, box.y - 2), min(gray.shape[0], box.y + box.h + 2)
    b = Box(x0, y0, x1 - x0, y1 - y0)
    crop = gray[b.y:b.y + b.h, b.x:b.x + b.w]
    if mode in ("otsu", "tophat"):
        crop = cv2.morphologyEx(crop, cv2.MORPH_TOPHAT, _TOPHAT_K)
    if mode == "large":
        crop = cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    elif b.h < 32 or mode == "tophat":
        crop = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    if mode == "otsu":
        _, crop = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    elif mode == "tophat":
        crop = cv2.normalize(crop, None, 0, 255, cv2.NORM_MINMAX)
    crop = 255 - crop
    return cv2.copyMakeBorder(crop, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)


def ocr_lines(gray_frames: list[np.ndarray], lines: list[Line], mode: str = "plain") -> int:
    """Read each line (one OCR call per line crop prepared by ``mode``, see ``_crop_for_ocr``,
    from the first frame it was seen in); sets ``text``, ``conf`` (the best word of >= 2
    alphanumerics) and ``confirmed`` (conf >= 40). Returns the number of OCR calls; raises
    deid.ocr.OcrError when tesseract cannot run."""
    from deid.ocr import read_line

    for ln in lines:
        f = min(ln.frames) if ln.frames else 0
        words = read_line(_crop_for_ocr(gray_frames[f], ln.box, mode))
        ln.text = " ".join(w.text for w in words)
        good = [w.conf for w in words if sum(c.isalnum() for c in w.text) >= 2]
        ln.conf = max(good, default=-1.0)
        ln.conf_long = max((w.conf for w in words if sum(c.isalnum() for c in w.text) >= 4), default=-1.0)
        ln.confirmed = ln.conf >= 40
    return len(lines)


def mask_frames(frames: np.ndarray, boxes_per_frame: dict[int, list[Box]], fill: int | tuple[int, ...] = 0) -> int:
    """Set every pixel of every box to ``fill`` (one value, or one per sample) in place; returns
    pixels masked."""
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
    #: candidates inside the imaged field that OCR did not confirm as text (left unmasked)
    rejected: list[Line] = field(default_factory=list)
    #: pixels of the imaged field (one frame) and of it under a mask (images at risk)
    field_px: int = 0
    masked_in_field_px: int = 0
    #: the imaged field itself (images at risk), for verification
    field: np.ndarray | None = None


def imaged_field(g: np.ndarray) -> np.ndarray:
    """Where the anatomy is: a boolean mask of the textured, non-dark regions of one uint8 frame
    (the ultrasound fan, the collimated area, the image pane of a screen capture), each filled to
    its convex hull (a dark vessel or cyst inside is field too). Measured on 4x4 blocks: a block
    is field when >= 60% of its pixels are above 10 and its standard deviation is >= 4 (flat
    panels and black surround are not); a 3x3 opening of the blocks (12 px) removes text strokes,
    and only regions of >= 1% of the frame count."""
    h, w = g.shape[:2]
    sw, sh = max(1, w // 4), max(1, h // 4)
    lit = cv2.resize((g > 10).astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    gf = g.astype(np.float32)
    mean = cv2.resize(gf, (sw, sh), interpolation=cv2.INTER_AREA)
    sq = cv2.resize(gf * gf, (sw, sh), interpolation=cv2.INTER_AREA)
    sd = np.sqrt(np.maximum(sq - mean * mean, 0))
    blocks = ((lit >= 0.6) & (sd >= 4)).astype(np.uint8)
    blocks = cv2.morphologyEx(blocks, cv2.MORPH_OPEN, _DOT)
    n, lab, st, _ = cv2.connectedComponentsWithStats(blocks, 8, cv2.CV_32S)
    filled = np.zeros((sh, sw), np.uint8)
    for i in range(1, n):
        if st[i, 4] >= 0.01 * sw * sh:
            pts = cv2.findNonZero((lab == i).astype(np.uint8))
            cv2.fillConvexPoly(filled, cv2.convexHull(pts), 1)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def margin_of(box: Box) -> int:
    """Mask margin around a line: anti-aliasing and the faint edge of a glyph that the
    threshold left out grow with the font."""
    return max(PAD, box.h // 8)


def mask_box(box: Box, shape: tuple[int, int]) -> Box:
    return box.padded(margin_of(box), shape)


def _in_field(box: Box, field: np.ndarray) -> float:
    return float(field[box.y:box.y + box.h, box.x:box.x + box.w].mean()) if box.w and box.h else 0.0


#: OCR confidence that confirms a text-shaped line inside the imaged field as text, and the lower
#: one that suffices for a word of >= 4 alphanumerics (speckle read as letters gives short words)
FIELD_CONFIRM_CONF = 50.0
FIELD_CONFIRM_LONG = 25.0


def _field_text(ln: Line) -> bool:
    return ln.conf >= FIELD_CONFIRM_CONF or ln.conf_long >= FIELD_CONFIRM_LONG


def find_text(frames: np.ndarray, risky: bool, invert: bool = False, *,
              ybr: bool = False) -> tuple[list[Line], list[np.ndarray], int, list[Line], np.ndarray | None]:
    """Detect text lines on every frame and decide which to mask. Returns (lines to mask, gray
    frames, OCR calls, candidates left unmasked after OCR, imaged field or None).

    On images at risk the imaged field (``imaged_field`` of the first frame) decides: a line
    mostly outside it (on the black surround or a flat panel, where scanners burn in their
    text) is masked without more ado (recall first; nothing of the anatomy is lost); a line
    inside it is the exception and is masked only when it is text: a uniform character line
    (>= 3 bright characters of one height) on a flat background, or one that tesseract reads
    (a word of >= 2 alphanumerics at >= FIELD_CONFIRM_CONF). Speckle that the detector takes for
    characters is neither, and no longer blacks out anatomy. Elsewhere (CT, MR...) only strong
    lines on a flat background that tesseract reads with confidence are masked. ``invert`` for
    MONOCHROME1 (text burned in at the minimum stored value displays white); ``ybr`` for
    YBR_FULL samples (Y, Cb, Cr)."""
    grays = [_gray(fr, invert, ybr) for fr in frames]
    lines = merge_lines(_detect_frames(grays, True, bright=risky))
    if not risky:
        # CT, MR...: only uniform character lines on a flat background, and only what tesseract
        # reads with confidence (noise in a low-signal DWI slice must not blank anatomy)
        unsure = [ln for ln in lines if ln.strong and ln.flat]
        calls = ocr_lines(grays, unsure) if unsure else 0
        keep = [ln for ln in unsure if ln.conf >= READABLE_CONF and sum(c.isalnum() for c in ln.text) >= 3]
        return keep, grays, calls, [ln for ln in unsure if ln not in keep], None
    field = imaged_field(grays[0])
    keep, inside = [], []
    for ln in lines:
        (inside if _in_field(ln.box, field) >= 0.5 else keep).append(ln)
    calls = 0
    unsure = [ln for ln in inside if ln.strong and not ln.flat]
    keep += [ln for ln in inside if ln.strong and ln.flat]
    if unsure:
        calls = ocr_lines(grays, unsure, "otsu")
        retry = unsure
        for mode in ("tophat", "plain"):  # other preparations of what is left: the best reading counts
            retry = [ln for ln in retry if not _field_text(ln)]
            if not retry:
                break
            before = {id(ln): (ln.text, ln.conf, ln.confirmed, ln.conf_long) for ln in retry}
            calls += ocr_lines(grays, retry, mode)
            for ln in retry:
                text, conf, confirmed, conf_long = before[id(ln)]
                if max(conf, conf_long) > max(ln.conf, ln.conf_long):
                    ln.text, ln.conf, ln.confirmed, ln.conf_long = text, conf, confirmed, conf_long
        keep += [ln for ln in unsure if _field_text(ln)]
    rejected = [ln for ln in unsure if not _field_text(ln)]
    keep.sort(key=lambda ln: (ln.box.y, ln.box.x))
    return keep, grays, calls, rejected, field


def _gray(frame: np.ndarray, invert: bool, ybr: bool = False) -> np.ndarray:
    if ybr:  # OpenCV's BT.601 full-range YCrCb is DICOM's YBR_FULL with Cb and Cr swapped
        frame = cv2.cvtColor(cv2.merge([frame[..., 0], frame[..., 2], frame[..., 1]]), cv2.COLOR_YCrCb2RGB)
    g = to_gray_u8(frame)
    return 255 - g if invert else g


def interleaved(arr: np.ndarray) -> np.ndarray:
    """``arr`` in C order. Colour decoded by plane (RLE) is a transposed view whose samples lie
    rows x columns apart; numpy copies that ~30x slower than OpenCV's merge of the planes."""
    if arr.flags.c_contiguous:
        return arr
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] not in (3, 4):
        return np.ascontiguousarray(arr)
    frames = arr if arr.ndim == 4 else arr[None]
    out = np.empty(frames.shape, np.uint8)
    for f in range(frames.shape[0]):
        cv2.merge([frames[f, ..., c] for c in range(frames.shape[-1])], dst=out[f])
    return out if arr.ndim == 4 else out[0]


#: masked boxes display black: YBR_FULL black is Y=0 with neutral chroma
YBR_BLACK = (0, 128, 128)


def _detect_frames(grays: list[np.ndarray], strict: bool, windows: list[Box] | None = None,
                   masked: list[Box] | None = None, bright: bool | np.ndarray = False) -> list[list[Line]]:
    """detect_lines on every frame; a frame identical to an earlier one (a frozen cine loop, a
    repeated still) reuses that frame's answer. With ``windows``, only those regions are searched
    (see ``_detect_in_windows``). ``masked``: boxes blacked out in every frame. ``bright``: the
    second, near-white search (detect_lines) everywhere, nowhere, or (a mask) in the windows
    that reach into it."""
    # earlier frames by a sparse sample of their pixels; a frame whose sample matches is compared
    # whole (hashing every frame whole cost ~0.2 ms each, and cine frames almost never repeat)
    seen: dict[bytes, list[tuple[np.ndarray, list[Line]]]] = {}
    out: list[list[Line]] = []
    for g in grays:
        key = g[::_SAMPLE_STEP, ::_SAMPLE_STEP].tobytes() if len(grays) > 1 else b""
        same = seen.setdefault(key, [])
        found = next((lines for frame, lines in same if frame is g or np.array_equal(frame, g)), None)
        if found is None:
            found = _detect_in_windows(g, strict, windows, masked or [], bright) if windows is not None else None
            if found is None:
                found = detect_lines(g, strict, masked, bright if isinstance(bright, bool) else bool(bright.any()))
            same.append((g, found))
        out.append([Line(ln.box, ln.chars, ln.strong, ln.flat) for ln in found])
    return out


#: pixel spacing of the sample that tells frames apart before a whole comparison
_SAMPLE_STEP = 8


def _detect_in_windows(g: np.ndarray, strict: bool, windows: list[Box], masked: list[Box],
                       bright: bool | np.ndarray = False) -> list[Line] | None:
    """The lines of ``g`` inside ``windows``, in frame coordinates; None when a line touches a
    window's edge inside the frame after the window was grown over it WINDOW_GROWTHS times (it
    may go on beyond the window: the caller reads the whole frame, so that no line is read in
    part)."""
    found: list[Line] = []
    for w in windows:
        for _ in range(WINDOW_GROWTHS + 1):
            lines, cut = _lines_in_window(g, strict, w, masked, bright)
            if cut is None:
                break
            # the window grown over the cut line with the same margin as around a masked box,
            # so that it holds that line whole: on a cine the window around the patient text
            # reaches into the fan, whose bright apex is cut by the window edge in every frame
            grown = _bounding(w, cut.padded(VERIFY_MARGIN, g.shape[:2]))
            if grown == w or grown.w * grown.h > 0.6 * g.shape[0] * g.shape[1]:
                return None
            w = grown
        else:
            return None
        found += lines
    return found


#: how many times verification grows a window over a line its edge cuts before reading the frame
WINDOW_GROWTHS = 2


def _lines_in_window(g: np.ndarray, strict: bool, w: Box, masked: list[Box],
                     bright: bool | np.ndarray) -> tuple[list[Line], Box | None]:
    """The lines of ``g`` inside window ``w`` (frame coordinates), and the first line cut by an
    edge of the window inside the frame (None if none)."""
    in_field = bright if isinstance(bright, bool) else bool(bright[w.y:w.y + w.h, w.x:w.x + w.w].any())
    found: list[Line] = []
    for ln in detect_lines(g[w.y:w.y + w.h, w.x:w.x + w.w], strict, _boxes_within(masked, w), in_field):
        cut = _cut_by_window(ln.box, w, g.shape)
        ln.box = Box(ln.box.x + w.x, ln.box.y + w.y, ln.box.w, ln.box.h)
        if cut:
            return [], ln.box
        found.append(ln)
    return found, None


def _bounding(a: Box, b: Box) -> Box:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    return Box(x0, y0, max(a.x + a.w, b.x + b.w) - x0, max(a.y + a.h, b.y + b.h) - y0)


def _cut_by_window(b: Box, w: Box, shape: tuple[int, ...]) -> bool:
    """Whether box ``b`` (window coordinates) touches an edge of window ``w`` that is not also an
    edge of the frame."""
    return ((b.x == 0 and w.x > 0) or (b.y == 0 and w.y > 0)
            or (b.x + b.w == w.w and w.x + w.w < shape[1]) or (b.y + b.h == w.h and w.y + w.h < shape[0]))


def _boxes_within(boxes: list[Box], w: Box) -> list[Box]:
    """The parts of ``boxes`` inside window ``w``, in the window's coordinates."""
    out = []
    for b in boxes:
        x0, y0 = max(b.x, w.x), max(b.y, w.y)
        x1, y1 = min(b.x + b.w, w.x + w.w), min(b.y + b.h, w.y + w.h)
        if x1 > x0 and y1 > y0:
            out.append(Box(x0 - w.x, y0 - w.y, x1 - x0, y1 - y0))
    return out


#: how far around a masked box verification looks again: masking changes the detector's input
#: (top-hat 15x15, line closing 13x1) within 14 px of a box; the rest covers whole characters
#: and the line they belong to
VERIFY_MARGIN = 64
#: a line this close to a masked box may be a piece of the masked text: verification reads it
VERIFY_TOUCH = 14


def verify_windows(boxes: list[Box], shape: tuple[int, int], margin: int = VERIFY_MARGIN) -> list[Box] | None:
    """Disjoint regions around the masked boxes where verification must detect again, or None
    when they cover most of the frame (then the whole frame is searched)."""
    rects = [b.padded(margin, shape) for b in boxes]
    merged = True
    while merged:  # union overlapping rectangles until they are disjoint
        merged = False
        out: list[Box] = []
        for r in rects:
            for i, o in enumerate(out):
                if r.x < o.x + o.w and o.x < r.x + r.w and r.y < o.y + o.h and o.y < r.y + r.h:
                    x0, y0 = min(r.x, o.x), min(r.y, o.y)
                    x1, y1 = max(r.x + r.w, o.x + o.w), max(r.y + r.h, o.y + o.h)
                    out[i] = Box(x0, y0, x1 - x0, y1 - y0)
                    merged = True
                    break
            else:
                out.append(r)
        rects = out
    if sum(r.w * r.h for r in rects) > 0.6 * shape[0] * shape[1]:
        return None
    return rects


def scrub_frames(frames: np.ndarray, risky: bool, invert: bool = False, *,
                 ybr: bool = False) -> tuple[PixelResult, list[Line]]:
    """Detect and mask text in ``frames`` (F, R, C[, S]) in place; every line found in any frame is
    masked in every frame (cine loops repeat their annotations), whole, with its margin."""
    res = PixelResult(scanned=True, at_risk=risky)
    lines, _grays, calls, rejected, field = find_text(frames, risky, invert, ybr=ybr)
    res.ocr_calls = calls
    res.candidates = len(lines)
    res.rejected = rejected
    shape = frames.shape[1:3]
    boxes = [mask_box(ln.box, shape) for ln in lines]
    res.field = field
    if field is not None:
        res.field_px = int(field.sum())
        covered = np.zeros(shape, bool)
        for b in boxes:
            covered[b.y:b.y + b.h, b.x:b.x + b.w] = True
        res.masked_in_field_px = int((covered & field).sum())
    if lines:
        fill = YBR_BLACK if ybr else int(frames.max()) if invert else 0  # masked boxes display black
        mask_frames(frames, {f: boxes for f in range(frames.shape[0])}, fill)
        res.masked_boxes = [(f, b.as_list()) for f in range(frames.shape[0]) for b in boxes]
    return res, lines


#: how far beyond each end of a masked line verification reads its band, in line heights
BAND_REACH = 6


def band_reads(gray: np.ndarray, masked: list[Box]) -> list[Line]:
    """Verification independent of the detector: tesseract reads the band of every masked line
    (its rows, BAND_REACH line heights beyond both ends) with every masked box blanked. Letters
    the detector lost on that line (merged with speckle, glyphs it could not separate) are read
    here whatever the detector made of them. One OCR call per band; bands of boxes on the same
    rows are one."""
    from deid.ocr import read_line

    if not masked:
        return []
    rows: list[Box] = []
    for b in sorted(masked, key=lambda b: b.y):
        reach = BAND_REACH * b.h
        x0, x1 = max(0, b.x - reach), min(gray.shape[1], b.x + b.w + reach)
        for i, r in enumerate(rows):
            if min(r.y + r.h, b.y + b.h) - max(r.y, b.y) >= 0.5 * min(r.h, b.h):
                nx0, ny0 = min(r.x, x0), min(r.y, b.y)
                nx1, ny1 = max(r.x + r.w, x1), max(r.y + r.h, b.y + b.h)
                rows[i] = Box(nx0, ny0, nx1 - nx0, ny1 - ny0)
                break
        else:
            rows.append(Box(x0, b.y, x1 - x0, b.h))
    out = []
    for r in rows:
        crop = gray[r.y:r.y + r.h, r.x:r.x + r.w].copy()
        for b in _boxes_within(masked, r):
            crop[b.y:b.y + b.h, b.x:b.x + b.w] = 0  # black: white once inverted for tesseract
        if cv2.countNonZero(cv2.compare(crop, 64, cv2.CMP_GE)) < 12:
            continue  # nothing left that could be a stroke (a letter has dozens of bright pixels)
        if r.h < 32:
            crop = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        crop = cv2.copyMakeBorder(255 - crop, 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)
        words = read_line(crop)
        ln = Line(r, 0, False, frames={0})
        ln.text = " ".join(w.text for w in words)
        ln.conf = max((w.conf for w in words if sum(c.isalnum() for c in w.text) >= 3), default=-1.0)
        out.append(ln)
    return out


def readable(ln: Line) -> bool:
    """A line tesseract reads with confidence: a word of >= 3 alphanumerics at >= READABLE_CONF
    (``conf`` is the best such word's), >= 3 alphanumerics in the line."""
    return ln.conf >= READABLE_CONF and sum(c.isalnum() for c in ln.text) >= 3


def residual_text(frames: np.ndarray, risky: bool, invert: bool = False,
                  masked: list[Box] | None = None, *, ybr: bool = False,
                  prior: list[Line] | None = None, field: np.ndarray | None = None
                  ) -> tuple[list[Line], list[Line], int]:
    """Verification after masking: detect again and OCR every candidate left; a line tesseract
    reads with confidence (``readable``) is a finding. The caller also matches every text read
    against the object's identifying values, whole and in fragments of 4+ characters. Returns
    (lines read, findings, OCR calls).

    ``masked``: the boxes masked in every frame. On an image at risk pixels outside the boxes are
    the input's, so the detector can only answer differently near the boxes: only those regions
    are searched again (the whole frame when they cover most of it), and there every line that
    touches a masked box (a piece of masked text; other lines have the first pass's pixels and
    answer) is read; the
    band of every masked line is also read by OCR (``band_reads``, first frame: burned-in text
    is the same in every frame). With None or an empty list every frame is searched whole, and
    its text-shaped lines are read. ``prior``: lines the first pass read and left unmasked
    (same pixels): not detected again, but read once more another way ("large"), both readings
    returned with the rest. ``field``: the first pass's imaged field (computed again if None)."""
    grays = [_gray(fr, invert, ybr) for fr in frames]
    windows = verify_windows(masked, grays[0].shape[:2]) if (risky and masked) else None
    # the bright-strokes search where it can matter: windows that reach into the imaged field
    bright: bool | np.ndarray = False
    if risky:
        bright = field if field is not None else imaged_field(grays[0])
    # in the windows only lines that touch a mask can differ from the first pass's (same pixels
    # further away): those are read, and no line needs classifying; elsewhere text-shaped lines
    lines = merge_lines(_detect_frames(grays, windows is None, windows, masked if risky else None, bright=bright))
    near = [b.padded(VERIFY_TOUCH, grays[0].shape[:2]) for b in (masked or [])]
    lines = [ln for ln in lines if (ln.strong and windows is None) or any(ln.box.iou(b) > 0 for b in near)]
    prior = prior or []
    lines = [ln for ln in lines if not any(ln.box.iou(p.box) > 0.9 for p in prior)]
    calls = ocr_lines(grays, lines, "otsu") if lines else 0
    if prior:  # what the first pass left in the field, read again another way than it did
        again = [Line(p.box, p.chars, p.strong, p.flat, set(p.frames)) for p in prior]
        calls += ocr_lines(grays, again, "large")
        prior = prior + again
    if masked:
        bands = band_reads(grays[0], masked)
        calls += len(bands)
        lines += bands
    lines += prior
    bad = [ln for ln in lines if readable(ln)]
    return lines, bad, calls
