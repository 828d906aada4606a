"""A mask label's consensus from a round to a release (issue 17 point 8): three readers paint lesions
on a real catalog's de-identified DX series (two of them agree, one paints it shifted, and on one
slice a reader paints nothing) -> analyse (STAPLE) keeps each consensus slice's mask in the catalog
-> release build writes them as binary DICOM SEG on the released instances (dciodvfy clean, listed in
the manifest, the mask in consensus.parquet), whose pixels are the STAPLE consensus exactly, and
ReleaseDataset gives that mask back."""
from __future__ import annotations

import io
import shutil
from datetime import date

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from sqlalchemy import select

from annotation import masks as rle
from curation.agreement.roi import decode_runs, mask_consensus
from curation.annotation_schema import load_schema
from curation.catalog import Catalog
from curation.catalog.models import AnnotationItem, AnnotationRound, ConsensusLabel, Reading
from curation.pipeline import analyse as analysis
from curation.release import open_release
from curation.release.build import ReleaseSpec, build
from curation.release.checks import dciodvfy_errors, referenced_instances
from curation.release.manifest import Manifest
from curation.release.publish import publish
from curation.release.torch import ReleaseDataset
from curation.release.verify import verify_build
from curation.store import LocalStore
from curation.vocabulary import Zone
from tests.release.world import add_series, deidentified

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
ROWS, COLUMNS = 48, 40  # the DX instances of tests.release.test_labels.dx_series
SCHEMA = load_schema("brain_lesions_v2")
FINDING, MASK = "hyperintensity", "hyperintensity_mask"
READERS = ("rdr-a", "rdr-b", "rdr-c")
SPEC = ReleaseSpec("brain", released_on=date(2026, 12, 1))


def disk(cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:ROWS, 0:COLUMNS] + 0.5
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def _painting() -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """(series number, instance) -> reader -> painted mask: a and b agree, c paints 3 rows lower and
    wider; on series 1's instance 0 reader b paints nothing (an empty answer for that slice)."""
    lesion = {(1, 0): disk(12, 14, 6), (1, 1): disk(25, 30, 9), (2, 0): disk(20, 20, 5)}
    out = {}
    for where, m in lesion.items():
        shifted = np.roll(disk(*{(1, 0): (12, 14, 7), (1, 1): (25, 30, 10), (2, 0): (20, 20, 6)}[where]), 3, axis=0)
        out[where] = {"rdr-a": m, "rdr-b": m, "rdr-c": shifted}
    del out[(1, 0)]["rdr-b"]
    return out


def _add_round(catalog: Catalog, series: dict[int, int]) -> int:
    """A collected round of brain_lesions v2 over the series: every reader answers the finding yes
    and paints what `_painting` says (one roi reading per painted slice)."""
    with catalog.session() as s:
        rnd = AnnotationRound(project="brain", name="run-masks", kind="labels", schema_name=SCHEMA.name,
                              schema_version=SCHEMA.version, state="collected",
                              params={"labels": SCHEMA.labels, "regions": SCHEMA.regions})
        s.add(rnd)
        s.flush()
        items = {}
        for n, sid in series.items():
            items[n] = AnnotationItem(round_id=rnd.id, series_id=sid, item_key=f"key-{n}")
            s.add(items[n])
        s.flush()
        task = {(n, r): 100 * n + t for n in series for t, r in enumerate(READERS)}
        for (n, reader), task_id in task.items():
            s.add(Reading(round_id=rnd.id, item_id=items[n].id, task_id=task_id, record="label", label=FINDING,
                          reader=reader, value=1, confidence=0.8, seconds=40.0))
        ordinal = {}
        for (n, instance), by_reader in sorted(_painting().items()):
            for reader, m in by_reader.items():
                k = ordinal[(n, reader)] = ordinal.get((n, reader), -1) + 1
                x0, y0, x1, y1 = rle.bounding_box(m)
                s.add(Reading(round_id=rnd.id, item_id=items[n].id, task_id=task[(n, reader)], record="roi",
                              label=MASK, ordinal=k, reader=reader, roi_kind="mask", instance=instance, frame=0,
                              x0=x0, y0=y0, x1=x1, y1=y1,
                              points={"rows": ROWS, "columns": COLUMNS, "rle": rle.encode(m)}))
        return rnd.id


def _expected() -> dict[tuple[int, int], np.ndarray]:
    """STAPLE of the painted masks computed here from the painting itself (not from the catalog)."""
    regions = pd.DataFrame([{"item": f"key-{n}", "label": MASK, "annotator": reader, "instance": instance, "frame": 0,
                             "points": {"rows": ROWS, "columns": COLUMNS, "rle": rle.encode(m)}}
                            for (n, instance), by_reader in _painting().items() for reader, m in by_reader.items()])
    result = mask_consensus(regions, readers={f"key-{n}": list(READERS) for n in (1, 2)})
    return {(int(r["item"][4:]), int(r["instance"])): decode_runs(r["rle"], r["rows"], r["columns"])
            for r in result.masks.to_dict(orient="records")}


@pytest.fixture
def world(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    series = {1: add_series(catalog, store, 1, patient="ANON01", files=2),
              2: add_series(catalog, store, 2, patient="ANON02", files=1)}
    images = {1: deidentified(catalog, store, series[1], "Doe^Jane", 2),
              2: deidentified(catalog, store, series[2], "Roe^Rick", 1)}
    round_id = _add_round(catalog, series)
    yield catalog, store, images, round_id
    catalog.dispose()


def _sop(image: str) -> str:
    return image.rsplit("/", 1)[1][:-len(".dcm")]


def test_staple_masks_reach_the_release_as_seg_pixel_for_pixel(world):
    catalog, store, images, round_id = world
    expected = _expected()
    # the shifted reader does not move the consensus: it is the agreed lesion (b's empty slice neither)
    assert all(np.array_equal(expected[k], _painting()[k]["rdr-a"]) for k in expected)
    result = analysis.analyse(catalog, round_id, analysis.AnalysisConfig(n_boot=20, seed=1))
    assert result.status == "ok", result.reason

    # the catalog keeps each consensus slice's mask, encoded as the service encodes a mask
    with catalog.session() as s:
        rows = s.execute(select(AnnotationItem.item_key, ConsensusLabel).join(
            AnnotationItem, AnnotationItem.id == ConsensusLabel.item_id)
            .where(ConsensusLabel.round_id == round_id, ConsensusLabel.method == analysis.STAPLE)).all()
    stored = {(int(key[4:]), c.instance): c for key, c in rows}
    assert sorted(stored) == sorted(expected)
    for where, c in stored.items():
        assert (c.frame, c.mask["rows"], c.mask["columns"]) == (0, ROWS, COLUMNS)
        assert c.mask["rle"] == rle.encode(expected[where]) and c.value == int(expected[where].sum())

    built = build(catalog, store, SPEC)
    prefix = built.prefix
    manifest = Manifest.from_bytes(store.get_bytes(Zone.RELEASES, prefix + "manifest.json")).by_path()
    mask_files = sorted(p for p in manifest if "-mask-" in p)
    # DX instances are not placed in patient space: one SEG per painted instance (3 slices, 3 instances)
    assert len(mask_files) == 3 and {manifest[p].role for p in mask_files} == {"label"}
    by_sop = {_sop(img): (n, i) for n, imgs in images.items() for i, img in enumerate(imgs)}
    seen = {}
    for path in mask_files:
        data = store.get_bytes(Zone.RELEASES, prefix + path)
        assert dciodvfy_errors(data) == [], path
        ds = pydicom.dcmread(io.BytesIO(data))
        refs = set(referenced_instances(ds))
        assert refs and refs <= set(by_sop), path
        seg = hd.seg.Segmentation.from_dataset(ds)
        assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == [MASK]
        for sop in {uid for _, _, uid in seg.get_source_image_uids()}:
            pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sop], segment_numbers=[1])
            seen[by_sop[sop]] = pixels[0, :, :, 0].astype(bool)
    assert sorted(seen) == sorted(expected)
    for where, m in expected.items():
        assert np.array_equal(seen[where], m), where  # the SEG is the STAPLE consensus, pixel for pixel
    # the box SEG is not made of a mask's bounding box: only the masks' SEGs are there
    assert not [p for p in manifest if p.startswith("labels/") and "-seg-" in p]

    report = verify_build(catalog, store, "brain", built.version)  # content checks: PHI, references
    assert report.ok, report.problems
    # a rebuild of the same catalog is byte-identical (the SEG UIDs hash the release, not the clock)
    assert build(catalog, store, SPEC).manifest_sha256 == built.manifest_sha256

    # consensus.parquet carries each slice's mask; the release's boxes are not the masks' bounding boxes
    publish(catalog, store, "brain", built.version)
    release = open_release(store.root, f"brain@{built.version}", verify=True)
    consensus = release.consensus
    staple = consensus[consensus["method"] == analysis.STAPLE]
    assert len(staple) == 3 and consensus.loc[consensus["method"] != analysis.STAPLE, "mask"].isna().all()
    number = {key: by_sop[_sop(release.series_files(key)[0])][0] for key in release.series["series"]}
    for r in staple.itertuples():
        n = number[r.series]
        assert np.array_equal(decode_runs(r.mask["rle"], r.mask["rows"], r.mask["columns"]),
                              expected[(n, int(r.instance))])
    assert all(release.boxes(s).empty for s in release.series["series"])

    # ReleaseDataset: each instance item carries its consensus mask; a series item stacks them
    keys = list(release.series["series"])
    instances = ReleaseDataset(release, split=None, unit="instance")
    for image, target in instances:
        n, i = by_sop[_sop(target["instance"])]
        assert target["mask_labels"] == [MASK] and tuple(target["masks"].shape) == (1, *image.shape)
        assert np.array_equal(target["masks"][0].numpy(), expected[(n, i)])
    volume, target = ReleaseDataset(release, split=None)[next(k for k, key in enumerate(keys) if number[key] == 1)]
    assert tuple(target["masks"].shape) == (1, *volume.shape) == (1, 2, ROWS, COLUMNS)
    assert sorted(int(m.sum()) for m in target["masks"][0]) == sorted(int(expected[(1, i)].sum()) for i in (0, 1))
    assert release.provenance["labels_skipped"] == []


def test_a_consensus_table_built_before_masks_reads_with_them_null():
    """consensus.parquet of a release built before the mask columns: read, not refused."""
    import pyarrow as pa

    from curation.release.tables import CONSENSUS_MASK_COLUMNS, CONSENSUS_SCHEMA, read_rows, to_parquet

    old = pa.schema([f for f in CONSENSUS_SCHEMA if f.name not in CONSENSUS_MASK_COLUMNS])
    row = {"round": 1, "series": "2.25.1001", "label": FINDING, "method": "majority", "ordinal": 0, "value": 1}
    (read,) = read_rows(to_parquet([row], old), CONSENSUS_SCHEMA)
    assert {k: read[k] for k in row} == row and all(read[c] is None for c in CONSENSUS_MASK_COLUMNS)


def test_masks_on_a_ct_volume_are_one_seg_over_its_slices():
    """Sources placed in patient space (a CT series): one SEG whose frames sit on the painted slices,
    equal to the rows' masks, and no SR for a round of masks only (before, its empty SR failed the
    series' labels); a mask of another size than the instance is refused, named."""
    from curation.release.labelling import RoundConsensus, series_labels
    from curation.release.labels import ReleaseIdentity
    from tests.annotation.dicomgen import ct_dataset, phantom

    size = 24
    sources = []
    for i in range(3):
        ds = ct_dataset(phantom(size, size, i), study_uid="2.25.91", series_uid="2.25.1001", frame_uid="2.25.71",
                        index=i)
        ds.PatientIdentityRemoved, ds.DeidentificationMethod = "YES", "test series"  # as the de-identifier writes
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        sources.append(pydicom.dcmread(io.BytesIO(buf.getvalue())))
    ys, xs = np.mgrid[0:size, 0:size]
    painted = {0: (xs - 8) ** 2 + (ys - 9) ** 2 <= 16, 2: (xs > 12) & (ys > 3) & (ys < 11)}
    rows = [ConsensusLabel(label=MASK, method="staple", ordinal=k, value=int(m.sum()), n_readers=3, instance=i,
                           frame=0, mask={"rows": size, "columns": size, "rle": rle.encode(m)})
            for k, (i, m) in enumerate(sorted(painted.items()))]
    # a STAPLE row of an analysis before masks were kept (bounding box, no mask) is neither a box nor a mask
    old = ConsensusLabel(label=MASK, method="staple", ordinal=9, value=5, n_readers=3, x0=1.0, y0=1.0, x1=3.0, y1=4.0)
    identity = ReleaseIdentity("brain", "1.0.0", date(2026, 12, 1))
    out = series_labels(identity, "labels/p/s/x/", "2.25.1001", 1, sources, RoundConsensus(rows=[*rows, old]))
    files = dict(out)
    assert sorted(files) == ["labels/p/s/x/round-1-mask-1.dcm"]  # masks only: no SR (nothing to measure)
    data = files["labels/p/s/x/round-1-mask-1.dcm"]
    assert dciodvfy_errors(data) == [], dciodvfy_errors(data)
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(data)))
    uids = [str(s.SOPInstanceUID) for s in sources]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1],
                                               assert_missing_frames_are_empty=True)
    for i in range(3):
        assert np.array_equal(pixels[i, :, :, 0].astype(bool), painted.get(i, np.zeros((size, size), dtype=bool)))
    rows[0].mask = {"rows": size, "columns": size - 1, "rle": rle.encode(painted[0][:, 1:])}
    with pytest.raises(ValueError, match=f"{MASK} consensus mask is 24 x 23, its released instance 24 x 24"):
        series_labels(identity, "labels/p/s/x/", "2.25.1001", 1, sources, RoundConsensus(rows=rows))
