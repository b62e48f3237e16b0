"""``phoneno`` replaced by its keyed hash inside the tap, when ``phoneno_hash_key`` is set.

A plain SHA-256 of a phone number protects nothing: there are few enough numbers
(about 10^11 of 11 digits) to hash them all and look every hash up. An
HMAC-SHA256 under a secret key can't be reversed that way without the key, and
the same number under the same key always gives the same hash, so a tester can
still be followed from run to run and joined across tables. Another key gives
every number another hash: the key must stay secret and stable.

The hash replaces the number where the records are built, before anything
else sees them: both ``testers`` and ``testers_observations`` (built from the
same records) carry it, and a user's stream map on ``phoneno`` maps the hash,
never the number.
"""

from __future__ import annotations

import hashlib
import typing as t

from tap_kaleyra_rcs.errors import register_secret

if t.TYPE_CHECKING:
    import logging

PHONE_FIELD = "phoneno"
_BLOCK = 64
"""SHA-256's block size in bytes: HMAC pads its key to it."""


class PhoneHasher:
    """Replaces ``phoneno`` in records by its hex HMAC-SHA256 under one key.

    HMAC (RFC 2104) is ``H((K ^ opad) + H((K ^ ipad) + message))``. The two
    keyed SHA-256 states are made once; each number then costs a copy of each
    and three C calls, half the time of ``hmac``'s own object per number (its
    ``copy``, ``update`` and ``hexdigest`` are Python methods). A test holds
    the result to ``hmac.new`` for keys shorter than, as long as and longer
    than SHA-256's 64-byte block.

    Creating one registers the key for redaction, like the API key: no error
    message or log line can then hold it, whole or in pieces.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: str) -> None:
        """Prepare the two keyed states once."""
        register_secret(key)
        secret = key.encode("utf-8")
        if len(secret) > _BLOCK:  # RFC 2104: a longer key is hashed first
            secret = hashlib.sha256(secret).digest()
        secret = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in secret))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in secret))

    def __repr__(self) -> str:
        """Nothing of the key."""
        return "PhoneHasher(key=***)"

    def digest(self, phone: str) -> str:
        """The number's HMAC-SHA256 under the key, as 64 lower-case hex digits."""
        inner = self._inner.copy()
        inner.update(phone.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def hash_phones(self, records: list[dict[str, t.Any]]) -> None:
        """Replace every ``phoneno`` of ``records`` in place; a null or absent one stays so."""
        digest = self.digest
        for record in records:
            phone = record.get(PHONE_FIELD)
            if phone is not None:
                record[PHONE_FIELD] = digest(phone)


def phone_hasher(key: str | None, logger: logging.Logger) -> PhoneHasher | None:
    """The hasher for a run, or None when no key is set and numbers go out as they are."""
    if key is None:
        return None
    logger.info(
        "phoneno is sent as its HMAC-SHA256 under phoneno_hash_key, in testers and "
        "testers_observations, before any stream map"
    )
    return PhoneHasher(key)
