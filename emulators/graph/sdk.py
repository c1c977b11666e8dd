"""The recipe for pointing msgraph-sdk's ``GraphServiceClient`` at the emulator (or any Graph base URL).

The service keeps its own copy of this function (it must not import from ``emulators``); keep them in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential
    from msgraph import GraphServiceClient

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]


def make_graph_client(
    base_url: str,
    credential: TokenCredential | AsyncTokenCredential,
    *,
    scopes: list[str] | None = None,
    max_retries: int | None = None,
    timeout: float = 30.0,
) -> GraphServiceClient:
    """A ``GraphServiceClient`` whose requests go to ``base_url`` (e.g. ``http://127.0.0.1:8765/v1.0``).

    * Scopes stay ``https://graph.microsoft.com/.default``: the token is asked for Graph, whatever the host.
    * ``allowed_hosts=[host of base_url]``: kiota only attaches the bearer token for allowed hosts.
    * kiota's ``AzureIdentityAccessTokenProvider`` refuses plain ``http`` unless the host is ``localhost``,
      ``127.0.0.1``, ``::1`` or ``[::1]`` (it raises "Only https is supported"); use one of those for the emulator.
    * ``max_retries``: kiota's RetryHandler retries 429/503/504 (3 times by default, honouring Retry-After);
      pass 0 to see every throttling answer yourself.
    """
    import httpx
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    host = urlsplit(base_url).hostname
    if not host:
        raise ValueError(f"base_url needs a scheme and host: {base_url!r}")
    auth_provider = AzureIdentityAuthenticationProvider(
        credential, scopes=list(scopes or GRAPH_SCOPES), allowed_hosts=[host]
    )
    options: dict[str, Any] = {
        UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
            enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
        ),
    }
    if max_retries is not None:
        options[RetryHandlerOption.get_key()] = RetryHandlerOption(max_retries=max_retries)
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(base_url=base_url, timeout=timeout), options=options
    )
    adapter = GraphRequestAdapter(auth_provider, client=http_client)
    adapter.base_url = base_url
    return GraphServiceClient(request_adapter=adapter)
