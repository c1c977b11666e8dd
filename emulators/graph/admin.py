"""A small synchronous client for the emulator's admin surface (``/_emulator/...``), stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class AdminError(RuntimeError):
    pass


class AdminClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        # Accept the root URL or a Graph base URL ending in /v1.0 or /beta.
        url = base_url.rstrip("/")
        for suffix in ("/v1.0", "/beta"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        self.root_url = url
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.root_url}/_emulator{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from exc
        return json.loads(raw) if raw else None

    # lifecycle of the emulator
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def reset(self, **settings: Any) -> dict[str, Any]:
        """Drop sessions, faults, calls and restart the clock; settings (seed, drives, ...) are optional."""
        return self._call("POST", "/reset", settings)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings that don't need a reset (durations, active_cap, page sizes, clock_scale)."""
        return self._call("PATCH", "/config", settings)

    # clock
    def clock(self) -> dict[str, Any]:
        return self._call("GET", "/clock")

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0, days: float = 0) -> dict[str, Any]:
        return self._call(
            "POST", "/clock/advance", {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        )

    def set_clock_scale(self, scale: float) -> dict[str, Any]:
        return self._call("POST", "/clock/scale", {"scale": scale})

    # faults
    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/faults")

    def set_faults(
        self,
        rules: list[dict[str, Any]] | None = None,
        *,
        artifact_failures: dict[str, float] | None = None,
        artifact_failure_targets: dict[str, str] | None = None,
        seed: int | None = None,
        replace: bool = True,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"rules": rules or []}
        if artifact_failures is not None:
            body["artifactFailures"] = artifact_failures
        if artifact_failure_targets is not None:
            body["artifactFailureTargets"] = artifact_failure_targets
        if seed is not None:
            body["seed"] = seed
        return self._call("PUT" if replace else "POST", "/faults", body)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", {"rules": [rule]})

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: str | None = None,
        operation: str | None = None,
        path: str | None = None,
        method: str = "*",
        retry_after: float | None = None,
        message: str | None = None,
        workload: str | None = None,
    ) -> dict[str, Any]:
        """Fail the next `count` matching calls; `workload` ("oneDrive", "sharePoint", "exchange") narrows the
        match to one workload's routes and sessions."""
        return self._call(
            "POST",
            "/faults/fail-next",
            {
                "count": count,
                "status": status,
                "code": code,
                "operation": operation,
                "path": path,
                "method": method,
                "retryAfter": retry_after,
                "message": message,
                "workload": workload,
            },
        )

    def lose_next_answer(
        self,
        count: int = 1,
        *,
        operation: str | None = None,
        path: str | None = None,
        method: str = "*",
        workload: str | None = None,
    ) -> dict[str, Any]:
        """The next `count` matching calls take effect, and the connection closes before their answer."""
        rule: dict[str, Any] = {"name": f"lose-answer-{operation or path}", "method": method,
                                "loseAnswer": {"count": count}}
        if operation:
            rule["operation"] = operation
        if path:
            rule["path"] = path
        if workload:
            rule["workload"] = workload
        return self._call("POST", "/faults", {"rules": [rule]})

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "/faults")

    # state and data
    def state(self, sessions: bool = True) -> dict[str, Any]:
        return self._call("GET", "/state" + ("" if sessions else "?sessions=0"))

    def samples(self, count: int = 5) -> dict[str, Any]:
        return self._call("GET", f"/samples?count={count}")

    def expire_restore_points(self, ids: list[str]) -> dict[str, Any]:
        return self._call("POST", "/restore-points/expire", {"ids": ids})

    def seed_sessions(self, count: int, artifacts: int = 1, workload: str = "oneDrive") -> dict[str, Any]:
        return self._call("POST", "/seed-sessions", {"count": count, "artifacts": artifacts, "workload": workload})

    # call log
    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", f"/calls?since={since}")["calls"]

    def clear_calls(self) -> None:
        self._call("DELETE", "/calls")
