"""Seeded fault injection, configured per endpoint (method + path glob/regex, operation name or workload).

Rules know nothing about the routes: every Graph route is wrapped the same way (see app.py), so a rule applies
to any endpoint it matches, the OneDrive, SharePoint and Exchange ones alike.
"""

from __future__ import annotations

import fnmatch
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

ARTIFACT_FAILURE_CODES = ("ArtifactNotFound", "InvalidRestoreTime", "ArtifactCannotBeRestored", "UnknownError")


@dataclass
class FaultDecision:
    delay: float = 0.0
    drop: bool = False
    lose_answer: bool = False  # carry the call out, then close the connection instead of answering
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    rule: str = ""


@dataclass
class FaultRule:
    name: str = ""
    method: str = "*"
    path: str | None = None  # glob on the path after /v1.0 or /beta, e.g. "*/restoreSessions/*/activate"
    path_regex: str | None = None
    operation: str | None = None  # e.g. "activateRestoreSession"; see README for the names
    # "oneDrive", "sharePoint" or "exchange": the workload of the route, or of the session a generic route names
    workload: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    error_code: str = "serviceNotAvailable"
    error_message: str = "The service is temporarily unavailable. Please try again later."
    error_retry_after: float | None = None
    drop_rate: float = 0.0
    rate_limit: dict[str, Any] | None = None  # {"requests": N, "perSeconds": S, "retryAfter": s, "code": ...}
    fail_next: dict[str, Any] | None = None  # {"count": N, "status": 429, "code": ..., "retryAfter": s}
    lose_answer: dict[str, Any] | None = None  # {"count": N}: the next N calls take effect, their answers are lost
    _regex: re.Pattern[str] | None = field(default=None, repr=False)
    _hits: deque[float] = field(default_factory=deque, repr=False)
    matched: int = 0

    def __post_init__(self) -> None:
        pattern = self.path_regex or (fnmatch.translate(self.path) if self.path else None)
        self._regex = re.compile(pattern) if pattern else None
        self.method = (self.method or "*").upper()

    def matches(self, method: str, path: str, operation: str, workload: str | None = None) -> bool:
        if self.method != "*" and self.method != method:
            return False
        if self.operation and self.operation != operation:
            return False
        if self.workload and self.workload != workload:
            return False
        return not (self._regex is not None and not self._regex.match(path))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        keys = {
            "name": "name",
            "method": "method",
            "path": "path",
            "pathRegex": "path_regex",
            "operation": "operation",
            "workload": "workload",
            "latencyMs": "latency_ms",
            "jitterMs": "jitter_ms",
            "errorRate": "error_rate",
            "errorStatus": "error_status",
            "errorCode": "error_code",
            "errorMessage": "error_message",
            "errorRetryAfter": "error_retry_after",
            "dropRate": "drop_rate",
            "rateLimit": "rate_limit",
            "failNext": "fail_next",
            "loseAnswer": "lose_answer",
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            attr = keys.get(key) or (key if key in keys.values() else None)
            if attr is None:
                raise ValueError(f"unknown fault rule field {key!r}")
            kwargs[attr] = value
        return cls(**kwargs)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "pathRegex": self.path_regex,
            "operation": self.operation,
            "workload": self.workload,
            "latencyMs": self.latency_ms,
            "jitterMs": self.jitter_ms,
            "errorRate": self.error_rate,
            "errorStatus": self.error_status,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "errorRetryAfter": self.error_retry_after,
            "dropRate": self.drop_rate,
            "rateLimit": self.rate_limit,
            "failNext": self.fail_next,
            "loseAnswer": self.lose_answer,
            "matched": self.matched,
        }


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(f"faults:{seed}")
        self.rules: list[FaultRule] = []
        # artifact failures: code -> probability, and protection unit id -> forced code
        self.artifact_failure_rates: dict[str, float] = {}
        self.artifact_failure_targets: dict[str, str] = {}

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.rng = random.Random(f"faults:{self.seed}")
        self.rules = []
        self.artifact_failure_rates = {}
        self.artifact_failure_targets = {}

    def configure(self, data: dict[str, Any], *, replace: bool = True) -> None:
        rules = [FaultRule.from_json(r) for r in data.get("rules", [])]
        rates = dict(data.get("artifactFailures") or {})
        targets = dict(data.get("artifactFailureTargets") or {})
        for code in [*rates, *targets.values()]:
            if code not in ARTIFACT_FAILURE_CODES:
                raise ValueError(f"unknown artifact failure code {code!r}")
        if replace:
            self.rules = rules
            self.artifact_failure_rates = rates
            self.artifact_failure_targets = targets
        else:
            self.rules.extend(rules)
            self.artifact_failure_rates.update(rates)
            self.artifact_failure_targets.update(targets)
        if "seed" in data:
            self.rng = random.Random(f"faults:{data['seed']}")

    def as_json(self) -> dict[str, Any]:
        return {
            "rules": [r.as_json() for r in self.rules],
            "artifactFailures": self.artifact_failure_rates,
            "artifactFailureTargets": self.artifact_failure_targets,
        }

    def decide(self, method: str, path: str, operation: str, workload: str | None = None) -> FaultDecision | None:
        if not self.rules:
            return None
        decision: FaultDecision | None = None
        for rule in self.rules:
            if not rule.matches(method, path, operation, workload):
                continue
            rule.matched += 1
            decision = decision or FaultDecision()
            if rule.latency_ms or rule.jitter_ms:
                decision.delay += (rule.latency_ms + self.rng.uniform(0, rule.jitter_ms)) / 1000.0
            if decision.status or decision.drop or decision.lose_answer:
                continue
            nxt = rule.fail_next
            if nxt and int(nxt.get("count", 0)) > 0:
                nxt["count"] = int(nxt["count"]) - 1
                decision.status = int(nxt.get("status", 503))
                decision.code = str(nxt.get("code") or _default_code(decision.status))
                decision.message = str(nxt.get("message") or f"Injected failure ({rule.name or 'failNext'}).")
                ra = nxt.get("retryAfter")
                decision.retry_after = float(ra) if ra is not None else (1.0 if decision.status == 429 else None)
                decision.rule = rule.name
                continue
            limit = rule.rate_limit
            if limit:
                window = float(limit.get("perSeconds", 1.0))
                allowed = int(limit.get("requests", 10))
                now = time.monotonic()
                hits = rule._hits
                while hits and hits[0] <= now - window:
                    hits.popleft()
                if len(hits) >= allowed:
                    decision.status = 429
                    decision.code = str(limit.get("code", "TooManyRequests"))
                    decision.message = "Too many requests. Please retry after the time given in Retry-After."
                    ra = limit.get("retryAfter")
                    decision.retry_after = float(ra) if ra is not None else max(1.0, hits[0] + window - now)
                    decision.rule = rule.name
                    continue
                hits.append(now)
            lose = rule.lose_answer
            if lose and int(lose.get("count", 0)) > 0:
                lose["count"] = int(lose["count"]) - 1
                decision.lose_answer = True
                decision.rule = rule.name
                continue
            if rule.drop_rate and self.rng.random() < rule.drop_rate:
                decision.drop = True
                decision.rule = rule.name
                continue
            if rule.error_rate and self.rng.random() < rule.error_rate:
                decision.status = int(rule.error_status)
                decision.code = rule.error_code
                decision.message = rule.error_message
                decision.retry_after = rule.error_retry_after
                decision.rule = rule.name
        return decision

    def artifact_failure(self, protection_unit_id: str) -> str | None:
        forced = self.artifact_failure_targets.get(protection_unit_id)
        if forced:
            return forced
        for code, rate in self.artifact_failure_rates.items():
            if rate and self.rng.random() < rate:
                return code
        return None


def _default_code(status: int) -> str:
    return {
        429: "TooManyRequests",
        503: "serviceNotAvailable",
        504: "gatewayTimeout",
        500: "generalException",
        401: "InvalidAuthenticationToken",
        403: "Forbidden",
        404: "itemNotFound",
    }.get(status, "generalException")
