"""Acceptance: derived series are valid DICOM, ingest back into the catalog in the source's study,
and their geometry is right: resampled onto the fixed grid they overlay the fixed image (checked
numerically against the exact ground truth of the phantom)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from sqlalchemy import select

from curation.registration import register_study
from curation.registration.similarity import coverage, normalized_cross_correlation, resample
from synth.registration_pairs import axial_grid, random_rigid, sample_head
from curation.volume import load_volume, load_volumes
from tests.registration.dicom_helpers import oblique_direction, study_header, write_series


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study: axial 3D T2 (fixed), an oblique T1 moved by a known motion, a moved 4D DWI-like series."""
    root = tmp_path_factory.mktemp("study")
    header = study_header(seed=21)
    rng = np.random.default_rng(21)
    fixed_grid = axial_grid((56, 64, 64), (3.0, 3.0, 3.0))
    t1_motion = random_rigid(rng, 10.0, 15.0)
    t1_grid = axial_grid((40, 72, 60), (3.5, 2.8, 3.2), direction=oblique_direction(8.0, 0.0, -6.0))
    dwi_grid = axial_grid((44, 56, 56), (3.6, 3.6, 3.6))
    dwi_session = random_rigid(rng, 5.0, 8.0)  # the DWI run's position relative to the T2
    dwi_motions = [np.eye(4), random_rigid(rng, 4.0, 5.0), random_rigid(rng, 4.0, 5.0)]
    t2 = sample_head(fixed_grid, "T2", None, seed=1)
    t1 = sample_head(t1_grid, "T1", t1_motion, seed=2)
    dwi = [sample_head(dwi_grid, c, m @ dwi_session, seed=3 + i)
           for i, (c, m) in enumerate(zip(["DWI_B0", "DWI_B1000", "DWI_B1000"], dwi_motions))]
    write_series(t2, root / "t2", header, 2, "t2_spc_tra_iso")
    write_series(t1, root / "t1", header, 3, "t1_se_obl", te=12.0, tr=500.0)
    write_series(dwi, root / "dwi", header, 4, "ep2d_diff", b_values=[0, 1000, 1000], acquisition_3d=False)
    out = root / "derived"
    result = register_study([root / "t1", root / "t2", root / "dwi"], out)
    return {"root": root, "out": out, "result": result, "t2": t2, "t1": t1, "dwi": dwi,
            "t1_motion": t1_motion, "dwi_session": dwi_session, "dwi_motions": dwi_motions, "header": header}


def test_static_series_chosen_and_every_output_written(study):
    r = study["result"]
    roles = {Path(s.source).name: s.role for s in r.series}
    assert roles == {"t1": "registered", "t2": "fixed", "dwi": "registered"}
    kinds = sorted((Path(d.path).parent.name, d.kind) for d in r.derived)
    assert [k for _, k in kinds] == ["coregistered", "coregistered", "motion_corrected"]
    for png in r.review_pngs:
        img = sitk.ReadImage(png)
        assert img.GetSize()[0] == 4 * 256  # fixed | before | after | checkerboard
    assert set(r.metrics) == {s.series_instance_uid for s in r.series if s.role == "registered"}


def test_coregistered_series_overlay_the_fixed_image(study):
    r = study["result"]
    t2 = study["t2"]
    by_source = {Path(s.source).name: s for s in r.series}
    t1_out = next(d for d in by_source["t1"].derived if d.kind == "coregistered")
    derived = load_volume(t1_out.path)
    # Same grid as the fixed series ...
    assert derived.GetSize() == t2.GetSize()
    assert np.allclose(derived.GetOrigin(), t2.GetOrigin(), atol=1e-3)
    assert np.allclose(derived.GetSpacing(), t2.GetSpacing(), atol=1e-4)
    assert np.allclose(derived.GetDirection(), t2.GetDirection(), atol=1e-6)
    # ... and the content where the truth puts it: the T1 resampled through the true motion.
    truth = sitk.GetArrayFromImage(resample(study["t1"], t2, study["t1_motion"]))
    got = sitk.GetArrayFromImage(derived)
    head = sitk.GetArrayFromImage(t2) > 0.2 * sitk.GetArrayFromImage(t2).max()
    ncc = normalized_cross_correlation(truth[head], got[head])
    # Independently of any resampling: a T1 of the phantom sampled directly on the fixed grid is what
    # the derived series must look like where the moving series had data.
    ideal = sitk.GetArrayFromImage(sample_head(t2, "T1", None, noise=0.0, seed=9))
    seen = coverage(study["t1"], t2, study["t1_motion"]) & head
    before = sitk.GetArrayFromImage(resample(study["t1"], t2, np.eye(4)))
    ncc_ideal = normalized_cross_correlation(ideal[seen], got[seen])
    ncc_before = normalized_cross_correlation(ideal[seen], before[seen])
    print(f"derived T1 vs truth NCC {ncc:.4f}; vs a T1 acquired on the fixed grid {ncc_ideal:.4f} "
          f"(unregistered {ncc_before:.4f})")
    assert ncc > 0.99
    assert ncc_ideal > 0.95
    assert ncc_ideal > ncc_before + 0.2


def test_motion_corrected_then_coregistered_dwi_overlays_the_fixed_image(study):
    r = study["result"]
    t2 = study["t2"]
    dwi = next(s for s in r.series if Path(s.source).name == "dwi")
    moco = next(d for d in dwi.derived if d.kind == "motion_corrected")
    reg = next(d for d in dwi.derived if d.kind == "coregistered")
    assert dwi.motion is not None and dwi.motion["temporal_sd_in_head_after"] < dwi.motion["temporal_sd_in_head_before"]
    corrected = load_volumes(moco.path)
    assert len(corrected) == 3 and corrected[0].GetSize() == study["dwi"][0].GetSize()
    volumes = load_volumes(reg.path)
    assert len(volumes) == 3
    head = sitk.GetArrayFromImage(t2) > 0.2 * sitk.GetArrayFromImage(t2).max()
    for i, (vol, src, m) in enumerate(zip(volumes, study["dwi"], study["dwi_motions"])):
        assert np.allclose(vol.GetOrigin(), t2.GetOrigin(), atol=1e-3)
        truth = sitk.GetArrayFromImage(resample(src, t2, m @ study["dwi_session"]))
        ncc = normalized_cross_correlation(truth[head], sitk.GetArrayFromImage(vol)[head])
        print(f"DWI volume {i}: NCC with the truth {ncc:.4f}")
        assert ncc > 0.98


def test_derived_series_reference_their_source_and_keep_the_b_values(study, tmp_path):
    import pydicom

    r = study["result"]
    dwi = next(s for s in r.series if Path(s.source).name == "dwi")
    for d in dwi.derived:
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(Path(d.path).iterdir())]
        assert {h.SeriesInstanceUID for h in headers} == {d.series_instance_uid}
        assert {h.StudyInstanceUID for h in headers} == {study["header"].StudyInstanceUID}
        assert all(h.ReferencedSeriesSequence[0].SeriesInstanceUID == dwi.series_instance_uid for h in headers)
        assert all(h.DerivationDescription.startswith("curate:") for h in headers)
        assert all(list(h.ImageType[:2]) == ["DERIVED", "SECONDARY"] for h in headers)
        assert sorted({float(h.DiffusionBValue) for h in headers}) == [0.0, 1000.0]
    fixed_uid = r.fixed_series_uid
    reg = next(d for d in dwi.derived if d.kind == "coregistered")
    h = pydicom.dcmread(next(Path(reg.path).iterdir()), stop_before_pixels=True)
    assert fixed_uid in h.DerivationDescription


def _dciodvfy_errors(path: Path) -> set[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return {line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")}


def test_derived_series_pass_the_dicom_validator(study):
    """dciodvfy (dicom3tools) finds no error in derived instances (and none in our test sources)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed: apt-get install dicom3tools")
    for name in ("t1", "t2", "dwi"):
        assert not _dciodvfy_errors(next((study["root"] / name).iterdir()))
    for d in study["result"].derived:
        files = sorted(Path(d.path).iterdir())
        for f in (files[0], files[len(files) // 2], files[-1]):
            errors = _dciodvfy_errors(f)
            assert not errors, f"{d.kind} {f.name}: {errors}"


def test_derived_series_ingest_back_into_the_catalog_in_the_source_study(study, tmp_path):
    from curation.catalog import Catalog, Series, Study
    from curation.ingest import ingest
    from curation.store import open_store

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(tmp_path / "store"))
    first = ingest(str(study["root"]), catalog, store, site="test", workers=1,
                   exclude=["*.json", "*.png", "derived/*"])
    assert first.quarantined == [] and first.series == 3
    summary = ingest(str(study["out"]), catalog, store, site="test", workers=1, exclude=["*.json", "*.png"])
    assert summary.quarantined == [], summary.quarantined
    derived_uids = {d.series_instance_uid for d in study["result"].derived}
    assert summary.series == len(derived_uids)
    with catalog.session() as s:
        rows = s.execute(select(Series.series_instance_uid, Study.study_instance_uid)
                         .join(Study, Series.study_id == Study.id)).all()
    studies = {uid: study_uid for uid, study_uid in rows}
    assert derived_uids <= set(studies)
    assert {studies[u] for u in derived_uids} == {study["header"].StudyInstanceUID}
    assert len(set(studies.values())) == 1  # one study: sources and derived together
    catalog.dispose()


def test_rerun_is_idempotent_and_new_settings_make_new_series(study):
    r = study["result"]
    again = register_study([study["root"] / "t1", study["root"] / "t2", study["root"] / "dwi"], study["out"])
    assert again.key == r.key
    assert [d.series_instance_uid for d in again.derived] == [d.series_instance_uid for d in r.derived]
    other = register_study([study["root"] / "t1", study["root"] / "t2"], study["root"] / "derived_affine",
                           config={"coregister": {"transform": "affine"}})
    assert other.config_hash != r.config_hash
    t1_uid = next(d.series_instance_uid for d in r.derived if d.kind == "coregistered"
                  and d.source_series_uid == next(s.series_instance_uid for s in r.series if Path(s.source).name == "t1"))
    assert t1_uid not in {d.series_instance_uid for d in other.derived}
    assert next(s for s in other.series if Path(s.source).name == "t1").coregistration["transform"] == "affine"


def test_a_given_fixed_series_is_keyed_by_content_not_by_folder(study, tmp_path):
    """The pipeline copies each study into a fresh temp folder and names the fixed series: the key,
    and so the derived UIDs, must not depend on where the folders are (the fixed path was hashed,
    so two demo runs wrote every derived series under other UIDs)."""
    root, out, moved = study["root"], tmp_path / "derived", tmp_path / "elsewhere"
    first = register_study([root / "t1", root / "t2"], out, fixed=root / "t2")
    for name in ("t1", "t2"):
        shutil.copytree(root / name, moved / name)
    again = register_study([moved / "t1", moved / "t2"], out, fixed=moved / "t2")
    assert again.key == first.key
    assert [d.series_instance_uid for d in again.derived] == [d.series_instance_uid for d in first.derived]


def test_register_stage_publishes_under_the_study_key_once(study, tmp_path):
    """The pipeline's register stage is the one writer of registration outputs to the derived zone
    (<patient pseudonym>/<StudyInstanceUID>/<derived series>/..., review PNGs beside them, no
    registration.json) and its stage record the one idempotency check: a rerun writes nothing."""
    from curation.catalog import Catalog, StageRecord
    from curation.pipeline import SeriesRef, StudyRef, register
    from curation.store import Zone, open_store

    store = open_store(str(tmp_path / "store"))
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    study_key = f"ANONTESTPATIENT/{study['header'].StudyInstanceUID}"
    refs = []
    for sid, (name, kind, plane) in enumerate((("t1", "T1W", "oblique"), ("t2", "T2W", "axial")), start=1):
        prefix = f"{study_key}/{name}/"
        for f in sorted((study["root"] / name).iterdir()):
            store.put_file(Zone.DEID, prefix + f.name, f)
        refs.append(SeriesRef(series_id=sid, deid_prefix=prefix, kind=kind, plane=plane, dimensions="3D",
                              derived=False))
    ref = StudyRef(study=study_key, series=tuple(refs))

    first = register.run(ref, store, catalog)
    assert (first.status, first.ref.derived, first.reused) == ("ok", 1, False)
    keys = sorted(store.list(Zone.DERIVED, ""))
    assert keys and all(k.startswith(study_key + "/") for k in keys)
    assert not [k for k in keys if k.endswith(".json")]
    assert sum(1 for k in keys if k.split("/")[2] == "review") == 1
    assert first.metrics["objects"] == len(keys) and first.output_uri.endswith(study_key)

    again = register.run(ref, store, catalog)
    assert again.reused and again.ref.derived == 1 and sorted(store.list(Zone.DERIVED, "")) == keys
    with catalog.session() as s:
        assert [r.stage for r in s.query(StageRecord)] == ["register"]
    catalog.dispose()


def test_series_registered_side_by_side_give_the_same_bytes_on_every_run(study, tmp_path):
    """The default budget of two threads registers two series at once on one SimpleITK thread each
    (curation.registration.study._series_parallelism): faster on two cores, and one thread per
    registration is reproducible bit for bit, so a recomputation writes the very same files."""
    from curation.registration.config import load_config
    from curation.registration.study import _series_parallelism

    workers, cfg = _series_parallelism(load_config(), 3)
    assert workers == 2 and cfg["coregister"]["threads"] == cfg["motion_correction"]["threads"] == 1
    assert _series_parallelism(load_config({"coregister": {"threads": 1}}), 3)[0] == 1
    again = register_study([study["root"] / "t1", study["root"] / "t2", study["root"] / "dwi"], tmp_path / "again")

    def digests(root: Path) -> dict[str, str]:
        import hashlib

        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*.dcm"))}

    first = digests(study["out"])
    assert first and digests(tmp_path / "again") == first
    def matrices(result) -> list:
        return [(s.coregistration or {}).get("matrix") for s in result.series]

    assert matrices(again) == matrices(study["result"])


def _pydicom_encoding(path: Path) -> bytes:
    """The file pydicom's own writer makes of the dataset read from `path`: a fresh dataset (every
    top-level element re-encoded, sequence and item lengths recomputed) saved as a Part 10 file."""
    import copy
    from io import BytesIO

    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset

    read = pydicom.dcmread(path)
    fresh = Dataset()
    for elem in read:
        fresh.add(copy.deepcopy(elem))
    fresh.file_meta = FileMetaDataset()
    for kw in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID", "ImplementationClassUID"):
        setattr(fresh.file_meta, kw, read.file_meta[kw].value)
    fresh.preamble = b"\x00" * 128
    buffer = BytesIO()
    fresh.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_derived_files_are_the_bytes_pydicom_writes_for_their_dataset(study):
    """The writer encodes a volume's shared attributes once and each slice's own (UIDs, position,
    source references, pixels) apart (issue 16, throughput): every file must still be exactly what
    `Dataset.save_as` writes for the same dataset: element order, lengths, padding, sequences, file
    meta. Covers a rotated source (per-slice references), a 4D series and a motion-corrected one."""
    import pydicom

    derived = study["result"].derived
    assert {d.kind for d in derived} == {"motion_corrected", "coregistered"}
    checked = 0
    for d in derived:
        files = sorted(Path(d.path).iterdir())
        for f in files[:: max(1, len(files) // 12)]:
            assert f.read_bytes() == _pydicom_encoding(f), f"{d.kind} {f.name}"
            checked += 1
        refs = {tuple(x.ReferencedSOPInstanceUID for x in pydicom.dcmread(f, stop_before_pixels=True)
                      .SourceImageSequence) for f in files}
        if d.kind == "coregistered":
            assert len(refs) > 1, "a resampled series references the source slices each slice samples"
    assert checked > 30
