"""Settings the Azure deployment relies on: the approval policy and an identity-based ledger (no key)."""

import asyncio

import pytest
from azure.identity.aio import DefaultAzureCredential

from orchestrators.adapters.tables.ledger import Ledger
from orchestrators.kernel.settings import Settings, SettingsError

SERVICE_BUS_BY_IDENTITY = {"ServiceBusConnection__fullyQualifiedNamespace": "contoso.servicebus.windows.net"}
LEDGER_BY_IDENTITY = {
    **SERVICE_BUS_BY_IDENTITY,
    "LEDGER_CONNECTION__tableServiceUri": "https://stcontoso.table.core.windows.net/",
    "LEDGER_CONNECTION__credential": "managedidentity",
    "LEDGER_CONNECTION__clientId": "0b5ca3b0-1b4e-4c33-9f6a-3f0f2b2c7d11",
}


def test_in_place_approval_is_off_unless_asked_for():
    assert Settings.from_env(LEDGER_BY_IDENTITY).in_place_requires_approval is False
    for value, expected in (("true", True), ("TRUE", True), (" True ", True), ("false", False), ("False", False)):
        settings = Settings.from_env({**LEDGER_BY_IDENTITY, "IN_PLACE_REQUIRES_APPROVAL": value})
        assert settings.in_place_requires_approval is expected


@pytest.mark.parametrize("value", ["yes", "1", "on", "truee"])
def test_a_malformed_approval_setting_fails_naming_it(value):
    with pytest.raises(SettingsError, match="IN_PLACE_REQUIRES_APPROVAL"):
        Settings.from_env({**LEDGER_BY_IDENTITY, "IN_PLACE_REQUIRES_APPROVAL": value})


def test_the_ledger_can_be_reached_with_an_identity_and_no_connection_string():
    settings = Settings.from_env(LEDGER_BY_IDENTITY)
    assert settings.ledger_connection == ""
    assert settings.ledger_identity is not None
    assert settings.ledger_identity.table_endpoint == "https://stcontoso.table.core.windows.net"
    assert settings.ledger_identity.client_id == "0b5ca3b0-1b4e-4c33-9f6a-3f0f2b2c7d11"


def test_an_account_name_gives_the_public_cloud_table_endpoint():
    settings = Settings.from_env({**SERVICE_BUS_BY_IDENTITY, "LEDGER_CONNECTION__accountName": "stcontoso"})
    assert settings.ledger_identity is not None
    assert settings.ledger_identity.table_endpoint == "https://stcontoso.table.core.windows.net"
    assert settings.ledger_identity.client_id is None


def test_the_host_storage_identity_is_the_fallback_as_the_connection_string_is():
    settings = Settings.from_env({**SERVICE_BUS_BY_IDENTITY, "AzureWebJobsStorage__accountName": "sthost",
                                  "AzureWebJobsStorage__clientId": "c1"})
    assert settings.ledger_identity is not None
    assert settings.ledger_identity.table_endpoint == "https://sthost.table.core.windows.net"
    assert settings.ledger_identity.client_id == "c1"
    # An explicit LEDGER_CONNECTION wins over the host's storage, whatever its form.
    settings = Settings.from_env({**SERVICE_BUS_BY_IDENTITY, "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                  "LEDGER_CONNECTION__accountName": "stledger"})
    assert settings.ledger_identity is not None and settings.ledger_connection == ""
    assert settings.ledger_identity.table_endpoint == "https://stledger.table.core.windows.net"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"LEDGER_CONNECTION__tableServiceUri": "http://stcontoso.table.core.windows.net"},
         "LEDGER_CONNECTION__tableServiceUri"),
        ({"LEDGER_CONNECTION__tableServiceUri": "not a url"}, "LEDGER_CONNECTION__tableServiceUri"),
        ({"LEDGER_CONNECTION__credential": "connectionstring"}, "LEDGER_CONNECTION__credential"),
    ],
)
def test_a_malformed_identity_ledger_setting_fails_naming_it(override, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**LEDGER_BY_IDENTITY, **override})


def test_a_bad_account_name_is_named():
    with pytest.raises(SettingsError, match="LEDGER_CONNECTION__accountName"):
        Settings.from_env({**SERVICE_BUS_BY_IDENTITY, "LEDGER_CONNECTION__accountName": "St_Contoso"})


def test_no_ledger_at_all_names_both_forms():
    with pytest.raises(SettingsError, match="LEDGER_CONNECTION__tableServiceUri"):
        Settings.from_env(SERVICE_BUS_BY_IDENTITY)


def test_the_identity_ledger_talks_to_the_configured_endpoint_with_an_azure_identity():
    async def build() -> tuple[str, str, object]:
        ledger = Ledger.from_settings(Settings.from_env({**LEDGER_BY_IDENTITY, "LEDGER_TABLE": "ledgerprod"}))
        try:
            table = ledger.table
            return table.url, table.table_name, table.credential
        finally:
            await ledger.aclose()

    url, name, credential = asyncio.run(build())
    assert url.startswith("https://stcontoso.table.core.windows.net")
    assert name == "ledgerprod"
    assert isinstance(credential, DefaultAzureCredential)


def test_the_connection_string_ledger_is_unchanged():
    settings = Settings.from_env({**SERVICE_BUS_BY_IDENTITY, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert settings.ledger_identity is None

    async def build() -> str:
        ledger = Ledger.from_settings(settings)
        try:
            return ledger.table.url
        finally:
            await ledger.aclose()

    assert asyncio.run(build()).startswith("http://127.0.0.1:10002/devstoreaccount1")
