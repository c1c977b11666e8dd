"""One typed settings object, built from the environment and validated at start-up.

Every setting named in the public contract lives here; a missing or malformed value raises
`SettingsError` naming the setting, so a misconfigured app fails when the worker loads it,
not in the middle of an incident.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlparse

if TYPE_CHECKING:
    from orchestrators.kernel.step import StepPolicy

DESTINATION_TYPES = ("new", "inPlace")

#: Hosts of Graph itself (global and national clouds): a fixed test token is refused there.
GRAPH_PUBLIC_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)

_ENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class ServiceBusConnectionSettings:
    """Either a connection string (emulator, SAS) or a namespace reached with an Azure identity."""

    connection_string: str | None = None
    fully_qualified_namespace: str | None = None
    client_id: str | None = None

    def __repr__(self) -> str:  # never print the SAS key
        target = self.fully_qualified_namespace or "<connection string>"
        return f"ServiceBusConnectionSettings({target})"


@dataclass(frozen=True)
class LedgerIdentitySettings:
    """The ledger's Table storage reached with an Azure identity instead of a connection string.

    Read the way the Functions host reads identity-based storage connections: `<PREFIX>__tableServiceUri`
    (or `<PREFIX>__accountName`, public cloud), optional `<PREFIX>__credential` (`managedidentity`) and
    `<PREFIX>__clientId` (a user-assigned identity)."""

    table_endpoint: str
    client_id: str | None = None


@dataclass(frozen=True)
class Settings:
    service_bus: ServiceBusConnectionSettings
    restore_requests_queue: str = "restore-requests"
    browse_requests_queue: str = "browse-requests"
    activation_requests_queue: str = "activation-requests"
    restore_events_topic: str = "restore-events"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    graph_tenant_id: str | None = None
    graph_client_id: str | None = None
    graph_client_secret: str | None = field(default=None, repr=False)
    graph_client_certificate_path: str | None = None
    graph_access_token: str | None = field(default=None, repr=False)
    ledger_connection: str = field(default="", repr=False)
    #: Set instead of `ledger_connection` when the ledger is reached with an identity (no key anywhere).
    ledger_identity: LedgerIdentitySettings | None = None
    ledger_table: str = "restoreledger"
    max_artifacts_per_session: int = 50
    max_active_sessions: int = 25
    max_artifacts_per_request: int = 10_000
    allowed_destination_types: tuple[str, ...] = DESTINATION_TYPES
    #: With `activate: true`, in-place sessions still wait for an activation request (separation of duties).
    in_place_requires_approval: bool = False
    # Operational knobs beyond the contract (documented in the README).
    graph_create_concurrency: int = 8
    retry_max_attempts: int = 8
    retry_base_delay_seconds: float = 15.0
    retry_max_delay_seconds: float = 900.0
    graph_throttle_wait_limit_seconds: float = 30.0
    #: How long a worker's mark on a step keeps others from reconciling it: longer than one Graph call can take.
    step_lease_seconds: float = 180.0
    #: How long an attempt waits for steps another worker holds before scheduling a copy for later.
    step_wait_seconds: float = 60.0
    #: At most this many draft sessions' artifacts are listed by one attempt to find lost creates.
    reconcile_max_listings: int = 200
    graph_timeout_seconds: float = 60.0
    reconcile_window_seconds: float = 900.0
    event_max_bytes: int = 240_000
    max_delivery_count: int = 10
    activation_backoff_seconds: float = 60.0
    tracker_concurrency: int = 16
    tracker_time_budget_seconds: float = 240.0
    draft_session_max_age_hours: float = 168.0
    reserved_slot_grace_seconds: float = 120.0
    session_tracker_schedule: str = "0 */1 * * * *"
    # Restore by point in time (`selection`).
    bulk_threshold_drives: int = 1250
    protection_unit_lookup_max: int = 20
    search_concurrency: int = 8
    # How long a OneDrive restore session takes from activation to its last artifact, for `auto`'s estimate:
    # fixed + ceil(artifacts / parallelism) * per_artifact. Defaults: Microsoft's published restore times
    # (3 hours for 50 accounts, 250 accounts an hour beyond 1,000), the same model as the Graph emulator's.
    onedrive_session_fixed_seconds: float = 10_080.0
    onedrive_session_per_artifact_seconds: float = 720.0
    onedrive_session_parallelism: int = 50
    #: The incident list of the status routes covers requests received in this many days.
    status_window_days: int = 30

    @property
    def graph_host(self) -> str:
        return urlparse(self.graph_base_url).hostname or ""

    @property
    def graph_is_microsoft(self) -> bool:
        return self.graph_host in GRAPH_PUBLIC_HOSTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        ledger_connection, ledger_identity = _ledger_settings(env)
        settings = cls(
            service_bus=_service_bus_settings(env),
            restore_requests_queue=reader.entity("RESTORE_REQUESTS_QUEUE", "restore-requests"),
            browse_requests_queue=reader.entity("BROWSE_REQUESTS_QUEUE", "browse-requests"),
            activation_requests_queue=reader.entity("ACTIVATION_REQUESTS_QUEUE", "activation-requests"),
            restore_events_topic=reader.entity("RESTORE_EVENTS_TOPIC", "restore-events"),
            graph_base_url=reader.url("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0"),
            graph_tenant_id=reader.optional("GRAPH_TENANT_ID"),
            graph_client_id=reader.optional("GRAPH_CLIENT_ID"),
            graph_client_secret=reader.optional("GRAPH_CLIENT_SECRET"),
            graph_client_certificate_path=reader.optional("GRAPH_CLIENT_CERTIFICATE_PATH"),
            graph_access_token=reader.optional("GRAPH_ACCESS_TOKEN"),
            ledger_connection=ledger_connection,
            ledger_identity=ledger_identity,
            ledger_table=reader.table_name("LEDGER_TABLE", "restoreledger"),
            max_artifacts_per_session=reader.integer("MAX_ARTIFACTS_PER_SESSION", 50, 1, 50),
            max_active_sessions=reader.integer("MAX_ACTIVE_SESSIONS", 25, 1, 1000),
            max_artifacts_per_request=reader.integer("MAX_ARTIFACTS_PER_REQUEST", 10_000, 1, 100_000),
            allowed_destination_types=reader.destination_types("ALLOWED_DESTINATION_TYPES"),
            in_place_requires_approval=reader.boolean("IN_PLACE_REQUIRES_APPROVAL", False),
            graph_create_concurrency=reader.integer("GRAPH_CREATE_CONCURRENCY", 8, 1, 64),
            retry_max_attempts=reader.integer("RETRY_MAX_ATTEMPTS", 8, 1, 100),
            retry_base_delay_seconds=reader.number("RETRY_BASE_DELAY_SECONDS", 15.0, 0.0, 3600.0),
            retry_max_delay_seconds=reader.number("RETRY_MAX_DELAY_SECONDS", 900.0, 0.0, 86_400.0),
            step_lease_seconds=reader.number("STEP_LEASE_SECONDS", 180.0, 10.0, 3600.0),
            step_wait_seconds=reader.number("STEP_WAIT_SECONDS", 60.0, 0.0, 600.0),
            reconcile_max_listings=reader.integer("RECONCILE_MAX_LISTINGS", 200, 1, 10_000),
            graph_throttle_wait_limit_seconds=reader.number(
                "GRAPH_THROTTLE_WAIT_LIMIT_SECONDS", 30.0, 0.0, 600.0
            ),
            graph_timeout_seconds=reader.number("GRAPH_TIMEOUT_SECONDS", 60.0, 1.0, 600.0),
            reconcile_window_seconds=reader.number("RECONCILE_WINDOW_SECONDS", 900.0, 60.0, 86_400.0),
            event_max_bytes=reader.integer("EVENT_MAX_BYTES", 240_000, 16_000, 100_000_000),
            max_delivery_count=reader.integer("MESSAGE_MAX_DELIVERY_COUNT", 10, 1, 2000),
            activation_backoff_seconds=reader.number("ACTIVATION_BACKOFF_SECONDS", 60.0, 0.0, 3600.0),
            tracker_concurrency=reader.integer("TRACKER_CONCURRENCY", 16, 1, 128),
            tracker_time_budget_seconds=reader.number("TRACKER_TIME_BUDGET_SECONDS", 240.0, 5.0, 3600.0),
            draft_session_max_age_hours=reader.number("DRAFT_SESSION_MAX_AGE_HOURS", 168.0, 0.0, 24.0 * 365),
            reserved_slot_grace_seconds=reader.number("RESERVED_SLOT_GRACE_SECONDS", 120.0, 0.0, 3600.0),
            session_tracker_schedule=reader.schedule("SESSION_TRACKER_SCHEDULE", "0 */1 * * * *"),
            bulk_threshold_drives=reader.integer("BULK_THRESHOLD_DRIVES", 1250, 1, 10_000),
            protection_unit_lookup_max=reader.integer("PROTECTION_UNIT_LOOKUP_MAX", 20, 0, 1000),
            search_concurrency=reader.integer("SEARCH_CONCURRENCY", 8, 1, 64),
            onedrive_session_fixed_seconds=reader.number("ONEDRIVE_SESSION_FIXED_SECONDS", 10_080.0, 0.0,
                                                         30 * 86_400.0),
            onedrive_session_per_artifact_seconds=reader.number("ONEDRIVE_SESSION_PER_ARTIFACT_SECONDS", 720.0,
                                                                0.0, 86_400.0),
            onedrive_session_parallelism=reader.integer("ONEDRIVE_SESSION_PARALLELISM", 50, 1, 10_000),
            status_window_days=reader.integer("STATUS_WINDOW_DAYS", 30, 1, 366),
        )
        settings.validate_graph_credentials()
        settings.validate_step_lease()
        return settings

    def validate_step_lease(self) -> None:
        shortest = self.graph_timeout_seconds + self.graph_throttle_wait_limit_seconds
        if self.step_lease_seconds <= shortest:
            raise SettingsError(
                f"STEP_LEASE_SECONDS ({self.step_lease_seconds:g}) must be longer than one Graph call can take: "
                f"GRAPH_TIMEOUT_SECONDS + GRAPH_THROTTLE_WAIT_LIMIT_SECONDS = {shortest:g}"
            )

    @property
    def step_policy(self) -> StepPolicy:
        from datetime import timedelta

        from orchestrators.kernel.step import StepPolicy

        return StepPolicy(lease=timedelta(seconds=self.step_lease_seconds))

    def validate_graph_credentials(self) -> None:
        if self.graph_access_token:
            if self.graph_is_microsoft:
                raise SettingsError(
                    "GRAPH_ACCESS_TOKEN is for the Graph emulator and debugging only; it is refused "
                    f"while GRAPH_BASE_URL points at Graph itself ({self.graph_host}). Use "
                    "GRAPH_TENANT_ID/GRAPH_CLIENT_ID with a secret, a certificate or a managed identity."
                )
            return
        if self.graph_client_secret or self.graph_client_certificate_path:
            missing = [n for n, v in (("GRAPH_TENANT_ID", self.graph_tenant_id),
                                      ("GRAPH_CLIENT_ID", self.graph_client_id)) if not v]
            if missing:
                raise SettingsError(
                    f"{' and '.join(missing)} must be set when GRAPH_CLIENT_SECRET or "
                    "GRAPH_CLIENT_CERTIFICATE_PATH is set"
                )
        if self.graph_client_secret and self.graph_client_certificate_path:
            raise SettingsError("set GRAPH_CLIENT_SECRET or GRAPH_CLIENT_CERTIFICATE_PATH, not both")
        if self.graph_client_certificate_path and not os.path.isfile(self.graph_client_certificate_path):
            raise SettingsError(
                f"GRAPH_CLIENT_CERTIFICATE_PATH names no readable file: {self.graph_client_certificate_path}"
            )


def _service_bus_settings(env: Mapping[str, str]) -> ServiceBusConnectionSettings:
    conn = (env.get("ServiceBusConnection") or "").strip()
    namespace = (env.get("ServiceBusConnection__fullyQualifiedNamespace") or "").strip()
    client_id = (env.get("ServiceBusConnection__clientId") or "").strip() or None
    if conn:
        parts = dict(
            p.split("=", 1) for p in conn.split(";") if "=" in p
        )
        if not parts.get("Endpoint", "").startswith("sb://"):
            raise SettingsError(
                "ServiceBusConnection is not a Service Bus connection string (it needs Endpoint=sb://...)"
            )
        return ServiceBusConnectionSettings(connection_string=conn)
    if namespace:
        if "://" in namespace or "/" in namespace:
            raise SettingsError(
                "ServiceBusConnection__fullyQualifiedNamespace must be a host name such as "
                "contoso.servicebus.windows.net"
            )
        return ServiceBusConnectionSettings(fully_qualified_namespace=namespace, client_id=client_id)
    raise SettingsError(
        "ServiceBusConnection (a connection string) or ServiceBusConnection__fullyQualifiedNamespace "
        "(identity-based) must be set"
    )


def _ledger_settings(env: Mapping[str, str]) -> tuple[str, LedgerIdentitySettings | None]:
    """LEDGER_CONNECTION, else AzureWebJobsStorage: each a connection string or, with `__` settings, an identity."""
    for prefix in ("LEDGER_CONNECTION", "AzureWebJobsStorage"):
        connection = (env.get(prefix) or "").strip()
        if connection:
            return connection, None
        identity = _ledger_identity(env, prefix)
        if identity is not None:
            return "", identity
    raise SettingsError(
        "LEDGER_CONNECTION (or AzureWebJobsStorage) must be set to a Table storage connection string, or "
        "LEDGER_CONNECTION__tableServiceUri / LEDGER_CONNECTION__accountName set for identity-based access"
    )


def _ledger_identity(env: Mapping[str, str], prefix: str) -> LedgerIdentitySettings | None:
    def value(suffix: str) -> str | None:
        return (env.get(f"{prefix}__{suffix}") or "").strip() or None

    endpoint, account = value("tableServiceUri"), value("accountName")
    if endpoint is None and account is None:
        return None
    credential = value("credential")
    if credential is not None and credential.lower() != "managedidentity":
        raise SettingsError(f"{prefix}__credential must be managedidentity (or unset), got {credential!r}")
    if endpoint is None:
        if not re.fullmatch(r"[a-z0-9]{3,24}", account or ""):
            raise SettingsError(f"{prefix}__accountName must be a storage account name (3-24 lowercase letters "
                                f"and digits), got {account!r}")
        endpoint = f"https://{account}.table.core.windows.net"
    parsed = urlparse(endpoint)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if not parsed.hostname or (parsed.scheme != "https" and not (parsed.scheme == "http" and local)):
        raise SettingsError(f"{prefix}__tableServiceUri must be an https URL such as "
                            f"https://contoso.table.core.windows.net, got {endpoint!r}")
    return LedgerIdentitySettings(endpoint.rstrip("/"), value("clientId"))


N = TypeVar("N", int, float)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def entity(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not _ENTITY_NAME.match(value):
            raise SettingsError(f"{name} is not a valid Service Bus entity name: {value!r}")
        return value

    def table_name(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", value):
            raise SettingsError(f"{name} must be 3-63 letters and digits, starting with a letter: {value!r}")
        return value

    def url(self, name: str, default: str) -> str:
        value = (self._raw(name) or default).rstrip("/")
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
        if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SettingsError(f"{name} must use https except for a local emulator, got {value!r}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._ranged(name, default, low, high, int, "an integer")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._ranged(name, default, low, high, float, "a number")

    def _ranged(self, name: str, default: N, low: N, high: N, parse: Callable[[str], N], kind: str) -> N:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def schedule(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if len(value.split()) != 6:
            raise SettingsError(f"{name} must be an NCRONTAB expression with six fields "
                                f"(second minute hour day month weekday), got {value!r}")
        return value

    def destination_types(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return DESTINATION_TYPES
        values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
        unknown = [v for v in values if v not in DESTINATION_TYPES]
        if unknown or not values:
            raise SettingsError(
                f"{name} must list some of {', '.join(DESTINATION_TYPES)} (comma-separated), got {raw!r}"
            )
        return values
