"""`curate motion-correct SERIES --out O`: correct inter-volume motion of a 4D series."""
from __future__ import annotations

import argparse

from curate._common import CliError, print_json
from curate.register import add_config_options, build_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "motion-correct",
        help="register every volume of a 4D series (DWI, DCE, fMRI) to a reference volume",
        description="Per-volume rigid (or affine) registration to the reference volume (the first by default) "
                    "with mutual information. Prints each volume's 4x4 matrix (reference space -> volume space, "
                    "LPS mm), framewise displacement and the flagged volumes; --out receives the corrected series "
                    "(a new derived DICOM series folder, or a 4D NIfTI file for NIfTI input).",
    )
    p.add_argument("series", help="4D series: DICOM folder or 4D NIfTI file")
    p.add_argument("--out", required=True, help="output: a folder (DICOM input) or a .nii/.nii.gz file")
    p.add_argument("--reference", type=int, default=None, help="reference volume index (default 0, from config)")
    p.add_argument("--transform", choices=["rigid", "affine"], default=None, help="default: rigid (from config)")
    p.add_argument("--fd-threshold", type=float, default=None, metavar="MM",
                   help="flag volumes whose framewise displacement exceeds this (default 0.5 mm, from config)")
    p.add_argument("--review", metavar="PNG", help="also write the review image of the most-moved volume")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from curation.registration.io import read_input, write_output
    from curation.registration.motion import motion_correct
    from curation.registration.review import review_png
    from curation.registration.static import OUR_DERIVATION_PREFIX

    cfg = build_config(args, "motion_correction", {"reference_volume": args.reference, "transform": args.transform,
                                                   "fd_threshold_mm": args.fd_threshold})
    try:
        series = read_input(args.series)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if len(series.volumes) < 2:
        raise CliError(f"{args.series}: one volume only; motion correction needs a 4D series")
    params = cfg["motion_correction"]
    if not -len(series.volumes) <= int(params["reference_volume"]) < len(series.volumes):
        raise CliError(f"reference volume {params['reference_volume']}: the series has {len(series.volumes)}")
    mc = motion_correct(series.volumes, params, cfg["output"]["interpolator"])
    try:
        written = write_output(
            mc.corrected, args.out, series,
            f"{OUR_DERIVATION_PREFIX} inter-volume motion correction ({params['transform']}, {params['backend']}, "
            f"{'Mattes MI' if params['metric'] == 'mattes' else 'correlation'}) to volume {mc.reference + 1}, "
            "resampled onto its grid",
            "MOCO", series_number_offset=int(cfg["output"]["series_number_offset"]), source_matrices=mc.matrices)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    result = mc.to_dict()
    result.update(written)
    if args.review:
        worst = int(np.argmax(mc.displacement_mm))
        result["review_png"] = str(review_png(series.volumes[mc.reference], series.volumes[worst], mc.matrices[worst],
                                              args.review, title=f"volume {worst + 1} to {mc.reference + 1}"))
    if args.json:
        print_json(result)
    else:
        print(f"{len(mc.matrices)} volumes, reference {mc.reference}, {result['seconds']:.2f} s")
        for v in result["volumes"]:
            flag = "  FLAGGED" if v["flagged"] else ""
            print(f"  volume {v['volume']:3d}: rotation {v['rotation_deg']:6.3f} deg, FD "
                  f"{v['framewise_displacement_mm']:6.3f} mm, displacement {v['displacement_mm']:6.3f} mm{flag}")
        print(f"temporal SD in the head {result['temporal_sd_in_head_before']:.3f} -> "
              f"{result['temporal_sd_in_head_after']:.3f}")
        print(f"wrote {written['output']}")
    return 0
