"""Hostile bodies through the three queue functions, as many as asked, and what became of them.

    python -m bench.fuzz [--bodies 10000] [--seed 1]

The generators and checks are the fuzz tests' (tests/support/hostile.py); here they run at volume, each failing
body counted rather than stopping the run. Printed per handler: bodies, unhandled exceptions, bodies without a
terminal event, contract-breaking bodies accepted, secrets seen, and other findings, with the first few examples.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

from emulators.azurite import start_azurite
from emulators.graph import GraphEmulator, make_token
from emulators.servicebus import ServiceBusStandIn
from tests.support.hostile import KINDS, Case, LoopThread, Rig, Verdict, cases, fuzz_settings

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("BackupRestore-Restore.ReadWrite.All", "BackupRestore-Search.Read.All",
         "BackupRestore-Configuration.Read.All")


def _classify(problem: str) -> str:
    if problem.startswith("handler raised"):
        return "unhandled exceptions"
    if "terminal event" in problem:
        return "without a terminal event"
    if "not rejected" in problem:
        return "contract-breaking accepted"
    if "secret" in problem:
        return "secrets"
    return "other findings"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bodies", type=int, default=10_000, help="in all, shared by the three handlers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    azurite = start_azurite()
    graph = GraphEmulator(seed=5, drives=20).start()
    bus = ServiceBusStandIn(config=str(ROOT / "emulators" / "servicebus" / "Config.json")).start()
    loop = LoopThread()
    token = make_token(ROLES, lifetime=6 * 3600)
    account_key = dict(p.split("=", 1) for p in azurite.connection_string.split(";") if "=" in p)["AccountKey"]

    def scheduled() -> int:
        snap = bus.snapshot()
        return sum(snap[q]["scheduled"] for q in ("restore-requests", "browse-requests", "activation-requests"))

    rig = Rig(fuzz_settings(graph.base_url, bus.connection_string, azurite.connection_string, token),
              secrets=[token, account_key, "SAS_KEY_VALUE"], scheduled_copies=scheduled)
    totals: dict[str, Counter[str]] = {}
    examples: list[tuple[str, Verdict]] = []
    started = time.perf_counter()
    try:
        loop.run(rig.__aenter__())
        for kind in KINDS:
            totals[kind] = Counter()

            @seed(args.seed)
            @settings(max_examples=max(1, -(-args.bodies // len(KINDS))), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=cases(kind))
            def one(case: Case) -> None:
                tally = totals[case.kind]
                verdict = loop.run(rig.deliver(case))
                tally["bodies"] += 1
                tally["rejected"] += any(e["type"].endswith(".request.rejected") for e in verdict.events)
                for cls in {_classify(p) for p in verdict.problems}:
                    tally[cls] += 1
                    if len(examples) < 10:
                        examples.append((cls, verdict))

            one()
        loop.run(rig.__aexit__(None, None, None))
    finally:
        loop.close()
        bus.stop()
        graph.stop()
        azurite.stop()
    elapsed = time.perf_counter() - started
    columns = ["bodies", "rejected", "unhandled exceptions", "without a terminal event",
               "contract-breaking accepted", "secrets", "other findings"]
    heads = ["bodies", "rejected", "raised", "no terminal", "bad accepted", "secrets", "other"]
    print(f"{'handler':<12}" + "".join(f"{h:>14}" for h in heads))
    for kind, tally in totals.items():
        print(f"{kind:<12}" + "".join(f"{tally[c]:>14}" for c in columns))
    every = sum((t for t in totals.values()), Counter())
    print(f"{'all':<12}" + "".join(f"{every[c]:>14}" for c in columns))
    print("raised: unhandled exceptions; no terminal: bodies without exactly one terminal event; bad accepted: "
          "contract-breaking bodies not rejected")
    print(f"{every['bodies']} bodies in {elapsed:.0f} s ({every['bodies'] / elapsed:.0f} per second), seed {args.seed}")
    for cls, verdict in examples:
        print(f"- {cls}: {verdict.case.kind} {verdict.case.why}: {verdict.case.body[:160]!r} -> "
              f"{verdict.problems[:2]}")


if __name__ == "__main__":
    main()
