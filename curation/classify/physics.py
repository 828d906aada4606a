"""MR contrast physics for classification: the Ernst angle, and a seeded sample of acquisitions whose
kind follows from their parameters (TR, TE, TI, flip angle, sequence codes, field strength).

Why a generated sample: a model trained only on the synthetic hospital learns that site's protocol
table (three vendors, one T1W that is always a 3D gradient echo, one PDW that is a 2D spin echo),
so a textbook 2D spin-echo T1 (TR 550 / TE 9.5) lands next to the only spin echo with a short TE it
has seen: the site's PDW. Here every recipe is a region of parameter space that MR physics names
(Westbrook, "MRI in Practice"; McRobbie, "MRI from Picture to Proton"):

- T1W: short TR (spin echo < ~800 ms) and short TE (< ~30 ms); an inversion-prepared gradient echo
  (MPRAGE, IR-SPGR/BRAVO, 3D TFE) with TI ~400-1100 ms; an IR spin echo with TI ~700-1200 ms
  (T1-FLAIR); a spoiled gradient echo whose flip angle is well above the Ernst angle;
- T2W: long TR (> ~2000 ms) and long TE (> ~70 ms), 2D or 3D (SPACE/CUBE/VISTA); STIR (TI ~120-250 ms,
  fat nulled: a fat-suppressed T2-weighted contrast, there is no separate STIR kind);
- PDW: long TR and short TE; a spoiled gradient echo far below the Ernst angle with a short TE;
- FLAIR: inversion recovery with TI ~1600-2800 ms (fluid nulled) and a long TE;
- SWI: 3D gradient echo, small flip angle, long TE (T2*-weighted volume);
- OTHER_MR: 2D T2* gradient echo (small flip, long TE), BOLD EPI;
- DWI/ADC/DCE/LOCALIZER: their header evidence (b-values, derived maps, temporal positions, planes).

The generator imports nothing from the synthetic hospital (`synth`): its values come from
these ranges only. `sample(seed)` is deterministic; TRAIN_SEED feeds `curate train classifier`,
HELDOUT_SEED is for evaluation only (tests, benchmarks/classify_blank.py) and no training uses it.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation.classify.header import SeriesHeader
from curation.vocabulary import Modality, SeriesKind

#: A representative brain tissue T1 (ms) for the Ernst angle: white matter ~600-850 ms and grey
#: matter ~950-1400 ms between 1.5 and 3 T; one value keeps the rule readable and the boundary
#: between "well above" and "well below" the Ernst angle is wide enough for the spread.
TISSUE_T1_MS = 1000.0

TRAIN_SEED = 2026
HELDOUT_SEED = 7919
#: Acquisitions per recipe in the training sample (the held-out sample uses the same count).
PER_RECIPE = 120


def ernst_angle(tr_ms: float, t1_ms: float = TISSUE_T1_MS) -> float:
    """Flip angle (degrees) of maximum spoiled gradient-echo signal: arccos(exp(-TR/T1))."""
    return math.degrees(math.acos(math.exp(-max(tr_ms, 1e-3) / t1_ms)))


def flip_over_ernst(h: SeriesHeader) -> float | None:
    """Flip angle / Ernst angle: >> 1 is T1-weighting in a spoiled gradient echo, << 1 is PD/T2*."""
    if h.flip_angle is None or h.repetition_time is None or h.repetition_time <= 0:
        return None
    return h.flip_angle / ernst_angle(h.repetition_time)


@dataclass(frozen=True)
class Acquisition:
    """One sampled series: its header (no descriptions), its kind, and the recipe that made it."""

    header: SeriesHeader
    kind: str
    recipe: str


# ---------------------------------------------------------------------------------------------
# Vendor styles of the coded fields: the same physics written the way each vendor writes it.

_IMAGE_TYPE = {
    "siemens": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
    "ge": ["ORIGINAL", "PRIMARY", "OTHER"],
    "philips": ["ORIGINAL", "PRIMARY", "M", "{family}"],
    "other": ["ORIGINAL", "PRIMARY"],
}
_PHILIPS_FAMILY = {"se": "M_SE", "ir": "M_IR", "gr": "M_FFE", "ep": "M_FFE"}
_SE_VARIANTS = {"siemens": [["SK", "SP"], ["SK", "SP", "OSP"], ["SK"]], "ge": [["SK"], ["SK", "OSP"], ["NONE"]],
                "philips": [["SK"], ["SK", "SP"], ["NONE"]], "other": [["NONE"], ["SP"], []]}
_GR_VARIANTS = {"siemens": [["SP"], ["SK", "SP"], ["SP", "OSP"]], "ge": [["SS"], ["SS", "SK"], ["SP"]],
                "philips": [["SP"], ["SK", "SP"], ["SS"]], "other": [["SP"], []]}
_OPTIONS = ["PFP", "SAT1", "FC", "FS", "PFF"]
_FIELDS = (0.35, 1.0, 1.5, 1.5, 3.0, 3.0)


class _Draw:
    """Seeded draws with the vocabulary of this module (log-uniform for times, choices for codes)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def log(self, lo: float, hi: float) -> float:
        return round(float(math.exp(self.rng.uniform(math.log(lo), math.log(hi)))), 2)

    def uni(self, lo: float, hi: float) -> float:
        return round(float(self.rng.uniform(lo, hi)), 1)

    def pick(self, seq: list | tuple) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def options(self, extra: list[str] | None = None) -> list[str]:
        opts = [o for o in _OPTIONS if self.chance(0.2)]
        return list(dict.fromkeys([*(extra or []), *opts]))


def _base(d: _Draw, family: str, acquisition: str, planes: int = 1) -> tuple[SeriesHeader, str]:
    """A header with geometry, vendor, field strength and image type; the caller adds the physics."""
    vendor = d.pick(("siemens", "ge", "philips", "other"))
    n_slices = int(d.rng.integers(60, 200)) if acquisition == "3D" else int(d.rng.integers(18, 40))
    iops = [[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]]
    first = int(d.rng.integers(3))
    orientations = [iops[(first + i) % 3] for i in range(planes)]
    it = [t.replace("{family}", _PHILIPS_FAMILY[family]) for t in _IMAGE_TYPE[vendor]]
    h = SeriesHeader(modality=Modality.MR, sop_class_uid="1.2.840.10008.5.1.4.1.1.4", manufacturer=vendor.upper(),
                     n_files=n_slices, n_frames=n_slices, n_positions=n_slices, orientations=orientations,
                     mr_acquisition_type=acquisition, image_type=it, magnetic_field_strength=d.pick(_FIELDS),
                     photometric_interpretation="MONOCHROME2", rows=256, columns=256)
    return h, vendor


def _se(d: _Draw, tr: tuple[float, float], te: tuple[float, float], etl: tuple[int, int] = (1, 1),
        acquisition: str = "2D") -> SeriesHeader:
    h, vendor = _base(d, "se", acquisition)
    h.scanning_sequence = ["SE"]
    h.sequence_variant = list(d.pick(_SE_VARIANTS[vendor]))
    h.scan_options = d.options()
    h.repetition_time, h.echo_time = d.log(*tr), d.log(*te)
    n = int(d.rng.integers(etl[0], etl[1] + 1))
    h.echo_train_length = float(n) if d.chance(0.85) else None
    # Vendors write the excitation (90) or the refocusing angle (120-180) of a spin echo.
    h.flip_angle = d.pick((90.0, 90.0, d.uni(120, 180), d.uni(70, 90))) if d.chance(0.9) else None
    return h


def _ir(d: _Draw, tr: tuple[float, float], te: tuple[float, float], ti: tuple[float, float],
        etl: tuple[int, int], acquisition: str = "2D") -> SeriesHeader:
    h, vendor = _base(d, "ir", acquisition)
    h.scanning_sequence = d.pick((["SE", "IR"], ["IR"], ["IR", "SE"], ["SE"]))  # some exports omit IR...
    h.sequence_variant = d.pick((["SK", "SP", "MP"], ["SK", "MP"], ["SK"], ["MP"]))
    h.scan_options = d.options(["IR"] if d.chance(0.6) or h.scanning_sequence == ["SE"] else [])
    h.repetition_time, h.echo_time, h.inversion_time = d.log(*tr), d.log(*te), d.log(*ti)
    h.echo_train_length = float(d.rng.integers(etl[0], etl[1] + 1)) if d.chance(0.85) else None
    h.flip_angle = d.pick((90.0, d.uni(120, 180))) if d.chance(0.9) else None
    return h


def _gr(d: _Draw, tr: tuple[float, float], te: tuple[float, float], flip: Callable[[float], float],
        acquisition: str, planes: int = 1) -> SeriesHeader:
    h, vendor = _base(d, "gr", acquisition, planes)
    h.scanning_sequence = ["GR"]
    h.sequence_variant = list(d.pick(_GR_VARIANTS[vendor]))
    h.scan_options = d.options()
    h.repetition_time = d.log(*tr)
    h.echo_time = min(d.log(*te), round(0.9 * h.repetition_time, 2))
    h.flip_angle = round(flip(h.repetition_time), 1)
    h.echo_train_length = 1.0 if d.chance(0.5) else None
    return h


def _t1_field_ti(d: _Draw, h: SeriesHeader, lo15: float, hi15: float, lo3: float, hi3: float) -> float:
    """An inversion time that scales with field strength (tissue T1 lengthens with B0)."""
    return d.uni(lo3, hi3) if (h.magnetic_field_strength or 1.5) >= 2.0 else d.uni(lo15, hi15)


# ---------------------------------------------------------------------------------------------
# Recipes: (kind, name, draw function). Each is a region that contrast physics names.

def _t1_se(d: _Draw) -> SeriesHeader:
    return _se(d, tr=(300, 800), te=(5, 28), etl=(1, 4))


def _t1_ir_se(d: _Draw) -> SeriesHeader:  # T1-FLAIR: an IR spin echo nulling nothing, TI near tissue T1
    h = _ir(d, tr=(1500, 3200), te=(6, 28), ti=(700, 1200), etl=(2, 8))
    h.inversion_time = _t1_field_ti(d, h, 700, 950, 850, 1200)
    return h


def _t1_mprage(d: _Draw) -> SeriesHeader:  # inversion-prepared 3D gradient echo, TR = shot interval
    h, vendor = _base(d, "ir", "3D")
    h.scanning_sequence = d.pick((["GR", "IR"], ["GR", "IR"], ["GR"]))
    h.sequence_variant = d.pick((["SK", "SP", "MP"], ["SP", "MP"], ["SK", "MP"]))
    h.scan_options = d.options(["IR"] if d.chance(0.6) else [])
    h.repetition_time, h.echo_time = d.log(1600, 2800), d.log(2, 5)
    h.inversion_time = _t1_field_ti(d, h, 700, 1100, 800, 1100)
    h.flip_angle = d.uni(6, 12)
    h.echo_train_length = 1.0 if d.chance(0.5) else None
    return h


def _t1_ir_spgr(d: _Draw) -> SeriesHeader:  # IR-SPGR / BRAVO / 3D TFE: TR written as the echo spacing
    h = _gr(d, tr=(5, 14), te=(1.6, 5), flip=lambda tr: d.uni(7, 20), acquisition="3D")
    if d.chance(0.5):
        h.sequence_variant = list(dict.fromkeys([*h.sequence_variant, "MP"]))
    if d.chance(0.75) or "MP" not in h.sequence_variant:
        h.inversion_time = d.uni(400, 1100)
    return h


def _t1_spgr(d: _Draw) -> SeriesHeader:  # spoiled gradient echo, flip well above the Ernst angle
    if d.chance(0.5):
        return _gr(d, tr=(100, 350), te=(2, 6), flip=lambda tr: min(90.0, d.uni(1.6, 2.4) * ernst_angle(tr)),
                   acquisition="2D")
    return _gr(d, tr=(6, 30), te=(1.5, 6), flip=lambda tr: min(50.0, d.uni(2.5, 5.0) * ernst_angle(tr)),
               acquisition="3D")


def _t2_se(d: _Draw) -> SeriesHeader:
    return _se(d, tr=(2000, 8000), te=(72, 150), etl=d.pick(((1, 1), (5, 28))))


def _t2_3d(d: _Draw) -> SeriesHeader:  # SPACE / CUBE / VISTA: variable refocusing, very long TE
    return _se(d, tr=(2200, 3600), te=(180, 420), etl=(60, 260), acquisition="3D")


def _t2_stir(d: _Draw) -> SeriesHeader:  # fat nulled: TI = ln2 x T1(fat)
    h = _ir(d, tr=(2500, 7000), te=(30, 90), ti=(120, 250), etl=(5, 20))
    h.inversion_time = _t1_field_ti(d, h, 120, 180, 180, 250)
    return h


def _pd_se(d: _Draw) -> SeriesHeader:
    return _se(d, tr=(2000, 6000), te=(7, 30), etl=d.pick(((1, 1), (3, 12))))


def _pd_gre(d: _Draw) -> SeriesHeader:  # spoiled gradient echo far below the Ernst angle, short TE
    return _gr(d, tr=(150, 800), te=(2, 7), flip=lambda tr: max(3.0, d.uni(0.1, 0.3) * ernst_angle(tr)),
               acquisition="2D")


def _flair_2d(d: _Draw) -> SeriesHeader:
    h = _ir(d, tr=(6000, 11500), te=(80, 150), ti=(1800, 2800), etl=(12, 32))
    h.inversion_time = _t1_field_ti(d, h, 1800, 2300, 2200, 2800)
    return h


def _flair_3d(d: _Draw) -> SeriesHeader:
    return _ir(d, tr=(4800, 8000), te=(250, 450), ti=(1600, 2500), etl=(150, 260), acquisition="3D")


def _swi(d: _Draw) -> SeriesHeader:
    return _gr(d, tr=(25, 55), te=(15, 45), flip=lambda tr: d.uni(10, 20), acquisition="3D")


def _t2star_2d(d: _Draw) -> SeriesHeader:
    return _gr(d, tr=(300, 1000), te=(12, 30), flip=lambda tr: d.uni(15, 30), acquisition="2D")


def _bold(d: _Draw) -> SeriesHeader:
    h, vendor = _base(d, "ep", "2D")
    h.scanning_sequence = d.pick((["EP"], ["GR", "EP"], ["EP", "GR"]))
    h.sequence_variant = list(d.pick(_GR_VARIANTS[vendor]))
    h.repetition_time, h.echo_time, h.flip_angle = d.log(700, 3000), d.uni(25, 40), d.uni(50, 90)
    h.temporal_positions = int(d.rng.integers(100, 400))
    if d.chance(0.5):  # one mosaic file per volume
        h.n_files = h.n_frames = h.temporal_positions
        h.image_type = [*h.image_type, "MOSAIC"]
    else:
        h.n_files = h.n_frames = h.n_positions * h.temporal_positions
    return h


def _dwi(d: _Draw) -> SeriesHeader:
    h, vendor = _base(d, "ep", "2D")
    h.scanning_sequence = d.pick((["EP"], ["SE", "EP"], ["EP", "SE"]))
    h.sequence_variant = list(d.pick(_SE_VARIANTS[vendor]))
    h.scan_options = d.options(["FS"] if d.chance(0.5) else [])
    h.repetition_time, h.echo_time, h.flip_angle = d.log(2500, 12000), d.uni(55, 110), 90.0
    h.b_values = d.pick(([0.0, 1000.0], [0.0, 800.0], [0.0, 500.0, 1000.0], [1000.0], [0.0, 1000.0, 2000.0]))
    if d.chance(0.4):
        h.image_type = [*h.image_type, "DIFFUSION"]
    h.n_files = h.n_frames = h.n_positions * len(h.b_values)
    return h


def _adc(d: _Draw) -> SeriesHeader:
    h = _dwi(d)
    h.b_values = [] if d.chance(0.6) else h.b_values
    h.image_type = ["DERIVED", "PRIMARY", *d.pick((["DIFFUSION", "ADC"], ["ADC"], ["DIFFUSION"]))]  # not-vocabulary
    h.derived = True
    h.n_files = h.n_frames = h.n_positions
    return h


def _dce(d: _Draw) -> SeriesHeader:
    h = _gr(d, tr=(3, 6.5), te=(1, 2.6), flip=lambda tr: d.uni(9, 25), acquisition="3D")
    h.temporal_positions = int(d.rng.integers(5, 60))
    h.n_files = h.n_frames = h.n_positions * h.temporal_positions
    if d.chance(0.7):
        h.contrast_agent = "Gadolinium"
    return h


def _localizer(d: _Draw) -> SeriesHeader:
    h = _gr(d, tr=(3, 15), te=(1, 5), flip=lambda tr: d.uni(15, 40), acquisition="2D", planes=3)
    h.n_files = h.n_frames = h.n_positions = int(d.rng.integers(3, 12))
    return h


RECIPES: tuple[tuple[str, str, Callable[[_Draw], SeriesHeader]], ...] = (
    (SeriesKind.T1W, "spin echo, short TR / short TE", _t1_se),
    (SeriesKind.T1W, "IR spin echo, TI ~ tissue T1 (T1-FLAIR)", _t1_ir_se),
    (SeriesKind.T1W, "MPRAGE: IR-prepared 3D gradient echo, TI 700-1100", _t1_mprage),
    (SeriesKind.T1W, "IR-SPGR / BRAVO / 3D TFE (TR = echo spacing)", _t1_ir_spgr),
    (SeriesKind.T1W, "spoiled gradient echo above the Ernst angle", _t1_spgr),
    (SeriesKind.T2W, "spin echo / TSE, long TR / long TE", _t2_se),
    (SeriesKind.T2W, "3D TSE (SPACE/CUBE/VISTA), very long TE", _t2_3d),
    (SeriesKind.T2W, "STIR: IR with short TI (fat nulled)", _t2_stir),
    (SeriesKind.PDW, "spin echo / TSE, long TR / short TE", _pd_se),
    (SeriesKind.PDW, "spoiled gradient echo below the Ernst angle, short TE", _pd_gre),
    (SeriesKind.FLAIR, "2D IR TSE, long TI (fluid nulled), long TE", _flair_2d),
    (SeriesKind.FLAIR, "3D IR TSE, long TI, very long TE", _flair_3d),
    (SeriesKind.SWI, "3D gradient echo, small flip, long TE", _swi),
    (SeriesKind.OTHER_MR, "2D T2* gradient echo, small flip, long TE", _t2star_2d),
    (SeriesKind.OTHER_MR, "BOLD EPI time series", _bold),
    (SeriesKind.DWI, "diffusion-weighted EPI", _dwi),
    (SeriesKind.ADC, "ADC map (derived)", _adc),
    (SeriesKind.DCE, "dynamic 3D spoiled gradient echo", _dce),
    (SeriesKind.LOCALIZER, "3-plane gradient-echo localizer", _localizer),
)


def _drop_codes(d: _Draw, h: SeriesHeader) -> SeriesHeader:
    """Exports (converters, older scanners, de-identified copies) often lack the coded fields: drop
    each now and then, so the physics is learnt from TR/TE/TI/flip and not from the codes alone."""
    if d.chance(0.1):
        h.scanning_sequence = []
    if d.chance(0.1):
        h.sequence_variant, h.scan_options = [], []
    if d.chance(0.1):
        h.magnetic_field_strength = None
    if d.chance(0.05):
        h.mr_acquisition_type = ""
    return h


def sample(seed: int = TRAIN_SEED, per_recipe: int = PER_RECIPE) -> list[Acquisition]:
    """`per_recipe` acquisitions of every recipe, deterministic for a seed (descriptions always blank)."""
    d = _Draw(np.random.default_rng(seed))
    out = []
    for kind, name, draw in RECIPES:
        for _ in range(per_recipe):
            out.append(Acquisition(_drop_codes(d, draw(d)), kind, name))
    return out


def read_protocol_table(path: str | Path) -> list[tuple[dict[str, str], SeriesHeader]]:
    """(row, header with blank descriptions) per row of a protocol table CSV (`#` lines are comments):
    columns id, kind, vendor, field_t, scanning_sequence, sequence_variant, scan_options, acquisition,
    tr, te, ti, flip, etl (ms, degrees; blank = not written), source, note. A site checks its own
    protocol list the same way (tests/classify/vendor_protocols.csv is the shipped example)."""
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for row in csv.DictReader(lines):
        def num(key: str) -> float | None:
            return float(row[key]) if row.get(key, "").strip() else None

        def codes(key: str) -> list[str]:
            return [t.strip().upper() for t in row.get(key, "").split("\\") if t.strip()]

        n = 24 if row["acquisition"] == "2D" else 160
        h = SeriesHeader(modality=Modality.MR, sop_class_uid="1.2.840.10008.5.1.4.1.1.4", manufacturer=row["vendor"],
                         n_files=n, n_frames=n, n_positions=n, orientations=[[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]],
                         image_type=["ORIGINAL", "PRIMARY"], scanning_sequence=codes("scanning_sequence"),
                         sequence_variant=codes("sequence_variant"), scan_options=codes("scan_options"),
                         mr_acquisition_type=row["acquisition"], repetition_time=num("tr"), echo_time=num("te"),
                         inversion_time=num("ti"), flip_angle=num("flip"), echo_train_length=num("etl"),
                         magnetic_field_strength=num("field_t"))
        out.append((row, h))
    return out
