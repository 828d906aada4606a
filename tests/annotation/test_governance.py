"""Point 13 of issue 17: items come only from the de-identified zones of the configured store.

The header cleaning cannot remove text burned into the pixels, so an item URI that points into a raw
(identifiable) folder must be refused however that folder is named; an explicit setting opens more."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from annotation.config import Settings
from annotation.zones import UriPolicy, ZoneError
from tests.annotation import dicomgen
from tests.annotation.conftest import make_client
from tests.annotation.world import build_world, ok


def _register(client, w, uri: str, external_id: str):
    return client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"),
                       json={"items": [{"external_id": external_id, "uris": [uri]}]})


@pytest.fixture
def hospital(tmp_path: Path, store_root: Path) -> dict[str, Path]:
    """A raw hospital export in a folder that happens to be called `deid`, a store with deid and derived
    zones, and a curated folder outside the store."""
    one = next((store_root / "deid" / "series1").glob("*.dcm"))
    places = {"export": tmp_path / "pacs-export" / "deid" / "CT1" / "0000.dcm",
              "store_deid": store_root / "deid" / "series1" / one.name,
              "store_derived": tmp_path / "derived-copy.dcm",
              "raw": store_root / "raw" / "seriesR" / "0000.dcm",
              "curated": tmp_path / "curated" / "ct" / "0000.dcm"}
    for key in ("export", "curated"):
        places[key].parent.mkdir(parents=True)
        shutil.copy(one, places[key])
    derived = dicomgen.write_series(store_root / "derived" / "mc-governance", 1)
    places["store_derived"] = derived[0]
    return places


def test_store_setting_refuses_a_raw_export_named_deid(tmp_path: Path, store_root: Path, hospital) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with make_client(url, store_uris=[str(store_root)]) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        r = _register(client, w, hospital["export"].as_uri(), "export")
        assert r.status_code == 422, r.text
        assert "not in the deid or derived zone of the configured store" in r.text and "ANNOTATION_STORE_URI" in r.text
        assert "pacs-export" not in r.text  # the refusal never echoes the path (folder names may identify)
        r = _register(client, w, hospital["raw"].as_uri(), "raw")
        assert r.status_code == 422 and "raw zone" in r.text
        ok(_register(client, w, hospital["store_deid"].as_uri(), "deid"), 201)
        ok(_register(client, w, hospital["store_derived"].as_uri(), "derived"), 201)
        r = _register(client, w, hospital["curated"].as_uri(), "curated")
        assert r.status_code == 422
        r = _register(client, w, "https://pacs.example.org/dicom-web/studies/1/series/2/instances/3", "web")
        assert r.status_code == 422 and "allow-listed archive" in r.text


def test_allowed_roots_open_a_named_folder(tmp_path: Path, store_root: Path, hospital) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with make_client(url, store_uris=[store_root.as_uri()], allowed_roots=[str(tmp_path / "curated")]) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        ok(_register(client, w, hospital["curated"].as_uri(), "curated"), 201)
        assert _register(client, w, hospital["export"].as_uri(), "export").status_code == 422


def test_reads_of_items_stored_before_a_stricter_setting_are_refused(tmp_path: Path, store_root: Path, hospital) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with make_client(url) as client:  # no store setting: a segment named deid is enough
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        item = ok(_register(client, w, hospital["export"].as_uri(), "export"), 201)["created"][0]
        assert client.get(f"/api/items/{item}/instances/0/file", headers=w.h("manager")).status_code == 200
    with make_client(url, store_uris=[str(store_root)], cache_mb=0) as client:
        r = client.get(f"/api/items/{item}/instances/0/file", headers=w.h("manager"))
        assert r.status_code == 502 and "configured store" in r.text


def test_policy_rules_for_s3_and_dicomweb() -> None:
    policy = UriPolicy(store_uris=("s3://curate/site-a",), allowed_prefixes=("https://orthanc-deid.local/dicom-web/",))
    policy.check("s3://curate/site-a/deid/ab/x.dcm")
    policy.check("s3://curate/site-a/derived/ab/x.dcm")
    policy.check("https://orthanc-deid.local/dicom-web/studies/1/series/2/instances/3")
    for uri in ("s3://curate/site-a/raw/ab/x.dcm", "s3://curate/site-b/deid/ab/x.dcm", "s3://other/deid/x.dcm",
                "https://pacs.hospital/dicom-web/studies/1", "file:///srv/store/deid/x.dcm", "ftp://x/deid/y.dcm"):
        with pytest.raises(ZoneError):
            policy.check(uri)


def test_the_service_warns_when_no_store_is_named(tmp_path: Path, store_root: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="annotation.app"):
        make_client(f"sqlite:///{tmp_path / 'a.db'}")
    assert "ANNOTATION_STORE_URI is not set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="annotation.app"):
        make_client(f"sqlite:///{tmp_path / 'b.db'}", store_uris=[str(store_root)])
    assert "ANNOTATION_STORE_URI" not in caplog.text


def test_settings_read_the_store_and_openings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANNOTATION_STORE_URI", f"{tmp_path} s3://curate/site-a")
    monkeypatch.setenv("ANNOTATION_ALLOWED_ROOTS", str(tmp_path / "curated"))
    monkeypatch.setenv("ANNOTATION_ALLOWED_URL_PREFIXES", "https://orthanc-deid.local/dicom-web/")
    policy = Settings.from_env().uri_policy()
    assert policy.store_uris == (str(tmp_path), "s3://curate/site-a")
    assert policy.allowed_roots == (str(tmp_path / "curated"),)
    assert policy.local_zone_roots == [tmp_path.resolve() / "deid", tmp_path.resolve() / "derived"]
