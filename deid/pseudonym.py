"""Keyed pseudonyms: HMAC-SHA256 with the site secret, so the same patient gets the same
pseudonym across runs, studies and series, different patients differ, and nobody without the
secret can recompute the mapping from a guessed identifier. The secret is the whole key: a new
one (rotation) gives every patient new pseudonyms, UIDs and date shifts (see deid/README.md)."""
from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

#: Date shifts lie in [-(MIN + SPAN), -MIN] days (100 to 110 years back): a shifted date can
#: never equal another date of the same patient unless that patient was scanned aged 100+.
SHIFT_MIN_DAYS = 36525
SHIFT_SPAN_DAYS = 3653


class Pseudonymizer:
    """Deterministic, keyed replacements for identifiers, UIDs and the per-patient date shift."""

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("site secret shorter than 16 bytes")
        self._secret = secret
        self.uid = lru_cache(maxsize=65536)(self._uid)

    def _mac(self, domain: bytes, value: str) -> bytes:
        return hmac.new(self._secret, domain + b"\x00" + value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def patient_id(self, patient_key: str) -> str:
        """``ANON`` + 16 base32 characters (80 bits): fits LO and never looks like a source ID."""
        code = base64.b32encode(self._mac(b"patient", patient_key)[:10]).decode()
        return f"ANON{code}"

    def patient_name(self, patient_key: str) -> str:
        return f"ANON^{self.patient_id(patient_key)[4:]}"

    def _uid(self, uid: str) -> str:
        """2.25 root (PS3.5 B.2) with a 128-bit integer from the keyed hash: at most 44 chars."""
        return "2.25." + str(int.from_bytes(self._mac(b"uid", uid.strip("\x00 "))[:16], "big"))

    def date_shift_days(self, patient_key: str) -> int:
        n = int.from_bytes(self._mac(b"dateshift", patient_key)[:4], "big")
        return -(SHIFT_MIN_DAYS + n % SHIFT_SPAN_DAYS)

    def time_shift_seconds(self, patient_key: str) -> int:
        """Seconds added to DT values with the day shift (time of day moves too), 1..86399."""
        n = int.from_bytes(self._mac(b"timeshift", patient_key)[:4], "big")
        return 1 + n % 86399

    def token(self, domain: str, value: str, length: int = 12) -> str:
        """A short keyed token for other identifiers (accession, study ID) when kept as dummies."""
        return base64.b32encode(self._mac(domain.encode(), value)[:10]).decode()[:length]
