"""azure-identity compatible credentials that mint emulator tokens.

``EmulatorCredential`` follows ``azure.core.credentials.TokenCredential`` (and ``SupportsTokenInfo``);
``AsyncEmulatorCredential`` follows ``azure.core.credentials_async.AsyncTokenCredential``.  Both return tokens
whose ``roles`` claim lists the app roles given, which is what the emulator checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo

from .auth import DEFAULT_APP_ID, DEFAULT_TENANT_ID, RESTORE_READWRITE, SEARCH_READ, make_token

__all__ = ["AsyncEmulatorCredential", "EmulatorCredential", "make_token"]

DEFAULT_ROLES = (RESTORE_READWRITE, SEARCH_READ)


class _Minter:
    def __init__(
        self,
        roles: Iterable[str],
        tenant_id: str,
        app_id: str,
        app_display_name: str,
        lifetime: int,
    ) -> None:
        self.roles = list(roles)
        self.tenant_id = tenant_id
        self.app_id = app_id
        self.app_display_name = app_display_name
        self.lifetime = lifetime
        self.calls = 0

    def mint(self, scopes: tuple[str, ...], tenant_id: str | None) -> tuple[str, int]:
        self.calls += 1
        now = int(time.time())
        token = make_token(
            self.roles,
            tenant_id=tenant_id or self.tenant_id,
            app_id=self.app_id,
            app_display_name=self.app_display_name,
            lifetime=self.lifetime,
            now=now,
        )
        return token, now + self.lifetime


class EmulatorCredential:
    """Synchronous ``TokenCredential`` for the Graph emulator."""

    def __init__(
        self,
        roles: Iterable[str] = DEFAULT_ROLES,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        app_id: str = DEFAULT_APP_ID,
        app_display_name: str = "restore-orchestrator",
        lifetime: int = 3600,
    ) -> None:
        self._minter = _Minter(roles, tenant_id, app_id, app_display_name, lifetime)

    @property
    def calls(self) -> int:
        return self._minter.calls

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, expires_on = self._minter.mint(scopes, tenant_id)
        return AccessToken(token, expires_on)

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        tenant = (options or {}).get("tenant_id")
        token, expires_on = self._minter.mint(scopes, tenant)
        return AccessTokenInfo(token, expires_on)

    def close(self) -> None:
        return None

    def __enter__(self) -> EmulatorCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEmulatorCredential:
    """Asynchronous ``AsyncTokenCredential`` for the Graph emulator."""

    def __init__(
        self,
        roles: Iterable[str] = DEFAULT_ROLES,
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        app_id: str = DEFAULT_APP_ID,
        app_display_name: str = "restore-orchestrator",
        lifetime: int = 3600,
    ) -> None:
        self._minter = _Minter(roles, tenant_id, app_id, app_display_name, lifetime)

    @property
    def calls(self) -> int:
        return self._minter.calls

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        token, expires_on = self._minter.mint(scopes, tenant_id)
        return AccessToken(token, expires_on)

    async def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        tenant = (options or {}).get("tenant_id")
        token, expires_on = self._minter.mint(scopes, tenant)
        return AccessTokenInfo(token, expires_on)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncEmulatorCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
