"""Password hashes: Argon2id (RFC 9106), in the PHC string format

    $argon2id$v=19$m=65536,t=3,p=4$<salt, base64>$<hash, base64>

so the parameters travel with each hash and can be raised later without breaking old ones.
One hash costs about 0.1 s of CPU and 64 MiB: run it off the event loop (the gateway uses a
thread), and never on a data-plane request (tokens are verified, not passwords).
"""

from __future__ import annotations

import base64
import hmac
import os

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

TIME_COST = 3
MEMORY_KIB = 65536
LANES = 4
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # bytes: a longer "password" is a denial-of-service attempt


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, t: int, m: int, p: int, length: int) -> bytes:
    return Argon2id(salt=salt, length=length, iterations=t, lanes=p,
                    memory_cost=m).derive(password.encode())


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _derive(password, salt, TIME_COST, MEMORY_KIB, LANES, HASH_BYTES)
    return (f"$argon2id$v=19$m={MEMORY_KIB},t={TIME_COST},p={LANES}${_b64(salt)}"
            f"${_b64(digest)}")


def verify_password(password: str, stored: str) -> bool:
    """Constant-time; False for a malformed stored hash too."""
    try:
        _, kind, version, params, salt, digest = stored.split("$")
        values = dict(item.split("=") for item in params.split(","))
        if kind != "argon2id" or version != "v=19":
            return False
        expected = _unb64(digest)
        got = _derive(password, _unb64(salt), int(values["t"]), int(values["m"]),
                      int(values["p"]), len(expected))
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(got, expected)
