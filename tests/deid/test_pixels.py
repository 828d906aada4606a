"""Pixel text detection and verification internals: frame reuse, verification windows, the
fast RLE decoder, the in-process OCR engine, and a half-done mask caught by verification."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from deid import pixels
from deid.pixels import Box, decode_rle_u8, residual_text, scrub_frames, verify_windows

SECRET = b"unit-test-secret-0123456789abcdef"


def _text_frame(text: str = "QUIXOTE 4455667", org: tuple[int, int] = (20, 60), shape=(120, 320)) -> np.ndarray:
    img = np.zeros(shape, np.uint8)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)
    return img


def test_identical_frames_detected_once(monkeypatch):
    calls = []
    real = pixels.detect_lines
    monkeypatch.setattr(pixels, "detect_lines", lambda g, *a: calls.append(1) or real(g, *a))
    a, b = _text_frame(), _text_frame("OTHER 123", (20, 100))
    per_frame = pixels._detect_frames([a, b, a.copy(), b], strict=False)
    assert len(calls) == 2
    assert [ln.box for ln in per_frame[0]] == [ln.box for ln in per_frame[2]] != []
    assert [ln.box for ln in per_frame[1]] == [ln.box for ln in per_frame[3]]
    assert per_frame[0][0] is not per_frame[2][0]  # fresh objects: merge_lines mutates them


def test_verify_windows_cover_every_box_and_are_disjoint():
    shape = (400, 600)
    boxes = [Box(10, 10, 40, 12), Box(40, 20, 30, 10), Box(400, 300, 50, 14)]
    wins = verify_windows(boxes, shape, margin=20)
    assert wins is not None and len(wins) == 2  # the first two overlap once padded
    for b in boxes:
        p = b.padded(20, shape)
        assert any(w.x <= p.x and w.y <= p.y and p.x + p.w <= w.x + w.w and p.y + p.h <= w.y + w.h for w in wins)
    for i, w in enumerate(wins):
        for o in wins[i + 1:]:
            assert w.iou(o) == 0
    # windows covering most of the frame: search the whole frame instead
    assert verify_windows([Box(0, 0, 580, 380)], shape, margin=20) is None


def test_residual_near_masked_box_catches_a_line_left_beside_it():
    frame = _text_frame("QUIXOTE", (20, 40))
    cv2.putText(frame, "4455667", (20, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2)  # the next line down
    frames = frame[None].copy()
    res, lines = scrub_frames(frames.copy(), risky=True)
    boxes = [pixels.mask_box(ln.box, frames.shape[1:3]) for ln in lines]
    assert len(boxes) == 2  # the two lines
    # only the first line masked: the verification around that box must read the second
    one = frames.copy()
    pixels.mask_frames(one, {0: boxes[:1]})
    read, bad, calls = residual_text(one, risky=True, masked=boxes[:1])
    assert calls >= 1 and any("4455667" in ln.text for ln in bad)
    # the same answer as searching the whole frame
    assert [ln.box for ln in read] == [ln.box for ln in residual_text(one, risky=True)[0]]
    full = frames.copy()
    pixels.mask_frames(full, {0: boxes})
    read, bad, calls = residual_text(full, risky=True, masked=boxes)
    assert not bad


def test_engine_quarantines_a_half_done_mask(monkeypatch):
    import deid.engine as engine
    from deid.engine import Deidentifier

    ds = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.putText(img, "QUIXOTE ZEBULON 4455667", (10, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    ds.PixelData = img.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf)
    real = pixels.mask_frames

    def half_mask(frames, boxes_per_frame, fill=0):
        return real(frames, {f: [Box(b.x, b.y, b.w // 3, b.h) for b in bs] for f, bs in boxes_per_frame.items()}, fill)

    monkeypatch.setattr(pixels, "mask_frames", half_mask)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "quarantined" and any(f.kind == "pixel_text" for f in r.findings)
    monkeypatch.undo()
    assert engine.Deidentifier("default", SECRET).deidentify(buf.getvalue()).status == "written"


def _ybr_rle_cine(org: tuple[int, int] = (20, 60)) -> pydicom.Dataset:
    """A small 3-frame YBR_FULL RLE object (pydicom's own encoder), text on dark, noise in red
    below row 40."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    rgb = np.stack([cv2.cvtColor(_text_frame(f"FRAME {k} 4455667", org, shape=(64, 200)), cv2.COLOR_GRAY2RGB)
                    for k in range(3)])
    rgb[:, 40:, :, 0] = np.random.default_rng(0).integers(0, 200, (3, 24, 200), dtype=np.uint8)
    ybr = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[..., [0, 2, 1]] for f in rgb])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.3.1", generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 64, 200, 3
    ds.SamplesPerPixel, ds.PlanarConfiguration, ds.PhotometricInterpretation = 3, 0, "YBR_FULL"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = ybr.tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return ds


@pytest.mark.parametrize("name", ["SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm", "ybr_cine"])
def test_rle_decoder_gives_pydicoms_array(name):
    if name == "ybr_cine":
        buf = io.BytesIO()
        _ybr_rle_cine().save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    else:
        data = open(get_testdata_file(name), "rb").read()
    ours = decode_rle_u8(pydicom.dcmread(io.BytesIO(data)))
    ref = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert ours is not None and ours.dtype == ref.dtype and np.array_equal(ours, ref)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "SC_rgb_rle_16bit.dcm", "CT_small.dcm"])
def test_rle_decoder_leaves_other_objects_to_pydicom(name):
    assert decode_rle_u8(pydicom.dcmread(get_testdata_file(name))) is None


def test_ocr_engine_reads_a_line_from_raw_bytes():
    from deid.ocr import engine, read_line

    if engine().kind != "tesserocr":
        pytest.skip("tesserocr not installed: pytesseract fallback")
    img = 255 - cv2.resize(_text_frame("ZEBULON 4455667", (8, 40), (60, 260)), None, fx=2, fy=2)
    words = read_line(np.ascontiguousarray(img[::1, ::1]))
    text = " ".join(w.text for w in words)
    assert "ZEBULON" in text and "4455667" in text
    assert all(w.conf >= 75 for w in words)
    # a view that is not C-contiguous reads the same
    wide = np.full((img.shape[0], img.shape[1] * 2), 255, np.uint8)
    wide[:, ::2] = img
    assert " ".join(w.text for w in read_line(wide[:, ::2])) == text


def test_masked_box_edge_is_not_a_stroke_but_text_beside_it_is():
    """Verification's top-hat ignores the black boxes it masked. With a plain top-hat the opening
    sinks towards the box's black, so speckle all around a masked box stands out as 'strokes'
    (which came back as lines to OCR); ignoring the box gives the ring its unmasked density. A
    bright stroke right beside a box still stands out."""
    rng = np.random.default_rng(1)
    speckle = cv2.GaussianBlur(rng.integers(0, 256, (160, 240)).astype(np.float32), (0, 0), 1.2)
    g = cv2.normalize(speckle, None, 20, 200, cv2.NORM_MINMAX).astype(np.uint8)
    box = Box(90, 60, 60, 24)
    masked = g.copy()
    masked[box.y:box.y + box.h, box.x:box.x + box.w] = 0
    ring = np.zeros(g.shape, bool)
    p = box.padded(8, g.shape)
    ring[p.y:p.y + p.h, p.x:p.x + p.w] = True
    ring[box.y:box.y + box.h, box.x:box.x + box.w] = False

    def ring_strokes(th: np.ndarray) -> float:
        return float((th[ring] > 70).mean())

    before = ring_strokes(cv2.morphologyEx(g, cv2.MORPH_TOPHAT, pixels._TOPHAT_K))
    assert ring_strokes(cv2.morphologyEx(masked, cv2.MORPH_TOPHAT, pixels._TOPHAT_K)) > 1.3 * before
    assert ring_strokes(pixels._tophat(masked, [box])) <= 1.05 * before
    flat = np.full((120, 200), 120, np.uint8)
    flat[box.y:box.y + box.h, box.x:box.x + box.w] = 0
    flat[box.y + 4:box.y + 16, box.x + box.w + 1:box.x + box.w + 3] = 250  # a stroke touching the box
    assert pixels._tophat(flat, [box])[box.y + 8, box.x + box.w + 2] >= 100
    # without boxes it is OpenCV's own top-hat
    assert np.array_equal(pixels._tophat(g, []), cv2.morphologyEx(g, cv2.MORPH_TOPHAT, pixels._TOPHAT_K))


def test_ybr_rle_cine_is_masked_in_ybr_and_stored_as_rgb():
    """RLE YBR_FULL is searched and masked in its own samples (YBR black: 0, 128, 128) and written
    as uncompressed RGB, converted by pydicom's routine: outside the boxes the same RGB as
    pydicom's decoding of the input, black inside (uncompressed YBR_FULL is not valid for US:
    dciodvfy rejects it)."""
    from deid.engine import Deidentifier

    src = _ybr_rle_cine(org=(10, 30))  # the text above the noise
    buf = io.BytesIO()
    src.save_as(buf, enforce_file_format=True)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert out.PhotometricInterpretation == "RGB" and not out.file_meta.TransferSyntaxUID.is_compressed
    rgb_in, rgb_out = pydicom.dcmread(io.BytesIO(buf.getvalue())).pixel_array, out.pixel_array
    inside = np.zeros(rgb_in.shape[:3], bool)
    for x, y, w, h in r.pixels["boxes"]:
        inside[:, y:y + h, x:x + w] = True
    assert inside.any()
    assert np.array_equal(rgb_out[~inside], rgb_in[~inside]) and rgb_out[inside].max() == 0


@pytest.mark.parametrize("shape", [(3, 2, 40, 50), (1, 3, 40, 50), (2, 4, 16, 24)])
def test_interleaved_equals_numpys_copy(shape):
    planes = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    by_plane = planes.transpose(0, 2, 3, 1)
    for arr in (by_plane, by_plane[0]):
        out = pixels.interleaved(arr)
        assert out.flags.c_contiguous and np.array_equal(out, np.ascontiguousarray(arr))
    same = np.zeros((4, 5, 3), np.uint8)
    assert pixels.interleaved(same) is same


def test_ybr_full_to_rgb_equals_pydicoms_conversion():
    """Every (Y, Cb, Cr) combination, by plane (as the RLE decoder gives it) and interleaved:
    grey pixels copied, coloured ones through pydicom's routine, the same bytes as pydicom's."""
    from pydicom.pixels.processing import convert_color_space

    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    for y in range(0, 256, 5):
        arr = np.stack([np.full(cb.shape, y, np.uint8), cb, cr], -1)[None]
        for a in (arr, np.moveaxis(np.ascontiguousarray(np.moveaxis(arr, -1, 1)), 1, -1)):
            out = pixels.ybr_full_to_rgb(a)
            assert out.flags.c_contiguous and np.array_equal(out, convert_color_space(a, "YBR_FULL", "RGB"))
    grey = np.full((2, 8, 9, 3), 128, np.uint8)
    grey[..., 0] = np.arange(72, dtype=np.uint8).reshape(8, 9)
    assert np.array_equal(pixels.ybr_full_to_rgb(grey), convert_color_space(grey, "YBR_FULL", "RGB"))
    assert np.array_equal(pixels.ybr_full_to_rgb(grey[0]), convert_color_space(grey[0], "YBR_FULL", "RGB"))


def test_a_line_cut_by_a_window_edge_sends_the_frame_to_a_whole_search():
    shape = (100, 200)
    inner = Box(50, 20, 60, 40)
    assert pixels._cut_by_window(Box(0, 10, 20, 10), inner, shape)  # left edge, inside the frame
    assert pixels._cut_by_window(Box(30, 25, 30, 15), inner, shape)  # right and bottom edges
    assert not pixels._cut_by_window(Box(5, 5, 20, 10), inner, shape)
    corner = Box(0, 0, 60, 40)
    assert not pixels._cut_by_window(Box(0, 0, 20, 10), corner, shape)  # the frame's own edges
    g = _text_frame()
    whole = pixels.detect_lines(g)
    assert pixels._detect_in_windows(g, False, [Box(0, 0, 100, 120)], []) is None  # a word crosses x=100
    found = pixels._detect_in_windows(g, False, [Box(0, 0, 320, 120)], [])
    assert [ln.box for ln in found] == [ln.box for ln in whole]


def test_a_window_grows_over_a_line_its_edge_cuts_instead_of_reading_the_whole_frame(monkeypatch):
    # verification's window around a masked box reaches a line it cuts (on a cine: the fan's
    # bright apex, in every frame): the window grows over that line with VERIFY_MARGIN and finds
    # it whole, as the whole frame would, without searching the whole frame
    g = _text_frame(shape=(480, 640))
    whole = pixels.detect_lines(g)
    shapes = []
    real = pixels.detect_lines
    monkeypatch.setattr(pixels, "detect_lines", lambda a, *r: shapes.append(a.shape) or real(a, *r))
    found = pixels._detect_in_windows(g, False, [Box(0, 0, 100, 120)], [])
    assert found is not None and [ln.box for ln in found] == [ln.box for ln in whole] != []
    assert (480, 640) not in shapes and len(shapes) <= pixels.WINDOW_GROWTHS + 1
