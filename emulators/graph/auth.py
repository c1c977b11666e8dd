"""Bearer-token handling: unsigned JWT creation and claim reading (no signature check)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

RESTORE_READWRITE = "BackupRestore-Restore.ReadWrite.All"
RESTORE_READ = "BackupRestore-Restore.Read.All"
SEARCH_READ = "BackupRestore-Search.Read.All"
CONFIG_READ = "BackupRestore-Configuration.Read.All"
CONFIG_READWRITE = "BackupRestore-Configuration.ReadWrite.All"

ALL_ROLES = (RESTORE_READWRITE, RESTORE_READ, SEARCH_READ, CONFIG_READ, CONFIG_READWRITE)

# Which roles satisfy each permission class used by the routes.
WRITE: frozenset[str] = frozenset({RESTORE_READWRITE})
READ: frozenset[str] = frozenset({RESTORE_READWRITE, RESTORE_READ})
# Guess: the docs name only BackupRestore-Search.Read.All for restorePoints/search; the restore roles are not
# accepted for search, so a service that forgets the search role is caught here.
SEARCH: frozenset[str] = frozenset({SEARCH_READ})
# Guess: protection units and policies are readable with the configuration roles or any restore role.
CONFIG: frozenset[str] = frozenset({CONFIG_READ, CONFIG_READWRITE, RESTORE_READWRITE, RESTORE_READ})

DEFAULT_TENANT_ID = "8f1e2c7a-4b3d-4e5f-9a6b-0c1d2e3f4a5b"
DEFAULT_APP_ID = "3c5e7a9b-1d2f-4a6b-8c0d-2e4f6a8b0c1d"
GRAPH_AUDIENCE = "https://graph.microsoft.com"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def make_token(
    roles: Iterable[str] = (RESTORE_READWRITE,),
    *,
    tenant_id: str = DEFAULT_TENANT_ID,
    app_id: str = DEFAULT_APP_ID,
    app_display_name: str = "restore-orchestrator",
    lifetime: int = 3600,
    now: float | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """Return an unsigned (``alg: none``) JWT shaped like a Graph app-only access token."""
    issued = int(time.time() if now is None else now)
    header = {"typ": "JWT", "alg": "none"}
    payload: dict[str, Any] = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime),
        "app_displayname": app_display_name,
        "appid": app_id,
        "idtyp": "app",
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{app_id}")),
        "roles": list(roles),
        "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sub:{tenant_id}:{app_id}")),
        "tid": tenant_id,
        "ver": "1.0",
    }
    if extra_claims:
        payload.update(extra_claims)
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}."


class TokenError(Exception):
    """The bearer token is missing or unreadable (maps to 401 InvalidAuthenticationToken)."""


class Principal:
    __slots__ = ("app_id", "app_name", "exp", "permissions", "tenant_id")

    def __init__(self, claims: dict[str, Any]) -> None:
        roles = claims.get("roles") or []
        scopes = str(claims.get("scp") or "").split()
        self.permissions: frozenset[str] = frozenset([*(r for r in roles if isinstance(r, str)), *scopes])
        self.tenant_id = str(claims.get("tid") or "")
        self.app_id = str(claims.get("appid") or claims.get("azp") or "")
        self.app_name = str(claims.get("app_displayname") or "")
        exp = claims.get("exp")
        self.exp: float | None = float(exp) if isinstance(exp, int | float) else None

    def identity_set(self) -> dict[str, Any]:
        return {"application": {"id": self.app_id, "displayName": self.app_name}}


class TokenCache:
    """Parses bearer tokens once; claims are read without verifying the signature."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._cache: dict[str, Principal] = {}
        self._max = max_entries

    def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise TokenError("Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise TokenError("Access token is empty.")
        found = self._cache.get(token)
        if found is None:
            parts = token.split(".")
            if len(parts) < 2:
                raise TokenError("IDX14100: JWT is not well formed, there are no dots (.).")
            try:
                claims = json.loads(_b64url_decode(parts[1]))
            except (ValueError, UnicodeDecodeError) as exc:
                raise TokenError("IDX14102: Unable to decode the payload as Base64Url encoded string.") from exc
            if not isinstance(claims, dict):
                raise TokenError("IDX14102: Unable to decode the payload as Base64Url encoded string.")
            found = Principal(claims)
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[token] = found
        if found.exp is not None and found.exp < time.time():
            raise TokenError("Lifetime validation failed, the token is expired.")
        return found
