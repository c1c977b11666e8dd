import pytest

from orchestrators.kernel.errors import GraphError, GraphRefused, RetryLater, classify_graph_failure
from orchestrators.kernel.settings import Settings, SettingsError

BASE = {
    "ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=x;SharedAccessKey=y;"
                            "UseDevelopmentEmulator=true;",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def test_defaults_follow_the_contract():
    settings = Settings.from_env(BASE)
    assert settings.restore_requests_queue == "restore-requests"
    assert settings.restore_events_topic == "restore-events"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.ledger_connection == "UseDevelopmentStorage=true"
    assert settings.ledger_table == "restoreledger"
    assert (settings.max_artifacts_per_session, settings.max_active_sessions,
            settings.max_artifacts_per_request) == (50, 25, 10_000)
    assert settings.allowed_destination_types == ("new", "inPlace")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"MAX_ARTIFACTS_PER_SESSION": "51"}, "MAX_ARTIFACTS_PER_SESSION"),
        ({"MAX_ACTIVE_SESSIONS": "many"}, "MAX_ACTIVE_SESSIONS"),
        ({"ALLOWED_DESTINATION_TYPES": "new,sideways"}, "ALLOWED_DESTINATION_TYPES"),
        ({"GRAPH_BASE_URL": "ftp://example"}, "GRAPH_BASE_URL"),
        ({"ServiceBusConnection": "nonsense"}, "ServiceBusConnection"),
        ({"GRAPH_CLIENT_SECRET": "s3cret-value"}, "GRAPH_TENANT_ID"),
        ({"LEDGER_TABLE": "x"}, "LEDGER_TABLE"),
    ],
)
def test_a_malformed_setting_fails_naming_it(override, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({**BASE, **override})


def test_missing_storage_and_service_bus_are_named():
    with pytest.raises(SettingsError, match="LEDGER_CONNECTION"):
        Settings.from_env({"ServiceBusConnection": BASE["ServiceBusConnection"]})
    with pytest.raises(SettingsError, match="ServiceBusConnection"):
        Settings.from_env({"AzureWebJobsStorage": "x"})


def test_a_fixed_token_is_refused_against_graph_itself_but_allowed_for_the_emulator():
    with pytest.raises(SettingsError, match="GRAPH_ACCESS_TOKEN"):
        Settings.from_env({**BASE, "GRAPH_ACCESS_TOKEN": "abc"})
    settings = Settings.from_env({**BASE, "GRAPH_ACCESS_TOKEN": "abc",
                                  "GRAPH_BASE_URL": "http://127.0.0.1:8765/v1.0"})
    assert settings.graph_access_token == "abc"


def test_secrets_do_not_appear_in_the_settings_repr():
    settings = Settings.from_env({**BASE, "GRAPH_TENANT_ID": "t", "GRAPH_CLIENT_ID": "c",
                                  "GRAPH_CLIENT_SECRET": "very-secret-value"})
    text = repr(settings)
    assert "very-secret-value" not in text and "SharedAccessKey=y" not in text


def test_identity_based_service_bus_is_accepted():
    settings = Settings.from_env({"AzureWebJobsStorage": "x",
                                  "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net"})
    assert settings.service_bus.fully_qualified_namespace == "ns.servicebus.windows.net"


@pytest.mark.parametrize(
    ("status", "code", "write", "kind", "unknown"),
    [
        (429, "TooManyRequests", True, RetryLater, False),
        (503, "serviceNotAvailable", False, RetryLater, False),
        (504, "GatewayTimeout", True, RetryLater, True),
        (None, "ConnectionFailed", True, RetryLater, True),
        (500, "TooManyActiveRestoreSessions", True, RetryLater, False),
        (400, "InvalidRestorePoint", True, GraphRefused, None),
        (413, "RestoreArtifactsLimitBreached", True, GraphRefused, None),
        (403, "Forbidden", True, GraphRefused, None),
        (500, "IncompleteArtifactDeletion", True, GraphRefused, None),
    ],
)
def test_graph_failures_map_to_what_the_caller_should_do(status, code, write, kind, unknown):
    outcome = classify_graph_failure(GraphError(status, code, "m", "rid"), write)
    assert isinstance(outcome, kind)
    if isinstance(outcome, RetryLater):
        assert outcome.outcome_unknown is unknown
