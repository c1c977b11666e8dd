"""Graph credentials chosen from the settings; every path yields an azure-identity style credential."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from azure.core.credentials import AccessToken

from orchestrators.kernel.settings import Settings


class FixedTokenCredential:
    """Wraps GRAPH_ACCESS_TOKEN (emulator, debugging) so the SDK's auth path stays the production one."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._expires_on = _jwt_expiry(token) or int(time.time()) + 3600

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, self._expires_on)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FixedTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return "FixedTokenCredential(<redacted>)"


def _jwt_expiry(token: str) -> int | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return int(exp) if exp else None
    except (IndexError, ValueError, TypeError):
        return None


def graph_credential(settings: Settings) -> Any:
    """Fixed token, client secret, certificate, or (neither) managed identity / DefaultAzureCredential."""
    if settings.graph_access_token:
        return FixedTokenCredential(settings.graph_access_token)
    from azure.identity import aio as identity

    if settings.graph_client_secret:
        assert settings.graph_tenant_id and settings.graph_client_id
        return identity.ClientSecretCredential(settings.graph_tenant_id, settings.graph_client_id,
                                               settings.graph_client_secret)
    if settings.graph_client_certificate_path:
        assert settings.graph_tenant_id and settings.graph_client_id
        return identity.CertificateCredential(settings.graph_tenant_id, settings.graph_client_id,
                                              certificate_path=settings.graph_client_certificate_path)
    return identity.DefaultAzureCredential(managed_identity_client_id=settings.graph_client_id)
