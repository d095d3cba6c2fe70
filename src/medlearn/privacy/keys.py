"""The de-identification secret and everything derived from it.

Every replacement value (pseudonyms, new UIDs, per-patient date offsets) is an HMAC-SHA256 of the original
value under a secret the user holds, so:

- re-running with the same key gives the same output (a later extract of the same patients links to an
  earlier one, and a study UID seen in two files maps to the same new UID without any shared state);
- without the key nobody can recompute the mapping, unlike an unkeyed hash of a low-entropy id (a
  MIMIC ``subject_id`` has 8 digits: all 10^8 hashes are computed in seconds);
- the mapping is never stored, so there is no lookup table to protect or leak.

Each use has its own *domain* in the HMAC input, so a patient id and a stay id with the same digits get
unrelated pseudonyms, and a date offset cannot be derived from a pseudonym.

There is deliberately no default key: a default secret is a published secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from pathlib import Path

from medlearn.errors import ConfigError

#: Environment variable holding the secret (hex) when no ``--key-file`` is given.
KEY_ENV = "MEDLEARN_DEID_KEY"
#: A key shorter than this (bytes) is refused: 128 bits is the floor for an HMAC key.
MIN_KEY_BYTES = 16


def load_key(key_file: Path | None) -> bytes:
    """Read the secret from ``key_file`` (one hex string, whitespace ignored) or ``$MEDLEARN_DEID_KEY``.

    Raises:
        ConfigError: no key anywhere, an unreadable file, text that is not hex, or a key under 16 bytes.
    """
    if key_file is not None:
        try:
            text = Path(key_file).read_text(encoding="utf-8", errors="strict")
        except FileNotFoundError:
            raise ConfigError(f"{key_file}: key file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key_file}: cannot read the key file ({exc})") from None
        source = str(key_file)
    elif os.environ.get(KEY_ENV):
        text, source = os.environ[KEY_ENV], f"${KEY_ENV}"
    else:
        raise ConfigError(
            f"no de-identification key: pass --key-file FILE (one hex secret, e.g. made with "
            f"`openssl rand -hex 32 > deid.key`) or set {KEY_ENV}; keep the key secret and reuse it for the same "
            "linkage"
        )
    hex_text = "".join(text.split())
    try:
        key = bytes.fromhex(hex_text)
    except ValueError:
        raise ConfigError(f"{source}: the key must be one hex string (e.g. `openssl rand -hex 32`)") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{source}: the key has {len(key)} bytes; use at least {MIN_KEY_BYTES} (32 hex digits)"
        )
    return key


class Keyring:
    """Keyed, deterministic replacements derived from one secret.

    Args:
        key: the secret (at least 16 bytes).
        max_shift_days: largest date shift in days (either direction).
        min_shift_days: smallest date shift in days, so no patient keeps dates within a few days of the truth.

    Example:
        >>> ring = Keyring(bytes(range(32)))
        >>> ring.pseudonym_int("subject_id", "10000032") == ring.pseudonym_int("subject_id", "10000032")
        True
    """

    def __init__(self, key: bytes, max_shift_days: int = 3650, min_shift_days: int = 180):
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"de-identification key has {len(key)} bytes; use at least {MIN_KEY_BYTES}")
        if not 0 < min_shift_days <= max_shift_days:
            raise ConfigError(
                f"date shift range [{min_shift_days}, {max_shift_days}] days: need 0 < min <= max"
            )
        self._key = key
        self.max_shift_days = max_shift_days
        self.min_shift_days = min_shift_days

    @property
    def fingerprint(self) -> str:
        """First 12 hex digits of SHA-256(key): tells which key made an output without revealing it."""
        return hashlib.sha256(b"medlearn-deid-key-id" + self._key).hexdigest()[:12]

    def digest(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` in ``domain`` (the building block of every replacement)."""
        message = domain.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def token(self, domain: str, value: str, length: int = 12) -> str:
        """Upper-case hex pseudonym of ``length`` characters (ids in text columns, DICOM strings)."""
        return self.digest(domain, value).hex()[:length].upper()

    def pseudonym_int(self, domain: str, value: str) -> int:
        """Integer pseudonym in [10^14, 10^15): 15 digits, so it cannot be confused with a MIMIC/eICU id
        (8-9 digits) and stays exact in float64 and JavaScript (< 2^53)."""
        number = int.from_bytes(self.digest(domain, value)[:8], "big")
        return 10**14 + number % (9 * 10**14)

    def pseudonym_uuid(self, domain: str, value: str) -> str:
        """A UUID-shaped pseudonym (FHIR resource ids, ``urn:uuid:`` references)."""
        return str(uuid.UUID(bytes=self.digest(domain, value)[:16], version=4))

    def uid(self, original: str) -> str:
        """A new DICOM UID for ``original``: ``2.25.<128-bit integer>`` (the UUID-derived root of PS3.5
        B.2), the same for the same original in every file. pydicom's ``generate_uid(prefix=None)``
        ignores its entropy sources, hence this keyed equivalent."""
        return "2.25." + str(uuid.UUID(bytes=self.digest("dicom-uid", original.strip())[:16], version=4).int)

    def day_offset(self, domain: str, patient: str) -> int:
        """The date shift of one patient, in whole days, in ±[min_shift_days, max_shift_days].

        Whole days keep times of day and every interval between a patient's events exactly."""
        number = int.from_bytes(self.digest("date-shift:" + domain, patient)[:8], "big")
        span = self.max_shift_days - self.min_shift_days + 1
        magnitude = self.min_shift_days + number % span
        return -magnitude if (number >> 40) & 1 else magnitude
