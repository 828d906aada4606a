"""Vendor MR brain protocols: the names, sequence parameters and header codes each vendor writes.

The values are the ones the three big vendors put in their exports (SeriesDescription, ScanningSequence,
SequenceVariant, ScanOptions, ImageType), so a classifier trained on this site meets the naming
styles it will meet in a hospital. TR/TE/TI/flip are also what drives the simulated contrast.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from curation.vocabulary import SeriesKind


@dataclass(frozen=True)
class Protocol:
    kind: str  # T1W | T2W | FLAIR | PDW | DWI | ADC | DCE | SWI | LOCALIZER
    description: str
    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    acquisition: str  # 2D | 3D
    tr: float
    te: float
    flip: float
    signal: str  # se | ir | gre : the model mr_signal uses
    image_type: tuple[str, ...]
    sequence_name: str
    plane: str = "axial"
    ti: float | None = None
    echo_train: int = 1
    phase_dir: str = "COL"
    protocol_name: str | None = None
    contrast: bool = False
    extra: dict = field(default_factory=dict)


def _p(**kw) -> Protocol:
    return Protocol(**kw)


SIEMENS_ORIG = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")
GE_ORIG = ("ORIGINAL", "PRIMARY", "OTHER")
PHILIPS_ORIG = ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE")
PHILIPS_SE = ("ORIGINAL", "PRIMARY", "M_SE", "M", "SE")
PHILIPS_IR = ("ORIGINAL", "PRIMARY", "M_IR", "M", "IR")

PROTOCOLS: dict[str, dict[str, Protocol]] = {
    "siemens": {
        SeriesKind.LOCALIZER: _p(kind=SeriesKind.LOCALIZER, description="localizer", scanning_sequence="GR",
                                 sequence_variant="SP",
                        scan_options="", acquisition="2D", tr=8.6, te=4.0, flip=20, signal="gre",
                        image_type=("ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"), sequence_name="*fl2d1"),
        SeriesKind.T1W: _p(kind=SeriesKind.T1W, description="t1_mprage_sag_p2_iso", scanning_sequence="GR\\IR",
                  sequence_variant="SK\\SP\\MP", scan_options="IR", acquisition="3D", tr=2300, te=2.98, ti=900,
                  flip=9, signal="ir", image_type=SIEMENS_ORIG, sequence_name="*tfl3d1_16ns", plane="sagittal",
                  phase_dir="ROW"),
        "T1W_POST": _p(kind=SeriesKind.T1W, description="t1_mprage_sag_p2_iso_post", scanning_sequence="GR\\IR",
                       sequence_variant="SK\\SP\\MP", scan_options="IR", acquisition="3D", tr=2300, te=2.98,
                       ti=900, flip=9, signal="ir", image_type=SIEMENS_ORIG, sequence_name="*tfl3d1_16ns",
                       plane="sagittal", phase_dir="ROW", contrast=True),
        SeriesKind.T2W: _p(kind=SeriesKind.T2W, description="t2_tse_tra", scanning_sequence="SE",
                           sequence_variant="SK\\SP\\OSP",
                  scan_options="PFP\\SAT1", acquisition="2D", tr=5000, te=100, flip=150, signal="se",
                  image_type=SIEMENS_ORIG, sequence_name="*tse2d1_15", echo_train=15),
        SeriesKind.FLAIR: _p(kind=SeriesKind.FLAIR, description="t2_tirm_tra_dark-fluid", scanning_sequence="SE\\IR",
                    sequence_variant="SK\\SP\\MP", scan_options="IR\\PFP", acquisition="2D", tr=9000, te=85,
                    ti=2500, flip=150, signal="ir", image_type=SIEMENS_ORIG, sequence_name="*tir2d1_16",
                    echo_train=16),
        SeriesKind.PDW: _p(kind=SeriesKind.PDW, description="pd_tse_tra", scanning_sequence="SE",
                           sequence_variant="SK\\SP",
                  scan_options="PFP", acquisition="2D", tr=3000, te=12, flip=150, signal="se",
                  image_type=SIEMENS_ORIG, sequence_name="*tse2d1_5", echo_train=5),
        SeriesKind.DWI: _p(kind=SeriesKind.DWI, description="ep2d_diff_3scan_trace", scanning_sequence="EP",
                           sequence_variant="SK\\SP",
                  scan_options="PFP\\FS", acquisition="2D", tr=4000, te=89, flip=90, signal="se",
                  image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "NORM"), sequence_name="*ep_b1000t"),
        SeriesKind.ADC: _p(kind=SeriesKind.ADC, description="ep2d_diff_3scan_trace_ADC", scanning_sequence="EP",
                  sequence_variant="SK\\SP", scan_options="PFP\\FS", acquisition="2D", tr=4000, te=89, flip=90,
                  signal="se", image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND", "NORM"),
                  sequence_name="*ep_b0_1000"),
        SeriesKind.DCE: _p(kind=SeriesKind.DCE, description="t1_vibe_fs_tra_dyn", scanning_sequence="GR",
                           sequence_variant="SP\\OSP",
                  scan_options="PFP\\FS", acquisition="3D", tr=4.5, te=1.8, flip=12, signal="gre",
                  image_type=SIEMENS_ORIG, sequence_name="*fl3d1", contrast=True),
        SeriesKind.SWI: _p(kind=SeriesKind.SWI, description="swi_tra", scanning_sequence="GR", sequence_variant="SP",
                  scan_options="", acquisition="3D", tr=27, te=20, flip=15, signal="gre",
                  image_type=("ORIGINAL", "PRIMARY", "M", "SWI", "NORM", "DIS2D"), sequence_name="*swi3d1r"),
    },
    "ge": {
        SeriesKind.LOCALIZER: _p(kind=SeriesKind.LOCALIZER, description="3-Plane Loc", scanning_sequence="GR",
                                 sequence_variant="SS",
                        scan_options="FAST_GEMS", acquisition="2D", tr=5.3, te=1.6, flip=30, signal="gre",
                        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), sequence_name="fgre"),
        SeriesKind.T1W: _p(kind=SeriesKind.T1W, description="Sag 3D T1 BRAVO", scanning_sequence="GR",
                           sequence_variant="SS\\SK",
                  scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\ACC_GEMS\\PFP", acquisition="3D", tr=8.2,
                  te=3.2, ti=450, flip=12, signal="gre", image_type=GE_ORIG, sequence_name="efgre3d",
                  plane="sagittal", phase_dir="ROW"),
        "T1W_POST": _p(kind=SeriesKind.T1W, description="Sag 3D T1 BRAVO +C", scanning_sequence="GR",
                       sequence_variant="SS\\SK", scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\ACC_GEMS\\PFP",
                       acquisition="3D", tr=8.2, te=3.2, ti=450, flip=12, signal="gre", image_type=GE_ORIG,
                       sequence_name="efgre3d", plane="sagittal", phase_dir="ROW", contrast=True),
        SeriesKind.T2W: _p(kind=SeriesKind.T2W, description="Ax T2 FSE", scanning_sequence="SE", sequence_variant="SK",
                  scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\PFP", acquisition="2D", tr=4800, te=102,
                  flip=111, signal="se", image_type=GE_ORIG, sequence_name="fse-xl", echo_train=18),
        SeriesKind.FLAIR: _p(kind=SeriesKind.FLAIR, description="Ax T2 FLAIR", scanning_sequence="SE\\IR",
                             sequence_variant="SK\\MP",
                    scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\IR_GEMS\\PFP", acquisition="2D", tr=9000,
                    te=120, ti=2470, flip=160, signal="ir", image_type=GE_ORIG, sequence_name="fse-ir",
                    echo_train=24),
        SeriesKind.PDW: _p(kind=SeriesKind.PDW, description="Ax PD FSE", scanning_sequence="SE", sequence_variant="SK",
                  scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\PFP", acquisition="2D", tr=3200, te=14,
                  flip=111, signal="se", image_type=GE_ORIG, sequence_name="fse-xl", echo_train=8),
        SeriesKind.DWI: _p(kind=SeriesKind.DWI, description="Ax DWI", scanning_sequence="EP", sequence_variant="SS",
                  scan_options="EPI_GEMS\\PFF", acquisition="2D", tr=6000, te=80, flip=90, signal="se",
                  image_type=GE_ORIG, sequence_name="epi2"),
        SeriesKind.ADC: _p(kind=SeriesKind.ADC, description="Apparent Diffusion Coefficient (mm2/s)",
                           scanning_sequence="EP",
                  sequence_variant="SS", scan_options="EPI_GEMS\\PFF", acquisition="2D", tr=6000, te=80, flip=90,
                  signal="se", image_type=("DERIVED", "PRIMARY", "ADC"), sequence_name="epi2"),
        SeriesKind.DCE: _p(kind=SeriesKind.DCE, description="Ax LAVA DCE", scanning_sequence="GR",
                           sequence_variant="SS\\SK",
                  scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\ACC_GEMS\\PFP\\FS", acquisition="3D", tr=4.2,
                  te=2.0, flip=12, signal="gre", image_type=GE_ORIG, sequence_name="efgre3d", contrast=True),
        SeriesKind.SWI: _p(kind=SeriesKind.SWI, description="Ax SWAN", scanning_sequence="GR", sequence_variant="SS",
                  scan_options="FAST_GEMS\\EDR_GEMS\\FILTERED_GEMS\\ACC_GEMS", acquisition="3D", tr=40, te=25,
                  flip=15, signal="gre", image_type=GE_ORIG, sequence_name="swan"),
    },
    "philips": {
        SeriesKind.LOCALIZER: _p(kind=SeriesKind.LOCALIZER, description="Survey", scanning_sequence="GR",
                                 sequence_variant="SP",
                        scan_options="OTHER", acquisition="2D", tr=11, te=4.6, flip=15, signal="gre",  # not-vocabulary
                        image_type=PHILIPS_ORIG, sequence_name="FFE"),
        SeriesKind.T1W: _p(kind=SeriesKind.T1W, description="T1W_3D_TFE", scanning_sequence="GR",
                           sequence_variant="SP\\MP",
                  scan_options="OTHER", acquisition="3D", tr=8.1, te=3.7, flip=8, signal="gre",  # not-vocabulary
                  image_type=PHILIPS_ORIG, sequence_name="T1TFE", plane="sagittal", phase_dir="ROW"),
        "T1W_POST": _p(kind=SeriesKind.T1W, description="T1W_3D_TFE_Gd", scanning_sequence="GR",
                       sequence_variant="SP\\MP",
                       scan_options="OTHER", acquisition="3D", tr=8.1, te=3.7, flip=8, signal="gre",  # not-vocabulary
                       image_type=PHILIPS_ORIG, sequence_name="T1TFE", plane="sagittal", phase_dir="ROW",
                       contrast=True),
        SeriesKind.T2W: _p(kind=SeriesKind.T2W, description="T2W_TSE", scanning_sequence="SE", sequence_variant="SK",
                  scan_options="OTHER", acquisition="2D", tr=3000, te=80, flip=90, signal="se",  # not-vocabulary
                  image_type=PHILIPS_SE, sequence_name="TSE", echo_train=15),
        SeriesKind.FLAIR: _p(kind=SeriesKind.FLAIR, description="FLAIR_LongTR", scanning_sequence="SE\\IR",
                             sequence_variant="SK\\MP",
                    scan_options="IR", acquisition="2D", tr=11000, te=125, ti=2800, flip=90, signal="ir",
                    image_type=PHILIPS_IR, sequence_name="IRTSE", plane="coronal", echo_train=27, phase_dir="ROW"),
        SeriesKind.PDW: _p(kind=SeriesKind.PDW, description="PDW_TSE", scanning_sequence="SE", sequence_variant="SK",
                  scan_options="OTHER", acquisition="2D", tr=2800, te=15, flip=90, signal="se",  # not-vocabulary
                  image_type=PHILIPS_SE, sequence_name="TSE", echo_train=6),
        SeriesKind.DWI: _p(kind=SeriesKind.DWI, description="DWI_SENSE", scanning_sequence="EP", sequence_variant="SK",
                  scan_options="FS", acquisition="2D", tr=3500, te=75, flip=90, signal="se",
                  image_type=("ORIGINAL", "PRIMARY", "M_SE", "M", "SE"), sequence_name="DwiSE"),
        SeriesKind.ADC: _p(kind=SeriesKind.ADC, description="DWI_SENSE_ADC", scanning_sequence="EP",
                           sequence_variant="SK",
                  scan_options="FS", acquisition="2D", tr=3500, te=75, flip=90, signal="se",
                  image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"), sequence_name="DwiSE"),
        SeriesKind.DCE: _p(kind=SeriesKind.DCE, description="T1_THRIVE_DYN", scanning_sequence="GR",
                           sequence_variant="SP",
                  scan_options="FS", acquisition="3D", tr=4.4, te=2.1, flip=10, signal="gre",
                  image_type=PHILIPS_ORIG, sequence_name="THRIVE", contrast=True),
        SeriesKind.SWI: _p(kind=SeriesKind.SWI, description="SWIp", scanning_sequence="GR", sequence_variant="SP",
                  scan_options="OTHER", acquisition="3D", tr=31, te=20, flip=17, signal="gre",  # not-vocabulary
                  image_type=PHILIPS_ORIG, sequence_name="PRESTO"),
    },
}

#: ProtocolName as each vendor writes it (GE writes the exam protocol, not the series name).
def protocol_name(vendor: str, p: Protocol) -> str:
    if p.protocol_name:
        return p.protocol_name
    if vendor == "ge":
        return "5.1 BRAIN ROUTINE W/WO"
    if vendor == "philips":
        return f"WIP {p.description}" if p.kind in (SeriesKind.SWI,) else p.description
    return p.description


#: Contrast agents by vendor region (brand names as they appear in ContrastBolusAgent).
CONTRAST_AGENTS = {"siemens": "Gadovist", "ge": "Dotarem", "philips": "MultiHance"}

#: Receive coil names.
COILS = {"siemens": "Head_32", "ge": "HNS Head", "philips": "dS HeadNeckSpine"}
