"""API keys: ``cf_<random>`` shown once, kept only as a SHA-256 hash, scoped read / write / admin.

A key is looked up by its hash and the stored hash is compared in constant time; nothing in the
registry can be turned back into a key.  Scopes nest: ``admin`` may do what ``write`` may, and
``write`` what ``read`` may.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from clientfolio.core.errors import ClientfolioError

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
KEY_PREFIX = "cf_"


class AuthError(ClientfolioError):
    """A request without a valid key, or with a key that may not do what it asks."""


def new_key() -> str:
    """A fresh API key: ``cf_`` and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """The public id of a key, used to list and revoke it (never a secret)."""
    return "key_" + secrets.token_hex(6)


def key_hash(key: str) -> str:
    """The stored form of a key: hex SHA-256 (keys are 256 random bits, so no salt or stretching is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two stored hashes."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def looks_like_key(text: str) -> bool:
    """Cheap shape check before any database look-up."""
    return text.startswith(KEY_PREFIX) and 20 <= len(text) <= 100 and text[3:].replace("-", "").replace("_", "").isalnum()


def check_scope(scope: str) -> Scope:
    """`scope` checked against read / write / admin (a plain error naming the allowed values)."""
    if scope not in SCOPES:
        raise AuthError(f"scope must be one of read, write, admin; got {scope!r}")
    return scope  # type: ignore[return-value]


def allows(granted: str, needed: Scope) -> bool:
    """Does a key of scope `granted` allow an operation needing `needed`?"""
    return SCOPES.index(check_scope(granted)) >= SCOPES.index(needed)


@dataclass(frozen=True)
class KeyInfo:
    """What a valid key grants: its id, its workspace and its scope."""

    key_id: str
    workspace: str
    scope: Scope
    workspace_uid: str = ""
