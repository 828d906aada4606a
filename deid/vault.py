"""The vault: the site secret (HMAC key) and the sealed re-identification map.

Trusted-third-party scheme (the INCISIVE model): the pipeline holds only the data protection
officer's X25519 *public* key. Each map entry (pseudonym + new StudyInstanceUID -> original
identifiers) is sealed on its own: a fresh ephemeral X25519 key, HKDF-SHA256 of the shared secret,
AES-256-GCM with the pseudonym and study bound as associated data. Appending therefore needs no
decryption, and nothing the platform stores can open an entry; only the private key, created by
`curate deid keys create` and kept by the officer, can. The symmetric Fernet map of earlier
versions (its key lay beside it in the same vault) is read only by `migrate_fernet_*`.

Nothing here is ever written to a curated zone. Never imports Airflow or `curation`.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

SECRET_BYTES = 32
#: Environment variables that supply the HMAC pseudonym secret instead of the vault file/object.
SECRET_ENV = "CURATE_PSEUDONYM_SECRET"
SECRET_CONN_ENV = "CURATE_PSEUDONYM_SECRET_CONN"
DEFAULT_SECRET_CONN_ID = "curate_pseudonym_secret"

PUBLIC_KEY_NAME = "reid_public_key.pem"  # beside the secret (folder vault) / under deid/ (store vault)
SEALED_MAP_NAME = "reid_map.sealed"      # folder vault: one JSON line per sealed entry
SEALED_SUFFIX = ".sealed"
LEGACY_MAP_NAME, LEGACY_KEY_NAME = "reid_map.fernet", "reid_map.key"

_MAGIC = b"curate-reid-v1"
_VERSION = 1


class VaultKeyError(PermissionError):
    """A key is missing, wrong or in the wrong place (a user error with a sentence that says what to do)."""


# --- atomic private files ---------------------------------------------------------------------

def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Atomic write of a 0600 file (temp file + rename; ``exclusive``: link, never overwrite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if exclusive:
            os.link(tmp, path)  # fails if the name exists
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) so parallel first uses create one secret / key pair."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --- the HMAC pseudonym secret ----------------------------------------------------------------

def new_secret() -> bytes:
    return secrets.token_hex(SECRET_BYTES).encode()


def _check_secret(raw: bytes, where: str) -> bytes:
    if len(raw) < 16:
        raise ValueError(f"site secret from {where} is shorter than 16 bytes")
    return raw


def _connection_password(value: str) -> str | None:
    """The password of an Airflow connection in its environment form (JSON or URI), parsed here
    so the library never imports Airflow."""
    value = value.strip()
    if value.startswith("{"):
        password = json.loads(value).get("password")
        return str(password) if password else None
    parts = urlsplit(value)
    return unquote(parts.password) if parts.password else None


def secret_from_environment(environ: Mapping[str, str] | None = None) -> tuple[bytes, str] | None:
    """The secret and where it came from (never the value), or None to use the vault.

    ``CURATE_PSEUDONYM_SECRET`` first, then the password of the Airflow connection named by
    ``CURATE_PSEUDONYM_SECRET_CONN`` (default ``curate_pseudonym_secret``) as Airflow exports it to
    the environment (``AIRFLOW_CONN_<ID>``), which a secrets backend or the deployment sets."""
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV):
        return _check_secret(env[SECRET_ENV].strip().encode(), SECRET_ENV), SECRET_ENV
    conn_id = env.get(SECRET_CONN_ENV) or DEFAULT_SECRET_CONN_ID
    var = "AIRFLOW_CONN_" + conn_id.upper()
    if env.get(var):
        try:
            password = _connection_password(env[var])
        except ValueError as exc:
            raise ValueError(f"{var} is neither a connection URI nor its JSON form") from exc
        if not password:
            raise ValueError(f"Airflow connection {conn_id} ({var}) has no password: put the pseudonym secret there")
        return _check_secret(password.encode(), f"Airflow connection {conn_id}"), f"airflow connection {conn_id}"
    if env.get(SECRET_CONN_ENV):
        raise ValueError(f"{SECRET_CONN_ENV}={conn_id} but {var} is not set")
    return None


def load_or_create_secret(path: str | os.PathLike) -> bytes:
    """The site secret: from the environment (see ``secret_from_environment``), else the vault
    file, created with a random value (mode 0600) if it does not exist."""
    found = secret_from_environment()
    if found is not None:
        return found[0]
    p = Path(path)
    if not p.exists():
        with file_lock(p.with_name(f".{p.name}.lock")):
            if not p.exists():
                _write_private(p, new_secret() + b"\n", exclusive=True)
    return _check_secret(p.read_bytes().strip(), str(p))


# --- the officer's key pair -------------------------------------------------------------------

def generate_key_pair(passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """(private key PEM (PKCS#8, encrypted when a passphrase is given), public key PEM)."""
    priv = X25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    priv_pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    return priv_pem, public_pem(priv.public_key())


def public_pem(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise VaultKeyError("not a PEM public key (expected the file `curate deid keys create` wrote)") from exc
    if not isinstance(key, X25519PublicKey):
        raise VaultKeyError("the re-identification public key must be an X25519 key")
    return key


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:
        raise VaultKeyError("the private key is passphrase-protected: give its passphrase (or it is not)") from exc
    except ValueError as exc:
        raise VaultKeyError("not the PEM private key `curate deid keys create` wrote, or a wrong passphrase") from exc
    if not isinstance(key, X25519PrivateKey):
        raise VaultKeyError("the re-identification private key must be an X25519 key")
    return key


def fingerprint(key: X25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key: names the key pair in records
    and in the ledger (which DPO key opened an entry) without revealing anything."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def write_private_key(path: Path, pem: bytes) -> None:
    """The officer's key file: mode 0600, never over an existing file (losing a key loses the map)."""
    try:
        _write_private(path, pem, exclusive=True)
    except FileExistsError as exc:
        raise VaultKeyError(f"{path} exists: refusing to overwrite a private key") from exc


# --- sealing ----------------------------------------------------------------------------------

def _derive(shared: bytes, eph: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph + recipient, info=_MAGIC).derive(shared)


def _aad(pseudonym: str, study: str) -> bytes:
    return _MAGIC + b"\x00" + pseudonym.encode() + b"\x00" + study.encode()


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(plaintext: bytes, public_key: X25519PublicKey, aad: bytes) -> bytes:
    """Sealed box: ephemeral X25519 public key (32) + nonce (12) + AES-256-GCM ciphertext."""
    eph = X25519PrivateKey.generate()
    eph_pub = _raw(eph.public_key())
    key = _derive(eph.exchange(public_key), eph_pub, _raw(public_key))
    nonce = os.urandom(12)
    return eph_pub + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(blob: bytes, private_key: X25519PrivateKey, aad: bytes) -> bytes:
    if len(blob) < 32 + 12 + 16:
        raise InvalidTag()
    eph_pub, nonce, ct = blob[:32], blob[32:44], blob[44:]
    key = _derive(private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub,
                  _raw(private_key.public_key()))
    return AESGCM(key).decrypt(nonce, ct, aad)


def seal_entries(entries: dict[str, dict[str, Any]], public_key: X25519PublicKey) -> list[dict[str, Any]]:
    """``{pseudonym: {field: value, "studies": {new_uid: {...}}}}`` (the engine's ``reid``) as
    sealed records, one per (pseudonym, study). Pseudonym and new StudyInstanceUID stay readable:
    both are in every de-identified output, and they let an append skip what is already sealed."""
    fp = fingerprint(public_key)
    records = []
    for pseudonym, info in sorted(entries.items()):
        patient = {k: v for k, v in info.items() if k != "studies"}
        for study, sinfo in sorted((info.get("studies") or {"": None}).items()):
            body = {**patient, "studies": {study: sinfo} if sinfo is not None else {}}
            blob = seal(json.dumps(body, sort_keys=True).encode(), public_key, _aad(pseudonym, study))
            records.append({"v": _VERSION, "pseudonym": pseudonym, "study": study, "key": fp,
                            "sealed": base64.b64encode(blob).decode()})
    return records


def dump_records(records: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)


def parse_records(blob: bytes) -> list[dict[str, Any]]:
    """JSON lines; a torn last line (a crash mid-append) is ignored."""
    out = []
    for line in blob.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def open_records(records: Iterable[dict[str, Any]], private_key: X25519PrivateKey,
                 pseudonym: str | None = None) -> dict[str, Any]:
    """Unseal (only ``pseudonym``'s records when given) and merge into the engine's shape."""
    fp = fingerprint(private_key.public_key())
    merged: dict[str, Any] = {}
    other_keys: set[str] = set()
    for rec in records:
        if pseudonym is not None and rec.get("pseudonym") != pseudonym:
            continue
        if rec.get("key") != fp:
            other_keys.add(str(rec.get("key")))
            continue
        try:
            body = json.loads(unseal(base64.b64decode(rec["sealed"]), private_key,
                                     _aad(rec["pseudonym"], rec.get("study", ""))))
        except (InvalidTag, ValueError, KeyError) as exc:
            raise VaultKeyError(f"a sealed entry of {rec.get('pseudonym')} does not open: damaged or moved") from exc
        slot = merged.setdefault(rec["pseudonym"], {"studies": {}})
        slot.update({k: v for k, v in body.items() if k != "studies"})
        slot["studies"].update(body.get("studies", {}))
    if not merged and other_keys:
        raise VaultKeyError(f"the entries are sealed for another key pair ({', '.join(sorted(other_keys))}); "
                            f"this private key is {fp}")
    return merged


class SealedMap:
    """The folder vault's map: one file of sealed JSON lines, only ever appended to (0600)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        return parse_records(self.path.read_bytes()) if self.path.exists() else []

    def append(self, entries: dict[str, dict[str, Any]], public_key: X25519PublicKey) -> int:
        """Seal and append the (pseudonym, study) entries not yet in the map; returns how many.
        Reads only the readable index, never decrypts."""
        if not entries:
            return 0
        with file_lock(self.path.with_name(f".{self.path.name}.lock")):
            have = {(r.get("pseudonym"), r.get("study")) for r in self.records()}
            new = [r for r in seal_entries(entries, public_key) if (r["pseudonym"], r["study"]) not in have]
            if new:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, dump_records(new))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return len(new)

    def patients(self) -> int:
        return len({r.get("pseudonym") for r in self.records()})


# --- the folder vault (curate deid SRC DST) ---------------------------------------------------

def folder_public_key(vault: Path, public_key_path: Path | None = None) -> X25519PublicKey:
    """The public key of a folder vault. First use of a fresh vault (no key, no map) creates a
    demo key pair whose private key goes to ``<vault>/../dpo-private-key-*.pem``, outside the vault,
    for the officer to take away; production creates keys with `curate deid keys create`."""
    path = public_key_path or vault / PUBLIC_KEY_NAME
    if (vault / LEGACY_MAP_NAME).exists() or (vault / LEGACY_KEY_NAME).exists():
        raise VaultKeyError(f"{vault} holds a symmetric (Fernet) map with its key beside it: run `curate deid keys "
                            "migrate --public-key FILE --secret-file SECRET` (SECRET: the site secret in that folder) first")
    if path.exists():
        return load_public_key(path.read_bytes())
    if (vault / SEALED_MAP_NAME).exists() or public_key_path is not None:
        raise VaultKeyError(f"no re-identification public key at {path}: the data protection officer runs "
                        f"`curate deid keys create --out FILE --public-key-out {path}`")
    with file_lock(vault / f".{PUBLIC_KEY_NAME}.lock"):
        if not path.exists():
            _write_private(path, make_demo_pair(vault.resolve().parent))
    return load_public_key(path.read_bytes())


def make_demo_pair(folder: Path) -> bytes:
    """A key pair for the demo / a first local run: the private key goes to
    ``folder/dpo-private-key-<fingerprint>.pem`` (0600, a new file per pair, never overwritten),
    announced once; returns the public key PEM for the caller to install."""
    priv, pub = generate_key_pair()
    private_path = folder / f"dpo-private-key-{fingerprint(load_public_key(pub))}.pem"
    write_private_key(private_path, priv)
    log.warning("demo key pair created: the re-identification private key is %s, outside the vault; hand it to "
                "the data protection officer and delete it here (production: curate deid keys create)", private_path)
    return pub


def read_fernet_map(blob: bytes, key: bytes) -> dict[str, Any]:
    """The entries of an old symmetric map (migration only: nothing writes this format any more)."""
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return json.loads(Fernet(key).decrypt(blob))
    except InvalidToken as exc:
        raise VaultKeyError("the old Fernet map does not open with the key beside it (wrong key or damaged)") from exc


def migrate_fernet_folder(vault: Path, public_key: X25519PublicKey) -> int:
    """Re-seal a folder vault's Fernet map (``reid_map.fernet`` + ``reid_map.key``) into
    ``reid_map.sealed`` for ``public_key``, then delete the old map and, last, its key.
    Safe to rerun after a crash (appends skip what is sealed). Returns the entries sealed."""
    old_map, old_key = vault / LEGACY_MAP_NAME, vault / LEGACY_KEY_NAME
    if not old_key.exists():
        raise VaultKeyError(f"no old map key at {old_key}: nothing to migrate")
    n = 0
    if old_map.exists():
        entries = read_fernet_map(old_map.read_bytes(), old_key.read_bytes().strip())
        n = SealedMap(vault / SEALED_MAP_NAME).append(entries, public_key)
        old_map.unlink()
    old_key.unlink()
    return n
