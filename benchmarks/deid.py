"""De-identification benchmark: this project's de-identifier side by side with dicognito and the
`deid` (pydicom/deid) package on the same synthetic-hospital corpus, plus pixel scrubbing against a
plain full-image tesseract pass (presidio-image-redactor cannot run offline here).

Prints files/s and the identifying values each tool leaves, counted with this project's leak
scanner (deid.leakscan) against every value the synthetic site planted (ground_truth.json).

    .venv/bin/python benchmarks/deid.py [--patients 3] [--workdir var/bench-deid] [--peer-python var/peer-venv/bin/python]

Peers live in their own venv because the PyPI package `deid` has the same import name as this
project's library:  python3.11 -m venv var/peer-venv &&
var/peer-venv/bin/pip install dicognito==0.19.0 deid==0.4.13 pydicom==3.0.2 numpy==1.26.4
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEID_PKG_DRIVER = r"""
import sys, os
from deid.dicom import replace_identifiers
files, out = sys.argv[2:], sys.argv[1]
os.makedirs(out, exist_ok=True)
replace_identifiers(dicom_files=files, save=True, overwrite=True, output_folder=out)
"""


def corpus(workdir: Path, patients: int) -> tuple[Path, dict, list[str]]:
    """The synthetic site and a clean copy of its valid DICOM files (peers crash on bad inputs)."""
    from curation.synth import generate_site

    site = workdir / f"site_p{patients}"
    if not (site / "ground_truth.json").exists():
        generate_site(site, patients=patients, seed=0, progress=lambda m: None)
    truth = json.loads((site / "ground_truth.json").read_text())
    clean = workdir / f"clean_p{patients}"
    if not clean.exists():
        for rel, f in truth["files"].items():
            if f["type"] == "dicom" and f["expected"] == "ingest":
                dst = clean / (rel.replace("/", "_") + ("" if rel.endswith(".dcm") else ".dcm"))
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(site / rel, dst)
    files = sorted(str(p) for p in clean.iterdir())
    return clean, truth, files


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and its reaped children: unlike wall time it
    hardly moves with the other jobs sharing the machine."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(cmds: list[list[str]], env: dict | None = None, cwd: str | None = None) -> tuple[float, float]:
    """Run commands in parallel (one process each), return (wall seconds, CPU seconds)."""
    c0 = cpu_now()
    t = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd) for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            print(f"  warning: {' '.join(cmds[0][:3])} exited {p.returncode}: {err.decode()[-300:]}", file=sys.stderr)
    return time.perf_counter() - t, cpu_now() - c0


def _scan_one(args):
    from deid.leakscan import scan_file

    path, values = args
    data = Path(path).read_bytes()
    import pydicom
    import io

    leaks = scan_file(data, values)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        private = sum(1 for e in ds.iterall() if e.tag.is_private)
        overlay = sum(1 for e in ds.iterall() if e.tag.group & 0xFF00 == 0x6000)
        meta_ok = ds.file_meta.get("MediaStorageSOPInstanceUID") == ds.get("SOPInstanceUID")
        uid_ok = "SOPInstanceUID" in ds and "StudyInstanceUID" in ds
    except Exception:
        private = overlay = 0
        meta_ok = uid_ok = False
    return len(leaks), [values[l.value_index] for l in leaks], private, overlay, meta_ok, uid_ok


def leak_count(out_dir: Path, truth: dict) -> dict:
    values = sorted({v for p in truth["patients"] for v in p["phi_values"]})
    values += [truth["site"][k] for k in ("institution_name", "institution_address", "phone")]
    files = sorted(str(p) for p in out_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    kinds: Counter = Counter()
    n_leaky = total = priv = ovl = bad_meta = no_uid = 0
    by_value_kind = Counter()
    with ProcessPoolExecutor(2) as pool:
        for n, leaked, p, o, meta_ok, uid_ok in pool.map(_scan_one, [(f, values) for f in files], chunksize=32):
            total += n
            n_leaky += bool(n)
            priv += p
            ovl += o
            bad_meta += not meta_ok
            no_uid += not uid_ok
            for v in leaked:
                by_value_kind[_kind(v, truth)] += 1
    return {"files": len(files), "files_with_leaks": n_leaky, "values_left": total, "private_left": priv,
            "overlay_left": ovl, "meta_uid_mismatch": bad_meta, "uids_missing": no_uid, "by_kind": dict(by_value_kind)}


def _kind(v: str, truth: dict) -> str:
    """A coarse category of a leaked value (printed instead of the value)."""
    if v.replace(".", "").isdigit() and "." in v:
        return "uid"
    if v.isdigit() and len(v) == 8:
        return "date"
    if v.replace(".", "").isdigit():
        return "time/number"
    if any(v == truth["site"][k] for k in ("institution_name", "institution_address", "institutional_department_name", "phone")):
        return "institution"
    return "name/id/text"


def ours(clean: Path, work: Path, workers: int) -> tuple[tuple[float, float], Path]:
    out = work / "out_ours"
    shutil.rmtree(out, ignore_errors=True)
    vault = work / "vault"
    cmd = [sys.executable, "-m", "curation.cli.main", "deid", str(clean), str(out), "--secret-file", str(vault / "secret"),
           "--workers", str(workers), "--quiet", "--report", str(work / "report_ours.json")]
    return timed([cmd], cwd=str(ROOT)), out


def dicognito(files: list[str], work: Path, py: str, procs: int) -> tuple[tuple[float, float], Path]:
    out = work / f"out_dicognito_{procs}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    chunks = [files[i::procs] for i in range(procs)]
    cmds = [[py, "-I", "-m", "dicognito", "--quiet", "-o", str(out), *c] for c in chunks]
    return timed(cmds, cwd="/"), out


def deid_pkg(files: list[str], work: Path, py: str, procs: int) -> tuple[tuple[float, float], Path]:
    out = work / f"out_deidpkg_{procs}"
    shutil.rmtree(out, ignore_errors=True)
    chunks = [files[i::procs] for i in range(procs)]
    cmds = [[py, "-I", "-c", DEID_PKG_DRIVER, str(out / str(i)), *c] for i, c in enumerate(chunks)]
    return timed(cmds, cwd="/"), out


# ---------------------------------------------------------------- pixel scrubbing
def _tesseract_full(path: str) -> tuple[int, list]:
    """Baseline: OCR every whole frame (pytesseract, like presidio's OCR step) and mask every word
    box it reads (every word treated as PHI: the best recall an OCR-first redactor can have)."""
    import pydicom
    import pytesseract

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = (arr if n > 1 else arr[None]).copy()
    for f in range(frames.shape[0]):
        g = frames[f].max(axis=-1) if frames.ndim == 4 else frames[f]
        d = pytesseract.image_to_data(g, output_type=pytesseract.Output.DICT)
        for i, w in enumerate(d["text"]):
            if w.strip() and float(d["conf"][i]) > 0:
                x, y, ww, hh = d["left"][i], d["top"][i], d["width"][i], d["height"][i]
                frames[f, y:y + hh, x:x + ww, ...] = 0
    return frames.shape[0], frames


def _masked_fraction(src_frames: np.ndarray, out_frames: np.ndarray, t: dict) -> float:
    x, y, w, h = t["box"]
    fa = src_frames[t["frame"]]
    fb = out_frames[t["frame"]]
    if fa.ndim == 3:
        fa, fb = fa.max(axis=-1), fb.max(axis=-1)
    text = fa[y:y + h, x:x + w] >= 100
    return float((fb[y:y + h, x:x + w][text] < 30).mean()) if text.any() else 1.0


def _readable(out_frames: np.ndarray, t: dict) -> int:
    import pytesseract

    x, y, w, h = t["box"]
    fb = out_frames[t["frame"]]
    if fb.ndim == 3:
        fb = fb.max(axis=-1)
    crop = fb[max(0, y - 6):y + h + 6, max(0, x - 6):x + w + 6]
    read = pytesseract.image_to_string(np.pad(255 - crop, 10, constant_values=255), config="--psm 7").lower()
    return sum(1 for tok in t["text"].replace(",", " ").split() if len(tok) >= 3 and tok.lower() in read)


def pixel_bench(site: Path, truth: dict, work: Path, repeat: int = 4) -> dict:
    import pydicom

    from deid.batch import deidentify_tree

    texts: dict[str, list] = {}
    for s in truth["series"]:
        for t in s["burned_in_text"]:
            texts.setdefault(t["file"], []).append(t)
    src_dir = work / "pixel_src"
    shutil.rmtree(src_dir, ignore_errors=True)
    for k in range(repeat):  # the same images several times: throughput, not process start-up
        for rel in texts:
            dst = src_dir / f"rep{k}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(site / rel, dst)
    files = sorted(texts)
    n_frames = sum(int(pydicom.dcmread(site / f, stop_before_pixels=True).get("NumberOfFrames", 1) or 1) for f in files)
    # ours: the full de-identification (header + pixels + verification) of the at-risk images
    out = work / "pixel_out_ours"
    shutil.rmtree(out, ignore_errors=True)
    c0, t0 = cpu_now(), time.perf_counter()
    rep = deidentify_tree(src_dir, out, secret_file=work / "vault" / "secret", workers=2).as_dict()
    t_ours, c_ours = time.perf_counter() - t0, cpu_now() - c0
    recs = {r["file"][len("rep0/"):]: r for r in rep["files"] if r["file"].startswith("rep0/")}
    # baseline: full-image tesseract on every frame, 2 processes
    c0, t0 = cpu_now(), time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        allf = [str(src_dir / f"rep{k}" / f) for k in range(repeat) for f in files]
        base = dict(zip(files, pool.map(_tesseract_full, allf)))  # first repeat's results
    t_base, c_base = time.perf_counter() - t0, cpu_now() - c0
    res = {"images": len(files) * repeat, "frames": n_frames * repeat, "boxes": sum(len(v) for v in texts.values()),
           "repeat": repeat}
    for name, get in (("ours", lambda f: _frames_of(out / recs[f]["output"]) if recs[f].get("output") else None),
                      ("tesseract_full", lambda f: base[f][1])):
        masked = readable = missing = 0
        for f, ts in texts.items():
            src = _frames_of(site / f)
            o = get(f)
            if o is None:
                missing += len(ts)
                continue
            for t in ts:
                masked += _masked_fraction(src, o, t) >= 0.95
                readable += _readable(o, t)
        res[name] = {"boxes_masked_95": masked, "tokens_readable": readable, "not_written": missing}
    res["ours"]["seconds"] = round(t_ours, 2)
    res["ours"]["images_per_s"] = round(len(files) * repeat / t_ours, 2)
    res["ours"]["frames_per_s"] = round(n_frames * repeat / t_ours, 2)
    res["ours"]["quarantined"] = rep["quarantined_count"]
    res["ours"]["cpu_ms_per_image"] = round(c_ours / (len(files) * repeat) * 1000, 1)
    res["tesseract_full"]["cpu_ms_per_image"] = round(c_base / (len(files) * repeat) * 1000, 1)
    res["tesseract_full"]["seconds"] = round(t_base, 2)
    res["tesseract_full"]["images_per_s"] = round(len(files) * repeat / t_base, 2)
    res["tesseract_full"]["frames_per_s"] = round(n_frames * repeat / t_base, 2)
    return res


def _frames_of(path: Path) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    return a if int(ds.get("NumberOfFrames", 1) or 1) > 1 else a[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-deid")
    ap.add_argument("--peer-python", default=str(ROOT / "var" / "peer-venv" / "bin" / "python"))
    ap.add_argument("--skip-pixels", action="store_true")
    ap.add_argument("--skip-headers", action="store_true")
    ap.add_argument("--pixel-repeat", type=int, default=4)
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    a.workdir.mkdir(parents=True, exist_ok=True)
    clean, truth, files = corpus(a.workdir, a.patients)
    site = a.workdir / f"site_p{a.patients}"
    print(f"corpus: {len(files)} valid DICOM files of the synthetic site ({a.patients} patients); load: {os.getloadavg()}")
    results = {"files": len(files), "load_before": os.getloadavg()}
    runs = [("this project (curate deid, 2 workers)", lambda: ours(clean, a.workdir, 2))]
    if Path(a.peer_python).exists():
        runs += [("dicognito 0.19.0 (1 process, as shipped)", lambda: dicognito(files, a.workdir, a.peer_python, 1)),
                 ("dicognito 0.19.0 (2 processes)", lambda: dicognito(files, a.workdir, a.peer_python, 2)),
                 ("deid 0.4.13 default recipe (2 processes)", lambda: deid_pkg(files, a.workdir, a.peer_python, 2))]
    else:
        print(f"peer tools skipped: {a.peer_python} not found (see the module docstring)")
    print(f"{'tool':44s} {'files/s':>8s} {'CPU ms/file':>11s} {'out':>5s} {'leaky files':>11s} {'values left':>11s} "
          f"{'private':>7s} {'overlay':>7s}  by kind")
    for name, fn in ([] if a.skip_headers else runs):
        (secs, cpu), out = fn()
        lk = leak_count(out, truth)
        fps = len(files) / secs
        results[name] = {"seconds": round(secs, 2), "files_per_s": round(fps, 1),
                         "cpu_ms_per_file": round(cpu / len(files) * 1000, 2), **lk}
        print(f"{name:44s} {fps:8.1f} {cpu / len(files) * 1000:11.2f} {lk['files']:5d} {lk['files_with_leaks']:11d} "
              f"{lk['values_left']:11d} {lk['private_left']:7d} {lk['overlay_left']:7d}  {lk['by_kind']}")
    if not a.skip_pixels:
        px = pixel_bench(site, truth, a.workdir, a.pixel_repeat)
        results["pixels"] = px
        print(f"pixel scrubbing, {px['images']} images with burned-in text ({px['frames']} frames; recall on "
              f"{px['boxes']} ground-truth text boxes of the first repeat):")
        for name in ("ours", "tesseract_full"):
            r = px[name]
            print(f"  {name:16s} {r['images_per_s']:6.2f} images/s ({r['frames_per_s']:.1f} frames/s, "
                  f"{r['cpu_ms_per_image']:.0f} CPU ms/image)  boxes >=95% masked {r['boxes_masked_95']}/{px['boxes']}"
                  f"  tokens still readable {r['tokens_readable']}  not written {r['not_written']}")
    results["load_after"] = os.getloadavg()
    print(f"load after: {os.getloadavg()}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
