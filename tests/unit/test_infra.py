"""`infra/` (Bicep) and `azure.yaml`, held as text against the contract and the Settings object.

Bicep cannot be compiled on every machine (`.ci/run` builds it when a `bicep` or `az` binary is on PATH), so
this reads the templates: entity names, queue and topic properties, the app settings (fed to `Settings.from_env`
the way the Functions host would hand them to the app), and every role assignment with its scope.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from orchestrators.kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION = INFRA / "app" / "function.bicep"
RBAC = INFRA / "app" / "rbac.bicep"

#: Built-in role definitions (Microsoft's published ids; the same in every tenant).
BUILT_IN_ROLES = {
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
RECEIVER, SENDER = "Azure Service Bus Data Receiver", "Azure Service Bus Data Sender"
GRAPH_PERMISSIONS = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
                     "BackupRestore-Configuration.Read.All")
#: What the app would read if it were configured from the environment alone (the contract's defaults).
DEFAULTS = Settings.from_env({"ServiceBusConnection__fullyQualifiedNamespace": "x.servicebus.windows.net",
                              "LEDGER_CONNECTION__accountName": "stx"})


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code(text: str) -> str:
    """Bicep without its // comments (strings here hold no //, except URLs, which are kept)."""
    return re.sub(r"(?<![:'])//.*", "", text)


def _body(text: str, opening: str) -> str:
    """The text between the brace or bracket that follows `opening` and its match."""
    start = text.index(opening) + len(opening)
    pairs = {"{": "}", "[": "]"}
    while text[start] not in pairs:
        start += 1
    depth, index = 0, start
    for index in range(start, len(text)):
        if text[index] in "{[":
            depth += 1
        elif text[index] in "}]":
            depth -= 1
            if depth == 0:
                break
    return text[start + 1:index]


def _top_level(body: str) -> dict[str, str]:
    """`key: value` lines at the body's own level (nested objects and arrays are skipped)."""
    found: dict[str, str] = {}
    depth = 0
    for line in body.splitlines():
        stripped = line.strip()
        if depth == 0:
            match = re.match(r"^([A-Za-z_][\w]*|'[^']+'):\s*(.*)$", stripped)
            if match:
                found[match.group(1).strip("'")] = match.group(2).strip()
        depth += stripped.count("{") + stripped.count("[") - stripped.count("}") - stripped.count("]")
    return found


def _vars(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^var (\w+) = '([^']*)'", text, re.M)}


def _param_default(text: str, name: str) -> str:
    match = re.search(rf"^param {name} \w+ = (.+)$", text, re.M)
    assert match, f"param {name} with a default in {MAIN.name}"
    return match.group(1).strip().strip("'")


def _iso_seconds(duration: str) -> float:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", duration)
    assert match and duration not in ("P", "PT"), duration
    days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _module(text: str, symbol: str) -> str:
    return _body(text, f"module {symbol} ")


# -- names ---------------------------------------------------------------------------------------------------


def test_entity_names_are_the_contracts():
    names = _vars(_text(MAIN))
    assert names["restoreRequestsQueue"] == DEFAULTS.restore_requests_queue == "restore-requests"
    assert names["browseRequestsQueue"] == DEFAULTS.browse_requests_queue == "browse-requests"
    assert names["activationRequestsQueue"] == DEFAULTS.activation_requests_queue == "activation-requests"
    assert names["restoreEventsTopic"] == DEFAULTS.restore_events_topic == "restore-events"
    assert names["ledgerTable"] == DEFAULTS.ledger_table == "restoreledger"
    # The same names reach the app settings and the role assignments, by the same symbols.
    code = _code(_text(MAIN))
    for module in ("app", "rbac"):
        passed = _top_level(_body(_module(code, module), "params:"))
        for symbol in ("restoreRequestsQueue", "browseRequestsQueue", "activationRequestsQueue",
                       "restoreEventsTopic", "ledgerTable"):
            assert passed[symbol] == symbol, (module, symbol)


# -- Service Bus ---------------------------------------------------------------------------------------------


def test_service_bus_has_local_auth_off_and_the_three_queues_as_the_app_assumes():
    code = _code(_text(MAIN))
    bus = _module(code, "serviceBus")
    assert "'br/public:avm/res/service-bus/namespace:" in code
    params = _top_level(_body(bus, "params:"))
    assert params["disableLocalAuth"] == "true"
    assert params["authorizationRules"] == "[]"
    assert "'Standard'" in _body(bus, "skuObject:")  # topics, and the 256 KB messages EVENT_MAX_BYTES assumes
    assert DEFAULTS.event_max_bytes <= 256 * 1024

    queues = _body(bus, "queues:")
    assert re.search(r"for queueName in \[restoreRequestsQueue, browseRequestsQueue, activationRequestsQueue\]",
                     queues)
    queue = _top_level(_body(queues, "]:"))
    assert queue["name"] == "queueName"
    # MaxDeliveryCount: the parameter that also sets MESSAGE_MAX_DELIVERY_COUNT, defaulting to the app's default.
    assert queue["maxDeliveryCount"] == "maxDeliveryCount"
    assert int(_param_default(_text(MAIN), "maxDeliveryCount")) == DEFAULTS.max_delivery_count == 10
    assert _app_settings()["MESSAGE_MAX_DELIVERY_COUNT"] \
        == "string(maxDeliveryCount)"
    decorators = _text(MAIN).split("param maxDeliveryCount")[0].rsplit("\nparam ", 1)[1]
    assert "@minValue(1)" in decorators and "@maxValue(2000)" in decorators  # the range Settings accepts
    assert queue["requiresSession"] == "false"

    # The lock: as the local emulator's entities, renewed by the host up to maxAutoLockRenewalDuration.
    config = json.loads(_text(ROOT / "emulators" / "servicebus" / "Config.json"))
    local = {q["Name"]: q["Properties"] for q in config["UserConfig"]["Namespaces"][0]["Queues"]}
    lock = queue["lockDuration"].strip("'")
    host = json.loads(_text(ROOT / "host.json"))
    renewal = host["extensions"]["serviceBus"]["maxAutoLockRenewalDuration"]
    for name in ("restore-requests", "browse-requests", "activation-requests"):
        assert local[name]["LockDuration"] == lock == "PT1M"
        assert local[name]["MaxDeliveryCount"] == DEFAULTS.max_delivery_count
        assert local[name]["RequiresDuplicateDetection"] is (queue["requiresDuplicateDetection"] == "true")
    hours, minutes, seconds = (int(p) for p in renewal.split(":"))
    assert _iso_seconds(lock) < hours * 3600 + minutes * 60 + seconds
    assert renewal == host["functionTimeout"]


def test_the_events_topic_drops_republished_events_for_longer_than_the_retry_budget():
    code = _code(_text(MAIN))
    topics = _body(_module(code, "serviceBus"), "topics:")
    topic = _top_level(_body(topics, ""))
    assert topic["name"] == "restoreEventsTopic"
    assert topic["requiresDuplicateDetection"] == "true"
    assert topic["duplicateDetectionHistoryTimeWindow"] == "eventsDuplicateDetectionWindow"
    window = _iso_seconds(_param_default(_text(MAIN), "eventsDuplicateDetectionWindow"))
    # Every scheduled attempt re-publishes the events already settled, with the ids first used: the window must
    # outlast the whole retry budget at its longest (each delay up to RETRY_MAX_DELAY_SECONDS, +20% jitter).
    budget = sum(min(DEFAULTS.retry_max_delay_seconds, DEFAULTS.retry_base_delay_seconds * 2 ** (n - 1)) * 1.2
                 for n in range(1, DEFAULTS.retry_max_attempts))
    assert window >= budget and window >= DEFAULTS.retry_max_delay_seconds
    assert window >= 600  # and a redelivery after a whole functionTimeout
    assert window <= 7 * 86_400  # Service Bus's maximum

    subscription = _top_level(_body(_body(topics, "subscriptions:"), ""))
    assert subscription["name"] == "exampleSubscription" and _vars(_text(MAIN))["exampleSubscription"] == "all"
    assert _iso_seconds(subscription["autoDeleteOnIdle"].strip("'")) > 10 * 365 * 86_400  # never deleted
    assert int(subscription["maxDeliveryCount"]) >= 1


# -- storage, telemetry, the function app ---------------------------------------------------------------------


def test_storage_and_application_insights_take_no_keys():
    code = _code(_text(MAIN))
    storage = _top_level(_body(_module(code, "storage"), "params:"))
    assert storage["allowSharedKeyAccess"] == "false"
    assert storage["allowBlobPublicAccess"] == "false"
    assert "name: ledgerTable" in _body(_module(code, "storage"), "tableServices:")
    monitoring = _top_level(_body(_module(code, "monitoring"), "params:"))
    assert monitoring["disableLocalAuth"] == "true"


def test_the_function_app_is_python_on_flex_consumption_with_identity_deployment_storage():
    code = _code(_text(MAIN))
    plan = _body(_module(code, "plan"), "sku:")
    assert "'FC1'" in plan and "'FlexConsumption'" in plan
    function = _code(_text(FUNCTION))
    runtime = _top_level(_body(function, "runtime:"))
    assert runtime["name"] == "'python'"
    version = runtime["version"].strip("'")
    assert version in re.search(r"Python ([\d./]+)", _text(ROOT / "requirements.txt")).group(1).split("/")
    minimum = re.search(r'requires-python = ">=([\d.]+)"', _text(ROOT / "pyproject.toml")).group(1)
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))
    authentication = _top_level(_body(_body(function, "deployment:"), "authentication:"))
    assert authentication["type"] == "'UserAssignedIdentity'"
    assert "userAssignedResourceIds" in _body(function, "managedIdentities:")


def _app_settings() -> dict[str, str]:
    return _top_level(_body(_code(_text(FUNCTION)), "var appSettings ="))


def test_app_settings_are_identity_based_only():
    settings = _app_settings()
    for name in ("ServiceBusConnection", "AzureWebJobsStorage", "LEDGER_CONNECTION", "GRAPH_CLIENT_SECRET",
                 "GRAPH_ACCESS_TOKEN", "GRAPH_CLIENT_CERTIFICATE_PATH", "AzureWebJobsServiceBus"):
        assert name not in settings, f"{name} would carry a connection string, a key or a secret"
    for name in ("ServiceBusConnection", "AzureWebJobsStorage", "LEDGER_CONNECTION"):
        assert settings[f"{name}__credential"] == "'managedidentity'"
        assert settings[f"{name}__clientId"] == "identityClientId"
    # Application Insights' connection string names the component and holds no secret (local auth is off).
    assert [k for k in settings if "connectionstring" in k.lower().replace("_", "")] \
        == ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "'ClientId=${identityClientId};Authorization=AAD'"
    for name, value in settings.items():
        if name != "APPLICATIONINSIGHTS_CONNECTION_STRING":
            assert "connectionstring" not in value.lower(), name
        for word in ("listkeys(", "accountkey", "sharedaccesskey", "secret", "password"):
            assert word not in value.lower(), (name, value)


def test_no_key_or_secret_anywhere_in_the_templates():
    for path in [*INFRA.rglob("*.bicep"), INFRA / "main.parameters.json", ROOT / "azure.yaml"]:
        code = _code(_text(path)).lower()
        for word in ("listkeys(", "accountkey", "sharedaccesskey", "@secure()", ".outputs.connectionstring",
                     "primaryconnectionstring", "clientsecret"):
            assert word not in code, f"{path.relative_to(ROOT)}: {word}"
        assert not re.search(r"^output \S*(connection|key|secret)", code, re.M), path


def _substitute(expression: str, main: str) -> str:
    """A value the app would see for a Bicep expression of function.bicep (only the ones used there)."""
    known = {
        "storageAccountName": "strestoreexample",
        "identityClientId": "7d1f6a52-5c3b-4e86-a1f0-3c2d9b8e4f10",
        "restoreRequestsQueue": "restore-requests",
        "browseRequestsQueue": "browse-requests",
        "activationRequestsQueue": "activation-requests",
        "restoreEventsTopic": "restore-events",
        "ledgerTable": "restoreledger",
        "graphTenantId": "0c8d2e1f-9a7b-4c6d-8e5f-1a2b3c4d5e6f",
        "storageAccount.properties.primaryEndpoints.table": "https://strestoreexample.table.core.windows.net/",
        "applicationInsights.properties.ConnectionString": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "string(maxDeliveryCount)": _param_default(main, "maxDeliveryCount"),
        "string(maxActiveSessions)": _param_default(main, "maxActiveSessions"),
        "inPlaceRequiresApproval ? 'true' : 'false'": _param_default(main, "inPlaceRequiresApproval"),
        "'${serviceBusNamespaceName}.servicebus.windows.net'": "sb-example.servicebus.windows.net",
        "'ClientId=${identityClientId};Authorization=AAD'": "ClientId=7d1f6a52;Authorization=AAD",
    }
    if expression in known:
        return known[expression]
    assert re.fullmatch(r"'[^'$]*'", expression), f"unknown expression {expression!r}: teach the test"
    return expression.strip("'")


def test_the_app_starts_on_the_deployments_settings_with_identities_only():
    main = _text(MAIN)
    env = {name: _substitute(value, main) for name, value in _app_settings().items()}
    settings = Settings.from_env(env)  # raises SettingsError, naming the setting, if anything is missing
    assert settings.service_bus.connection_string is None
    assert settings.service_bus.fully_qualified_namespace == "sb-example.servicebus.windows.net"
    assert settings.service_bus.client_id == env["ServiceBusConnection__clientId"]
    assert settings.ledger_connection == "" and settings.ledger_identity is not None
    assert settings.ledger_identity.table_endpoint == "https://strestoreexample.table.core.windows.net"
    assert settings.ledger_identity.client_id == env["LEDGER_CONNECTION__clientId"]
    assert settings.graph_is_microsoft
    assert settings.graph_client_id == env["ServiceBusConnection__clientId"]  # the one managed identity
    assert settings.graph_client_secret is None and settings.graph_client_certificate_path is None
    assert settings.graph_access_token is None
    assert settings.in_place_requires_approval is True  # the deployment's default, unlike the app's
    assert DEFAULTS.in_place_requires_approval is False
    assert settings.max_delivery_count == DEFAULTS.max_delivery_count


def test_in_place_approval_is_on_by_default_in_the_deployment():
    main = _text(MAIN)
    assert _param_default(main, "inPlaceRequiresApproval") == "true"
    parameters = json.loads(_text(INFRA / "main.parameters.json"))["parameters"]
    assert parameters["inPlaceRequiresApproval"]["value"] == "${IN_PLACE_REQUIRES_APPROVAL=true}"
    declared = set(re.findall(r"^param (\w+)", main, re.M))
    assert set(parameters) <= declared


# -- role assignments ----------------------------------------------------------------------------------------


def _role_ids() -> dict[str, str]:
    """The role variables of rbac.bicep: symbol -> built-in role name (checked against its id and comment)."""
    roles: dict[str, str] = {}
    for match in re.finditer(r"^var (\w+) = '([0-9a-f-]{36})' // (.+)$", _text(RBAC), re.M):
        symbol, guid, comment = match.groups()
        assert guid in BUILT_IN_ROLES, f"{symbol}: {guid} is not one of the built-in roles this service uses"
        assert comment.strip() == BUILT_IN_ROLES[guid], f"{symbol}: the comment must name {BUILT_IN_ROLES[guid]}"
        roles[symbol] = BUILT_IN_ROLES[guid]
    return roles


def _assignments() -> list[tuple[str, str, str, str]]:
    """(resource symbol, scope, role name, principal) for every role assignment in infra/."""
    roles = _role_ids()
    found = []
    text = _text(RBAC)
    for match in re.finditer(r"^resource (\w+) 'Microsoft\.Authorization/roleAssignments@[\w-]+' = ", text, re.M):
        body = _body(text, match.group(0))
        scope = re.search(r"^\s*scope: (\S+)", body, re.M).group(1)
        line = re.search(r"roleDefinitionId: subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions', "
                         r"(\w+)\) // (.+)$", body, re.M)
        assert line, f"{match.group(1)}: a built-in role by its id, with a comment naming it"
        role = roles[line.group(1)]
        assert line.group(2).strip() == role, match.group(1)
        principal = re.search(r"principalId: (\w+)", body).group(1)
        found.append((match.group(1), scope, role, principal))
    for path in INFRA.rglob("*.bicep"):
        if path != RBAC:
            code = _code(_text(path))
            for marker in ("Microsoft.Authorization/roleAssignments", "roleAssignments:"):
                assert marker not in code, f"{path.name}: role assignments belong in rbac.bicep"
    return found


def test_every_role_is_a_built_in_role_by_its_id_with_a_comment_naming_it():
    assert {role for _, _, role, _ in _assignments()} == set(BUILT_IN_ROLES.values())


def test_the_apps_identity_gets_exactly_what_it_uses():
    app = {(scope, role) for _, scope, role, principal in _assignments() if principal == "appPrincipalId"}
    assert app == {
        ("namespace::restoreRequests", RECEIVER),
        ("namespace::browseRequests", RECEIVER),
        ("namespace::activationRequests", RECEIVER),
        # Scheduled retry copies go back to their own queue (restore and browse; activation has none).
        ("namespace::restoreRequests", SENDER),
        ("namespace::browseRequests", SENDER),
        ("namespace::restoreEvents", SENDER),
        ("storageAccount::tableService::ledger", "Storage Table Data Contributor"),
        ("storageAccount", "Storage Blob Data Owner"),  # the Functions host's own storage
        ("applicationInsights", "Monitoring Metrics Publisher"),
    }
    # The app cannot approve: no send right on the activation queue.
    assert ("namespace::activationRequests", SENDER) not in app


def test_approvers_may_send_activation_requests_and_nothing_else():
    approvers = [(scope, role) for _, scope, role, principal in _assignments() if principal == "approver"]
    assert approvers == [("namespace::activationRequests", SENDER)]
    for _, scope, role, principal in _assignments():
        if scope == "namespace::activationRequests" and role == SENDER:
            assert principal == "approver"


def test_no_assignment_is_broader_than_one_entity_except_the_hosts_storage():
    for symbol, scope, _, _ in _assignments():
        assert scope != "namespace" and "resourceGroup" not in scope and "subscription" not in scope, symbol
        assert "::" in scope or scope in ("storageAccount", "applicationInsights"), symbol


def test_the_existing_entities_the_roles_are_scoped_to_are_the_deployed_ones():
    text = _code(_text(RBAC))
    for symbol, param in (("restoreRequests", "restoreRequestsQueue"), ("browseRequests", "browseRequestsQueue"),
                          ("activationRequests", "activationRequestsQueue"), ("restoreEvents", "restoreEventsTopic"),
                          ("all", "exampleSubscription"), ("ledger", "ledgerTable")):
        assert re.search(rf"resource {symbol} '\w+' existing = \{{\s*name: {param}\b", text), symbol


# -- azd -----------------------------------------------------------------------------------------------------


def test_azure_yaml_deploys_this_directory_as_a_python_function_app():
    text = _text(ROOT / "azure.yaml")
    assert re.search(r"^\s+project: \.$", text, re.M)
    assert re.search(r"^\s+language: python$", text, re.M)
    assert re.search(r"^\s+host: function$", text, re.M)
    hook = re.search(r"run: \./(\S+)", text).group(1)
    assert (ROOT / hook).is_file()
    ignored = _text(ROOT / ".funcignore").split()
    assert {"infra/", "tests/", "emulators/"} <= set(ignored)


def test_avm_modules_are_pinned():
    for path in INFRA.rglob("*.bicep"):
        for reference in re.findall(r"'(br/public:[^']+)'", _text(path)):
            assert re.fullmatch(r"br/public:avm/res/[\w/-]+:\d+\.\d+\.\d+", reference), reference


def test_the_graph_permission_step_names_every_permission_and_grants_nothing_unasked(tmp_path):
    script = INFRA / "hooks" / "grant-graph-permissions.sh"
    text = _text(script)
    for permission in GRAPH_PERMISSIONS:
        assert permission in text
        assert permission in _text(ROOT / "README.md")
    try:
        answer = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30, check=False,
                                env={"PATH": "/usr/bin:/bin", "AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID": "p-123",
                                     "HOME": str(tmp_path)})
    except FileNotFoundError:
        pytest.skip("no sh")
    assert answer.returncode == 0, answer.stderr
    assert "NOT granted" in answer.stdout and "AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID=p-123" in answer.stdout
