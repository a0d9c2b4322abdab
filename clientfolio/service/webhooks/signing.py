"""Standard Webhooks signatures (https://www.standardwebhooks.com), written here in a few lines.

A message is signed as ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`` where the key
is the base64 part of a ``whsec_<base64>`` secret and the timestamp is whole Unix seconds.
During a secret rotation the message carries one signature per valid secret, separated by
spaces, so a receiver that still holds the old secret keeps verifying.  The `standardwebhooks`
package's verifier is the reference the tests check these against.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from clientfolio.core.errors import ClientfolioError

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


class SecretError(ClientfolioError, ValueError):
    """A signing secret that is not `whsec_` followed by base64 of 24 to 64 bytes."""


def new_secret() -> str:
    """A fresh random signing secret, ``whsec_<base64 of 32 random bytes>``."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise SecretError("a webhook secret starts with 'whsec_' followed by base64; create one with new_secret()")
    try:
        key = base64.b64decode(secret[len(PREFIX):], validate=True)
    except ValueError:
        raise SecretError("the part of the webhook secret after 'whsec_' is not base64") from None
    if not 24 <= len(key) <= 64:
        raise SecretError(f"a webhook secret holds 24 to 64 bytes, this one {len(key)}")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of `body` under `secret`."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def sign_headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, with one signature per valid secret (newest first)."""
    if not secrets_:
        raise SecretError(f"message {msg_id}: no valid signing secret; rotate the endpoint's secret")
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)}
