"""Chaos at volume: seeded rounds of worker processes SIGKILLed and raced on one restore request each.

    python -m bench.chaos [--rounds 20] [--seed 1] [--points 500-2000] [--race-every 4] [--keep-logs]

The rounds are the chaos tests' (tests/support/chaos.py): the function app under the host runner in child
processes, Azurite, the Service Bus stand-in and the Graph emulator (30-80 ms a call, creates 150-300 ms) as real
processes. Each round sends one request of a seeded number of restore points (within --points, in fifties), half
of them with `activate: true`; every --race-every-th round races two live workers on the message (lock renewal
off, a lock shorter than the work), half of those also killing the first; the others kill the only worker at a
seeded write and let a fresh one take the redelivered message. Printed per round as it ends, then as a table
with totals: duplicate sessions, missing restore points, double activations, sessions left unactivated, whether
the request ended in its terminal event, recovery calls (and their bound), where the worker died, whether the
race overlapped, wall time.

Duration on two cores: the 20 default rounds (28,450 restore points) took 496 s, a round 17-31 s (mostly the 10 s
step lease a dead worker leaves, the lock, and the tracker tail). A kill that lands during the dead worker's tracker
run adds about 65 s: no tracker runs until that run's lease (its time budget plus a minute) has expired.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

if not __package__:  # run as `python bench/chaos.py`: the repository root is what the imports start from
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.chaos import (
    ChaosRig,
    RoundPlan,
    RoundResult,
    format_table,
    format_totals,
    plan_round,
)


def points_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    bounds = int(low), int(high or low)
    if not 1 <= bounds[0] <= bounds[1] <= 10_000:
        raise argparse.ArgumentTypeError(f"want N or LOW-HIGH within 1-10000, got {text!r}")
    return bounds


def plans(rounds: int, seed: int, points: tuple[int, int], race_every: int) -> list[RoundPlan]:
    """The rounds, every choice drawn from `seed`: the same arguments give the same rounds."""
    rng = random.Random(f"bench.chaos:{seed}")
    out = []
    for index in range(rounds):
        size = max(points[0], min(points[1], round(rng.randint(*points) / 50) * 50))
        race = race_every > 0 and (index + 1) % race_every == 0
        activate = rng.random() < 0.5
        kill = not race or rng.random() < 0.5
        out.append(plan_round(f"r{index + 1:02d}", seed * 1000 + index + 1, size, activate=activate, race=race,
                              kill=kill))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--points", type=points_range, default=(500, 2000), help="N or LOW-HIGH per round")
    parser.add_argument("--race-every", type=int, default=4, help="every Nth round races two workers (0: never)")
    parser.add_argument("--keep-logs", action="store_true", help="keep every round's worker logs, not only "
                                                                 "those of rounds that broke a promise")
    args = parser.parse_args()
    results: list[RoundResult] = []
    started = time.monotonic()
    with ChaosRig(drives=max(2100, args.points[1]), say=lambda line: print(f"  {line}", flush=True),
                  keep_logs=args.keep_logs) as rig:
        print(f"chaos: {args.rounds} rounds, seed {args.seed}, {args.points[0]}-{args.points[1]} restore points, "
              f"race every {args.race_every}; work files in {rig.workdir}", flush=True)
        for plan in plans(args.rounds, args.seed, args.points, args.race_every):
            print(f"{plan.name}: seed {plan.seed}, {plan.kind}, {plan.points} points", flush=True)
            result = rig.run_round(plan)
            results.append(result)
            verdict = "; ".join(result.problems) or "every promise held"
            print(f"  {result.sessions} sessions, {result.recovery_calls} recovery calls, "
                  f"{result.wall_seconds:.1f} s: {verdict}", flush=True)
            if result.problems:
                print(f"  {result.describe()}", flush=True)
    print()
    print(format_table(results))
    print(format_totals(results))
    print(f"total wall time {time.monotonic() - started:.0f} s")
    broken = [r for r in results if r.problems]
    if broken:
        print(f"{len(broken)} rounds broke a promise: " + ", ".join(f"{r.plan.name} (seed {r.plan.seed})"
                                                                   for r in broken))
        sys.exit(1)


if __name__ == "__main__":
    main()
