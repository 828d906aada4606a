"""Tesseract OCR of small crops. ``tesserocr`` (the C API, one engine kept per process: 1.5 to
8 ms per line crop) is used when installed; ``pytesseract`` (one tesseract process per call, about
0.1 s) otherwise. ``OMP_THREAD_LIMIT=1``: the process pool gives the parallelism."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

_TESSDATA_CANDIDATES = (
    os.environ.get("TESSDATA_PREFIX", ""),
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
)


class OcrError(RuntimeError):
    """Tesseract could not run: the image goes to quarantine."""


@dataclass(frozen=True)
class Word:
    text: str
    conf: float


def _tessdata() -> str | None:
    for p in _TESSDATA_CANDIDATES:
        if p and (Path(p) / "eng.traineddata").is_file():
            return p
    return None


class _Engine:
    def __init__(self) -> None:
        self.api = None
        try:
            import tesserocr

            path = _tessdata()
            kwargs = {"lang": "eng", "psm": tesserocr.PSM.SINGLE_LINE}
            if path:
                kwargs["path"] = path
            self.api = tesserocr.PyTessBaseAPI(**kwargs)
            # crops come polarity-normalised (dark text on white): tesseract's retry of every
            # low-confidence line inverted would only double the work on speckle candidates
            self.api.SetVariable("tessedit_do_invert", "0")
            # no learning from earlier crops: the adaptive classifier tuned on speckle read as
            # letters made the same line read differently (and once not at all) depending on
            # which images the worker had seen before; each crop is read as if first
            self.api.SetVariable("classify_enable_learning", "0")
            self.kind = "tesserocr"
        except Exception:  # not installed or no language data: fall back to the CLI
            self.kind = "pytesseract"

    def read_line(self, img: np.ndarray) -> list[Word]:
        if self.api is not None:
            # raw 8-bit bytes: SetImage(PIL) encodes and decodes an image file per call
            img = np.ascontiguousarray(img, dtype=np.uint8)
            self.api.SetImageBytes(img.tobytes(), img.shape[1], img.shape[0], 1, img.shape[1])
            text = self.api.GetUTF8Text() or ""
            confs = self.api.AllWordConfidences() or []
            words = text.split()
            return [Word(w, float(c)) for w, c in zip(words, confs)]
        try:
            import pytesseract

            d = pytesseract.image_to_data(img, config="--psm 7", output_type=pytesseract.Output.DICT, timeout=30)
        except Exception as exc:
            raise OcrError(f"tesseract failed: {type(exc).__name__}") from exc
        return [Word(t.strip(), float(c)) for t, c in zip(d["text"], d["conf"]) if t and t.strip()]


_engine: _Engine | None = None


def engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def read_line(img: np.ndarray) -> list[Word]:
    """Words tesseract reads in one line image (dark text on light background is best)."""
    try:
        return engine().read_line(img)
    except OcrError:
        raise
    except Exception as exc:
        raise OcrError(f"tesseract failed: {type(exc).__name__}") from exc
