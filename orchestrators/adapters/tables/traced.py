"""Spans for ledger operations, in one place: the ledger's table client, wrapped when telemetry is on (every
store, the activation ledger and the status rows share that one client). Off, the client is used as it is."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any, cast

from azure.data.tables.aio import TableClient

from orchestrators.kernel import tracing

#: The table client's calls that reach the service, and the operation names their spans carry.
_OPERATIONS = {
    "create_entity": "insert", "get_entity": "read", "update_entity": "update", "upsert_entity": "upsert",
    "delete_entity": "delete", "submit_transaction": "transaction", "create_table": "create_table",
}


def traced_table(table: TableClient) -> TableClient:
    """The client itself when telemetry is off; else one whose calls each run in a `ledger <op>` span."""
    return cast(TableClient, _TracedTable(table)) if tracing.enabled() else table


class _TracedTable:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._attributes = {"db.system.name": "azure.tables", "db.collection.name": table.table_name}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._table, name)
        operation = _OPERATIONS.get(name)
        if operation is None:
            if name == "query_entities":
                return functools.partial(self._query, target)
            return target

        @functools.wraps(target)
        async def call(*args: Any, **kwargs: Any) -> Any:
            with tracing.span(f"ledger {operation}", "client",
                              {**self._attributes, "db.operation.name": operation}):
                return await target(*args, **kwargs)
        return call

    async def _query(self, target: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        with tracing.span("ledger query", "client", {**self._attributes, "db.operation.name": "query"}):
            rows = [row async for row in target(*args, **kwargs)]
        for row in rows:
            yield row
