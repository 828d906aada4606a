"""Which objects an item may point at: the de-identified and derived zones of the configured store.

The platform's store keeps objects at `<root>/<zone>/<key>` (local disk) and
`s3://<bucket>[/<prefix>]/<zone>/<key>` (S3). The zone names below copy `curation.vocabulary.Zone`
(raw, deid, derived, releases, vault); the service talks to the pipeline only over HTTP and must not
import `curation`, so this tiny rule is duplicated here on purpose. Keep the two in step.

`UriPolicy` is the gate every item URI passes at registration and at every read:
- a path segment naming a refused zone (raw: PHI; vault: secrets) is refused always;
- `ANNOTATION_STORE_URI` names the store(s) (a folder, `file:///...` or `s3://bucket/prefix`): a
  `file://`/`s3://` URI must then lie in `<store>/<readable zone>/` of one of them. The header
  cleaning in `phi.py` cannot remove text burned into the pixels, so nothing outside the
  de-identified zones is read, whatever its folder is called;
- without a store setting (a laptop or the tests' stores) a segment must name a readable zone;
- `ANNOTATION_ALLOWED_ROOTS` (folders) and `ANNOTATION_ALLOWED_URL_PREFIXES` (s3 / DICOMweb
  prefixes) open more, explicitly;
- a DICOMweb URL carries no zone: it is read only from an allow-listed archive of de-identified
  data (`ANNOTATION_ALLOWED_URL_PREFIXES`), never by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

RAW = "raw"
DEID = "deid"
DERIVED = "derived"
VAULT = "vault"

REFUSED_ZONES = frozenset({RAW, VAULT})
READABLE_ZONES = (DEID, DERIVED)
_REMOTE = ("http", "https")


class ZoneError(ValueError):
    """The URI points outside the zones the service may read."""


def check_segments(segments: list[str], readable: tuple[str, ...] | list[str] = READABLE_ZONES) -> None:
    """Raise ZoneError unless the path lies in a readable zone and in no refused one."""
    if any(part in REFUSED_ZONES for part in segments):
        raise ZoneError("the raw zone and the vault are never read by the annotation service: register items "
                        "from the deid or derived zone")
    if readable and not any(part in readable for part in segments):
        raise ZoneError(f"an item must point at a de-identified or derived object (a path in the "
                        f"{' or '.join(readable)} zone of the store)")


def _local_root(store: str) -> Path | None:
    if store.startswith("file://"):
        return Path(unquote(urlparse(store).path)).resolve()
    if "://" in store:
        return None
    return Path(store).resolve()


def _local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ZoneError("a file URI must name a local path (file:///...)")
    try:
        return Path(unquote(parsed.path)).resolve()
    except (ValueError, OSError):
        raise ZoneError("malformed file URI") from None


@dataclass(frozen=True)
class UriPolicy:
    """The item-URI rule of one deployment (see the module docstring)."""

    store_uris: tuple[str, ...] = ()
    zones: tuple[str, ...] = READABLE_ZONES
    allowed_roots: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()

    @property
    def local_zone_roots(self) -> list[Path]:
        roots = [r for r in (_local_root(s) for s in self.store_uris) if r is not None]
        return [root / zone for root in roots for zone in self.zones]

    @property
    def s3_zone_prefixes(self) -> list[str]:
        stores = [s.rstrip("/") for s in self.store_uris if s.startswith("s3://")]
        return [f"{s}/{zone}/" for s in stores for zone in self.zones]

    def check(self, uri: str) -> None:
        """Raise ZoneError (a message naming the rule and the setting, never the path) unless readable."""
        try:
            scheme = urlparse(uri).scheme
        except ValueError:
            raise ZoneError("malformed URI") from None
        if scheme == "file":
            self._check_file(_local_path(uri))
        elif scheme == "s3":
            self._check_s3(uri)
        elif scheme in _REMOTE:
            if not any(uri.startswith(p) for p in self.allowed_prefixes):
                raise ZoneError("a DICOMweb URL is read only from an allow-listed archive of de-identified data "
                                "(ANNOTATION_ALLOWED_URL_PREFIXES); this one is not on the list")
        else:
            raise ZoneError("unsupported URI scheme (file, s3, http(s) DICOMweb)")

    def _check_file(self, path: Path) -> None:
        check_segments(list(path.parts), ())
        if any(path.is_relative_to(Path(root).resolve()) for root in self.allowed_roots):
            return
        if self.store_uris:
            if not any(path.is_relative_to(root) for root in self.local_zone_roots):
                raise ZoneError(f"an item must point at a de-identified or derived object: this file is not in the "
                                f"{' or '.join(self.zones)} zone of the configured store (ANNOTATION_STORE_URI); "
                                f"ANNOTATION_ALLOWED_ROOTS opens another folder explicitly")
            return
        check_segments(list(path.parts), self.zones)

    def _check_s3(self, uri: str) -> None:
        key = urlparse(uri).path.lstrip("/")
        check_segments(key.split("/"), ())
        if any(uri.startswith(p) for p in self.allowed_prefixes):
            return
        if self.store_uris:
            if not any(uri.startswith(p) for p in self.s3_zone_prefixes):
                raise ZoneError(f"an item must point at a de-identified or derived object: this S3 object is not in "
                                f"the {' or '.join(self.zones)} zone of the configured store (ANNOTATION_STORE_URI)")
            return
        check_segments(key.split("/"), self.zones)
