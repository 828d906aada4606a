"""Open a published release for analysis: its tables as pandas DataFrames with fixed dtypes, its
manifest as a DataFrame, its patient splits as views, and its files as local paths verified against
the manifest before they are handed out.

A release is read from a store (a folder or `s3://`, by `NAME@VERSION`) or from a copy pulled to
disk. Files of a store that is not on this disk are fetched into a cache folder keyed by the
manifest hash, checked on arrival; a file whose bytes do not match the manifest is never returned,
so a model is never trained on an altered image without saying so.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from curation.release.layout import MANIFEST_JSON, DirTree, ReleaseTree, StoreTree, published_versions, release_prefix
from curation.release.manifest import NIFTI_ROLE, NIFTI_SUFFIX, ROLES, Manifest, ManifestEntry
from curation.release.tables import (
    AGREEMENT_TABLE,
    CONSENSUS_SCHEMA,
    CONSENSUS_TABLE,
    JSON_COLUMNS,
    READING_SCHEMA,
    READINGS_TABLE,
    SERIES_SCHEMA,
    SERIES_TABLE,
    read_arrow,
)
from curation.release.version import ReleaseRef, check_name
from curation.release.verify import VerifyReport, verify_tree
from curation.store import ObjectNotFound, Store, open_store
from curation.vocabulary import Zone

#: Column dtypes in pandas: each Arrow type of curation.release.tables as a nullable pandas dtype;
#: lists of names and the JSON columns (decoded) are Python objects.
PANDAS_DTYPES = {pa.string(): "string", pa.int64(): "Int64", pa.float64(): "Float64", pa.bool_(): "boolean"}
#: Consensus methods preferred for a series' yes/no label, best first (a box row is not a finding).
METHOD_PREFERENCE = ("dawid_skene", "majority")
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
#: The consensus method of mask labels: its rows are slices of a mask (with `mask`), never boxes.
MASK_METHOD = "staple"


def table_dtypes(schema: pa.Schema) -> dict[str, str]:
    """The documented pandas dtype of each column of a release table ("object": lists and JSON)."""
    return {f.name: "object" if f.name in JSON_COLUMNS else PANDAS_DTYPES.get(f.type, "object") for f in schema}


SERIES_DTYPES, READING_DTYPES, CONSENSUS_DTYPES = (table_dtypes(s) for s in (SERIES_SCHEMA, READING_SCHEMA,
                                                                              CONSENSUS_SCHEMA))


def _series_of(entry: ManifestEntry) -> str | None:
    """The series key an image file belongs to: `images/<patient>/<study>/<series>/<file>` or the
    series' NIfTI conversion `images/<patient>/<study>/<series>.nii.gz`."""
    if entry.role == ROLES["images"] and entry.path.count("/") >= 4:
        return entry.path.split("/")[3]
    if entry.role == NIFTI_ROLE:
        return entry.path.split("/")[3][:-len(NIFTI_SUFFIX)]
    return None


class ReleaseIntegrityError(ValueError):
    """A release file's bytes are not those its manifest lists (altered, truncated or missing)."""


def read_table(data: bytes, schema: pa.Schema) -> pd.DataFrame:
    """A release table (Parquet) as a DataFrame with the documented columns in order and dtypes
    (`table_dtypes`): nullable numbers, booleans and text; lists as Python lists; JSON decoded."""
    table = read_arrow(data, schema)
    frame = table.to_pandas(types_mapper={t: pd.api.types.pandas_dtype(d) for t, d in PANDAS_DTYPES.items()}.get)
    for field_ in schema:
        column = field_.name
        if column in JSON_COLUMNS:
            frame[column] = pd.Series([json.loads(v) if isinstance(v, str) else None for v in frame[column]],
                                      index=frame.index, dtype=object)
        elif pa.types.is_list(field_.type):
            frame[column] = pd.Series([list(v) if v is not None else None for v in frame[column]],
                                      index=frame.index, dtype=object)
    return frame


#: The temporary name of a download in progress (renamed into place once its hash matches).
FETCH_TEMP_PREFIX = ".fetch-"


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of a file, read in 1 MiB blocks."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def default_cache() -> Path:
    """Where fetched files go: `$CURATE_RELEASE_CACHE` (curation.settings), else `~/.cache/curate/releases`."""
    from curation.settings import settings

    return settings().release_cache or Path.home() / ".cache" / "curate" / "releases"


@dataclass
class Release:
    """One release version: tables, manifest and verified local paths of its files."""

    tree: ReleaseTree
    manifest: Manifest
    manifest_sha256: str
    cache: Path
    store: Store | None = None
    prefix: str | None = None
    _tables: dict[str, Any] = field(default_factory=dict, repr=False)
    _verified: set[str] = field(default_factory=set, repr=False)
    _series_filter: frozenset[str] | None = None
    split_name: str | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def __repr__(self) -> str:
        where = f", split={self.split_name!r}" if self.split_name else ""
        return f"Release({self.name}@{self.version}, manifest {self.manifest_sha256[:12]}{where}, {self.tree.location})"

    # tables --------------------------------------------------------------------------------------
    def _table(self, path: str, schema: pa.Schema) -> pd.DataFrame:
        if path not in self._tables:
            self._tables[path] = read_table(self.read(path), schema)
        frame = self._tables[path]
        if self._series_filter is not None:
            frame = frame[frame["series"].isin(self._series_filter)].reset_index(drop=True)
        return frame.copy()

    @property
    def series(self) -> pd.DataFrame:
        """tables/series.parquet: one row per series (docs/releases.md lists the columns)."""
        return self._table(SERIES_TABLE, SERIES_SCHEMA)

    @property
    def readings(self) -> pd.DataFrame:
        """tables/readings.parquet: every raw reading of the released series."""
        return self._table(READINGS_TABLE, READING_SCHEMA)

    @property
    def consensus(self) -> pd.DataFrame:
        """tables/consensus.parquet: each round's consensus per series, label and method (boxes included)."""
        return self._table(CONSENSUS_TABLE, CONSENSUS_SCHEMA)

    labels = consensus

    @property
    def agreement(self) -> dict[str, Any]:
        """tables/agreement.json: each round's agreement statistics by round id."""
        return json.loads(self.read(AGREEMENT_TABLE))

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads(self.read("provenance.json"))

    @property
    def files(self) -> pd.DataFrame:
        """The manifest: path, size, sha256, role (and, for images and NIfTI conversions, their series)."""
        rows = [{"path": e.path, "size": e.size, "sha256": e.sha256, "role": e.role, "series": _series_of(e)}
                for e in sorted(self.manifest.entries)]
        frame = pd.DataFrame(rows, columns=["path", "size", "sha256", "role", "series"])
        frame = frame.astype({"path": "string", "size": "Int64", "sha256": "string", "role": "string",
                              "series": "string"})
        if self._series_filter is not None:
            frame = frame[frame["series"].isin(self._series_filter)].reset_index(drop=True)
        return frame

    def label_matrix(self, labels: list[str] | None = None) -> pd.DataFrame:
        """Series x label yes/no (1.0 / 0.0, NaN where no consensus): the newest round that decided
        the label, by the first method of METHOD_PREFERENCE present (else any method)."""
        table = self.consensus
        table = table[table["x0"].isna()]
        if labels is None:
            labels = sorted(table["label"].dropna().unique())
        rank = {m: i for i, m in enumerate(METHOD_PREFERENCE)}
        table = table.assign(_rank=table["method"].map(lambda m: rank.get(m, len(rank))).astype(int))
        table = table.sort_values(["series", "label", "round", "_rank"], ascending=[True, True, False, True])
        best = table.drop_duplicates(["series", "label"], keep="first")
        matrix = best.pivot(index="series", columns="label", values="value").astype("Float64")
        matrix = matrix.reindex(index=list(self.series["series"]), columns=list(labels))
        return matrix.astype("float64")

    def boxes(self, series: str) -> pd.DataFrame:
        """The consensus boxes of one series (pixel coordinates: column x, row y), newest round; a
        mask's row (its bounding box beside its `mask`) is not a box: its SEG holds the mask."""
        table = self.consensus
        table = table[(table["series"] == series) & table["x0"].notna() & table["mask"].isna()
                      & (table["method"] != MASK_METHOD)]
        if table.empty:
            return table
        return table[table["round"] == table["round"].max()].reset_index(drop=True)

    # splits --------------------------------------------------------------------------------------
    def splits(self) -> list[str]:
        return sorted(self.series["split"].dropna().unique())

    def split(self, name: str) -> Release:
        """The release restricted to one split's series: same files and identity, filtered tables."""
        series = self.series
        if name not in set(series["split"].dropna()):
            raise KeyError(f"{self.name}@{self.version} has no series in split {name!r} (splits: {self.splits()})")
        keep = frozenset(series.loc[series["split"] == name, "series"])
        return Release(self.tree, self.manifest, self.manifest_sha256, self.cache, self.store, self.prefix,
                       self._tables, self._verified, keep, name)

    # files ---------------------------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        """A file's bytes, refused unless they match the manifest."""
        entry = self._entry(path)
        data = self.tree.read(path)
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ReleaseIntegrityError(f"{path}: bytes do not match the manifest of {self.name}@{self.version}")
        return data

    def _entry(self, path: str) -> ManifestEntry:
        entry = self.manifest.by_path().get(path)
        if entry is None:
            raise KeyError(f"{path!r} is not a file of {self.name}@{self.version}")
        return entry

    def series_files(self, series: str) -> list[str]:
        """Release paths of one series' images (its DICOM, not its NIfTI conversion), sorted."""
        return sorted(e.path for e in self.manifest.entries if e.role == ROLES["images"] and _series_of(e) == series)

    def nifti_file(self, series: str) -> str | None:
        """Release path of the series' NIfTI conversion (releases built with the nifti format), else None."""
        return next((e.path for e in self.manifest.entries if e.role == NIFTI_ROLE and _series_of(e) == series), None)

    def path(self, what: str) -> Path:
        """A local, verified path: of a release file (relative path), or of a series' folder (its key).
        Files already on this disk are checked in place; others are fetched into the cache."""
        if what in self.manifest.by_path():
            return self._local(what)
        files = self.series_files(what)
        if not files:
            raise KeyError(f"{what!r} is neither a file nor a series of {self.name}@{self.version}")
        paths = [self._local(p) for p in files]
        return paths[0].parent

    def _local(self, path: str) -> Path:
        entry = self._entry(path)
        direct = self._direct(path)
        target = direct if direct is not None else self.cache / self.manifest_sha256 / path
        if path in self._verified and target.is_file():
            return target
        if target.is_file() and sha256_file(target) == (entry.size, entry.sha256):
            self._verified.add(path)
            return target
        if direct is not None:
            raise ReleaseIntegrityError(f"{path}: {direct} does not match the manifest of {self.name}@{self.version} "
                                        f"({entry.size} bytes, SHA-256 {entry.sha256[:16]}...)")
        self.fetch_verified(entry, target)
        self._verified.add(path)
        return target

    def _direct(self, path: str) -> Path | None:
        """The file's own path when the release is on this disk (a folder, or a LocalStore)."""
        if isinstance(self.tree, DirTree):
            return self.tree.root / path
        if self.store is not None and self.prefix is not None:
            return self.store.local_path(Zone.RELEASES, self.prefix + path)
        return None

    def fetch_verified(self, entry: ManifestEntry, target: Path) -> None:
        """Copy one file to `target`, hashing on the way; rename into place only when it matches (a cache
        fill and `curate release pull` alike): ReleaseIntegrityError names a missing or altered file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=FETCH_TEMP_PREFIX)
        sha, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    for block in self.tree.chunks(entry.path):
                        sha.update(block)
                        size += len(block)
                        out.write(block)
                except (ObjectNotFound, FileNotFoundError):
                    raise ReleaseIntegrityError(f"{entry.path}: listed in the manifest of {self.name}@{self.version} "
                                                f"but absent from {self.tree.location}") from None
            if (size, sha.hexdigest()) != (entry.size, entry.sha256):
                raise ReleaseIntegrityError(
                    f"{entry.path}: fetched {size} bytes, SHA-256 {sha.hexdigest()[:16]}...; the manifest of "
                    f"{self.name}@{self.version} says {entry.size} bytes, {entry.sha256[:16]}...")
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def verify(self) -> VerifyReport:
        """Recompute every checksum where the release lives (curation.release.verify)."""
        return verify_tree(self.tree, expected_sha256=self.manifest_sha256)


def _store_tree(store: Store, ref: str) -> tuple[StoreTree, str]:
    """`NAME@VERSION`, or a bare NAME for its newest published version."""
    if "@" in ref:
        parsed = ReleaseRef.parse(ref)
        name, version = parsed.name, parsed.version
    else:
        name = check_name(ref)
        versions = published_versions(store, name)
        if not versions:
            raise FileNotFoundError(f"no published release named {name!r} in {store!r}")
        version = versions[-1]
    prefix = release_prefix(name, version)
    if not store.exists(Zone.RELEASES, prefix + MANIFEST_JSON):
        found = ", ".join(map(str, published_versions(store, name))) or "none"
        raise FileNotFoundError(f"{name}@{version} is not published in {store!r} "
                                f"(published versions of {name}: {found})")
    return StoreTree(store, prefix), prefix


def open_release(where: str | Path | Store, name_at_version: str | None = None, *, verify: bool = False,
                 expected_sha256: str | None = None, cache: str | Path | None = None) -> Release:
    """Open a release: `where` is a store (path, `s3://...` URI, or a Store) with `name_at_version`
    (`chest@1.1.0`, or `chest` for its newest version), or a release folder without it. With `verify`
    every file is checked first (ReleaseIntegrityError names the problems); with `expected_sha256` the
    manifest must be the cited one."""
    store: Store | None = None
    prefix = None
    if name_at_version is not None:
        store = where if isinstance(where, Store) else open_store(str(where))
        tree, prefix = _store_tree(store, name_at_version)
    else:
        if isinstance(where, Store) or str(where).startswith("s3://"):
            raise ValueError("name the release (NAME@VERSION) to open it from a store")
        root = Path(where)
        if not (root / MANIFEST_JSON).is_file():
            raise FileNotFoundError(f"{root} is not a release folder (no {MANIFEST_JSON})")
        tree = DirTree(root)
    data = tree.read(MANIFEST_JSON)
    sha = hashlib.sha256(data).hexdigest()
    if expected_sha256 and sha != expected_sha256:
        raise ReleaseIntegrityError(f"{tree.location}: manifest SHA-256 {sha} is not the cited {expected_sha256}")
    release = Release(tree, Manifest.from_bytes(data), sha, Path(cache) if cache else default_cache(), store, prefix)
    if verify:
        report = release.verify()
        if not report.ok:
            raise ReleaseIntegrityError(f"{tree.location} does not verify: " + "; ".join(map(str, report.problems)))
    return release


__all__ = ["CONSENSUS_DTYPES", "READING_DTYPES", "Release", "ReleaseIntegrityError", "SERIES_DTYPES",
           "default_cache", "open_release", "read_table", "table_dtypes"]
