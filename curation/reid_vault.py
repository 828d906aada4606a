"""The pipeline's vault (zone VAULT of the store): the pseudonym secret, the officer's public key
and the sealed re-identification map, one fragment per series.

Layout: ``deid/site_secret`` (HMAC key, unless the environment or an Airflow connection supplies
it: `deid.vault.secret_from_environment`), ``deid/reid_public_key.pem`` (written by
`curate deid keys create`), ``deid/reid/<series>.sealed`` (JSON lines of sealed entries; one object
per series so parallel mapped tasks never rewrite a shared object). The private key is never here.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from curation.settings import settings
from curation.store import Store, Zone
from deid.vault import (
    SEALED_SUFFIX,
    VaultKeyError,
    dump_records,
    file_lock,
    load_public_key,
    make_demo_pair,
    new_secret,
    parse_records,
    seal_entries,
    secret_from_environment,
    read_fernet_map,
)

SECRET_KEY = "deid/site_secret"
PUBLIC_KEY_KEY = "deid/reid_public_key.pem"
MAP_PREFIX = "deid/reid/"
LEGACY_KEY_KEY = "deid/reid_map.key"
LEGACY_SUFFIX = ".fernet"


@contextlib.contextmanager
def _vault_lock(store: Store) -> Iterator[None]:
    """Serialises first-use creation on a local store (parallel tasks of one machine); object
    stores have no lock: production creates secret and keys before the first run."""
    path = store.local_path(Zone.VAULT, SECRET_KEY)
    if path is None:
        yield
        return
    with file_lock(path.with_name(".create.lock")):
        yield


def store_secret(store: Store) -> bytes:
    """The HMAC secret: environment / Airflow connection first, else the vault object (created once)."""
    found = secret_from_environment()
    if found is not None:
        return found[0]
    if not store.exists(Zone.VAULT, SECRET_KEY):
        # created at most once, whoever comes first (two workers' first deid tasks on S3 race here);
        # everyone then reads the one that won
        store.put_bytes_if_absent(Zone.VAULT, SECRET_KEY, new_secret())
    return store.get_bytes(Zone.VAULT, SECRET_KEY).strip()


def _embedded_home(store: Store) -> Path | None:
    """CURATE_HOME when ``store`` is the embedded default one (CURATE_HOME/store, no
    CURATE_STORE_URI): the only place the pipeline may make a demo key pair."""
    current = settings()
    if not current.embedded_store:
        return None
    root = store.local_path(Zone.VAULT, SECRET_KEY)
    home = current.home
    if root is None or root.resolve().parents[2] != (home / "store").resolve():
        return None
    return home


def put_public_key(store: Store, pem: bytes, *, replace: bool = False) -> None:
    load_public_key(pem)  # refuse anything that is not an X25519 public key
    if store.exists(Zone.VAULT, PUBLIC_KEY_KEY) and not replace:
        if store.get_bytes(Zone.VAULT, PUBLIC_KEY_KEY).strip() == pem.strip():
            return
        raise VaultKeyError(f"the vault of {store.uri} already has a re-identification public key; entries sealed "
                            "for it need its private key: use --replace only for a deliberate officer key change")
    store.put_bytes(Zone.VAULT, PUBLIC_KEY_KEY, pem)


def store_public_key(store: Store) -> X25519PublicKey:
    """The officer's public key from the vault. Missing: the embedded default (demo) creates a
    pair and writes the private key to CURATE_HOME/dpo-private-key-<fingerprint>.pem, outside the store; any
    other store fails with what to run. A vault that still holds the old Fernet key fails too."""
    if store.exists(Zone.VAULT, LEGACY_KEY_KEY):
        raise VaultKeyError(f"the vault of {store.uri} still holds the old symmetric map key beside its map: run "
                            f"`curate deid keys migrate --public-key FILE --store {store.uri}` first")
    if not store.exists(Zone.VAULT, PUBLIC_KEY_KEY):
        home = _embedded_home(store)
        if home is None:
            raise VaultKeyError(f"no re-identification public key in the vault of {store.uri}: the data protection "
                                f"officer runs `curate deid keys create --out FILE --store {store.uri}` (the private "
                                "key stays with the officer)")
        with _vault_lock(store):
            if not store.exists(Zone.VAULT, PUBLIC_KEY_KEY):
                store.put_bytes(Zone.VAULT, PUBLIC_KEY_KEY, make_demo_pair(home))
    return load_public_key(store.get_bytes(Zone.VAULT, PUBLIC_KEY_KEY))


def write_fragment(store: Store, series_uid: str, entries: dict[str, Any], public_key: X25519PublicKey) -> int:
    """Seal one series' entries into ``deid/reid/<series>.sealed`` (a rerun rewrites the same
    entries); returns the number of sealed records."""
    records = seal_entries(entries, public_key)
    store.put_bytes(Zone.VAULT, f"{MAP_PREFIX}{series_uid}{SEALED_SUFFIX}", dump_records(records))
    return len(records)


def store_records(store: Store) -> list[dict[str, Any]]:
    """Every sealed record of the store's map (readable index + ciphertext; nothing decrypted)."""
    records: list[dict[str, Any]] = []
    for key in sorted(store.list(Zone.VAULT, MAP_PREFIX)):
        if key.endswith(SEALED_SUFFIX):
            records.extend(parse_records(store.get_bytes(Zone.VAULT, key)))
    return records


def migrate_fernet_store(store: Store, public_key: X25519PublicKey) -> int:
    """Re-seal every ``deid/reid/<series>.fernet`` fragment for ``public_key``, then delete the
    fragments and, last, the Fernet key (a rerun after a crash finishes the job). Returns the
    number of sealed entries written."""
    if not store.exists(Zone.VAULT, LEGACY_KEY_KEY):
        raise VaultKeyError(f"no old map key ({LEGACY_KEY_KEY}) in the vault of {store.uri}: nothing to migrate")
    key = store.get_bytes(Zone.VAULT, LEGACY_KEY_KEY).strip()
    old = [k for k in sorted(store.list(Zone.VAULT, MAP_PREFIX)) if k.endswith(LEGACY_SUFFIX)]
    n = 0
    for k in old:
        entries = read_fernet_map(store.get_bytes(Zone.VAULT, k), key)
        n += write_fragment(store, k[len(MAP_PREFIX):-len(LEGACY_SUFFIX)], entries, public_key)
    for k in old:
        store.delete(Zone.VAULT, k)
    store.delete(Zone.VAULT, LEGACY_KEY_KEY)
    return n
