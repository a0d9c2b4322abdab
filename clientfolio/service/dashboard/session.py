"""Dashboard sign-in: a signed session cookie holding the key's id (never the key), and CSRF tokens.

The cookie is ``<payload>.<HMAC-SHA256>``, HttpOnly, SameSite=Strict, scoped to /dashboard and
valid for ``MAX_AGE`` seconds.  Each request turns the key id back into the key's workspace and
scope through the registry (so a revoked key signs its sessions out at once) and then into a store
through :meth:`Registry.store_for`, the service's one key→workspace→store path.  Every POST form
carries a token derived from the session's nonce (or, on the sign-in form, from a pre-session
cookie) and a cross-site Origin header is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from fastapi import Request

from clientfolio.core.errors import ClientfolioError
from clientfolio.service.auth import KeyInfo
from clientfolio.service.workspaces import Registry

COOKIE = "cf_session"
PRE_COOKIE = "cf_signin"
PATH = "/dashboard"
MAX_AGE = 12 * 3600


def new_secret() -> bytes:
    """The signing secret: CLIENTFOLIO_SESSION_SECRET if set (sessions survive restarts), else random."""
    raw = os.environ.get("CLIENTFOLIO_SESSION_SECRET")
    if not raw:
        return secrets.token_bytes(32)
    if len(raw) < 32:
        raise ClientfolioError("CLIENTFOLIO_SESSION_SECRET must be at least 32 characters; make one with "
                               "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return raw.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, purpose: str, text: str) -> str:
    return _b64(hmac.new(secret, f"{purpose}|{text}".encode("utf-8"), hashlib.sha256).digest())


@dataclass(frozen=True)
class Session:
    """What the cookie holds: the key's id, a nonce (for CSRF tokens) and when it was issued."""

    key_id: str
    nonce: str
    issued: int


def encode(secret: bytes, key_id: str) -> str:
    """A fresh signed session cookie value for `key_id`."""
    payload = _b64(json.dumps({"k": key_id, "n": secrets.token_urlsafe(16), "t": int(time.time())}).encode())
    return payload + "." + _mac(secret, "session", payload)


def decode(secret: bytes, value: str | None) -> Session | None:
    """The session in a cookie value, or None if it is missing, forged, malformed or expired."""
    if not value or value.count(".") != 1 or len(value) > 1000:
        return None
    payload, sig = value.split(".")
    if not hmac.compare_digest(sig, _mac(secret, "session", payload)):
        return None
    try:
        data = json.loads(_unb64(payload))
        s = Session(str(data["k"]), str(data["n"]), int(data["t"]))
    except (ValueError, KeyError, TypeError):
        return None
    return s if 0 <= time.time() - s.issued <= MAX_AGE else None


def key_info(registry: Registry, key_id: str) -> KeyInfo | None:
    """The workspace and scope of a live (not revoked) key, by its public id."""
    return registry.resolve_id(key_id)


def csrf_token(secret: bytes, session: Session) -> str:
    """The token every POST form of a signed-in page carries."""
    return _mac(secret, "csrf", session.nonce)


def signin_token(secret: bytes, pre: str) -> str:
    """The sign-in form's token, tied to its pre-session cookie."""
    return _mac(secret, "signin", pre)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin or Sec-Fetch-Site)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def check_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the expected one."""
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())
