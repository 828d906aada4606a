"""`curate register --moving M --fixed F --out O`: co-register one series to another."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from curate._common import CliError, print_json


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--config/--set, shared with `curate motion-correct`."""
    p.add_argument("--config", metavar="FILE", help="YAML/JSON overrides of include/registration/default.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. coregister.sampling_percentage=[0.3,0.2,0.2]; repeatable")


def build_config(args: argparse.Namespace, section: str, extra: dict[str, Any]) -> dict[str, Any]:
    from curation.registration.config import load_config, parse_assignment

    overrides: list[Any] = [args.config] if args.config else []
    try:
        overrides += [parse_assignment(s) for s in args.sets]
        overrides.append({section: {k: v for k, v in extra.items() if v is not None}})
        return load_config(*overrides)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "register",
        help="co-register a moving series to a fixed series (DICOM folders or NIfTI files)",
        description="Rigid (or affine) registration with mutual information. Prints the 4x4 matrix mapping a "
                    "point of the fixed image's patient space (LPS mm) to the moving image's (SimpleITK's "
                    "resampling convention), the rotation and translation it holds, and MI/NCC before and after. "
                    "--out receives the moving series resampled onto the fixed grid: a new derived DICOM series "
                    "(folder) for DICOM input, a NIfTI file for NIfTI input.",
    )
    p.add_argument("--moving", required=True, help="moving series: DICOM folder or NIfTI file")
    p.add_argument("--fixed", required=True, help="fixed series: DICOM folder or NIfTI file")
    p.add_argument("--out", required=True, help="output: a folder (DICOM input) or a .nii/.nii.gz file")
    p.add_argument("--transform", choices=["rigid", "affine"], default=None, help="default: rigid (from config)")
    p.add_argument("--backend", choices=["simpleitk", "dipy"], default=None, help="default: simpleitk (from config)")
    p.add_argument("--moving-volume", type=int, default=0,
                   help="for a 4D moving series: the volume registered (all volumes are resampled); default 0")
    p.add_argument("--review", metavar="PNG", help="also write the review image (fixed|before|after|checkerboard)")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from curation.registration.coregister import register_images
    from curation.registration.io import read_input, write_output
    from curation.registration.review import review_png
    from curation.registration.similarity import resample
    from curation.registration.static import OUR_DERIVATION_PREFIX

    cfg = build_config(args, "coregister", {"transform": args.transform, "backend": args.backend})
    try:
        fixed = read_input(args.fixed)
        moving = read_input(args.moving)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    if not -len(moving.volumes) <= args.moving_volume < len(moving.volumes):
        raise CliError(f"--moving-volume {args.moving_volume}: the moving series has {len(moving.volumes)} volume(s)")
    params = cfg["coregister"]
    fixed_img = fixed.volumes[0]
    reg = register_images(fixed_img, moving.volumes[args.moving_volume], params)
    import SimpleITK as sitk

    interp = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}[
        cfg["output"]["interpolator"]]
    resampled = [resample(v, fixed_img, reg.matrix, interp) for v in moving.volumes]
    ref = fixed.series_instance_uid or Path(args.fixed).name
    try:
        written = write_output(
            resampled, args.out, moving,
            f"{OUR_DERIVATION_PREFIX} {params['transform']} co-registration ({params['backend']}, "
            f"{'Mattes MI' if params['metric'] == 'mattes' else 'correlation'}) to series {ref}, "
            "resampled onto its grid",
            "REG", frame_of_reference_uid=fixed.frame_of_reference_uid,
            series_number_offset=2 * int(cfg["output"]["series_number_offset"]),
            source_matrices=[reg.matrix] * len(resampled))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    result = reg.to_dict()
    result.update(written)
    if args.review:
        result["review_png"] = str(review_png(fixed_img, moving.volumes[args.moving_volume], reg.matrix, args.review,
                                              tiles=int(cfg["review"]["checkerboard_tiles"]),
                                              tile_px=int(cfg["review"]["tile_px"])))
    if args.json:
        print_json(result)
    else:
        m = np.asarray(reg.matrix)
        print("matrix (fixed -> moving, LPS mm):")
        for row in m:
            print("  " + "  ".join(f"{v: .6f}" for v in row))
        print(f"rotation {result['rotation_deg']:.3f} deg, translation at centre "
              f"{', '.join(f'{v:.3f}' for v in result.get('translation_at_centre_mm', result['translation_mm']))} mm")
        mt = result["metrics"]
        print(f"MI {mt['mi_before']:.4f} -> {mt['mi_after']:.4f}, NCC {mt['ncc_before']:.4f} -> {mt['ncc_after']:.4f}, "
              f"{result['seconds']:.2f} s")
        print(f"wrote {written['output']}")
    return 0
