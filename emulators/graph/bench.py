"""Benchmark: requests/s for a create/get mix against an emulator holding 10,000 sessions.

``python -m emulators.graph.bench [--sessions 10000] [--duration 10] [--concurrency 32] [--create-ratio 0.2]``

The server runs in a subprocess pinned to one core (``os.sched_setaffinity`` where available); the load comes from
this process over keep-alive connections (aiohttp client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aiohttp

from .auth import RESTORE_READWRITE, make_token

ODB = "/solutions/backupRestore/oneDriveForBusinessRestoreSessions"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admin(root: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{root}/_emulator{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def _pin(pid: int, cpus: set[int]) -> bool:
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None:
        return False
    try:
        setter(pid, cpus)
    except OSError:
        return False
    return True


async def _load(
    base: str, ids: list[str], points: list[str], duration: float, concurrency: int, create_ratio: float, seed: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {make_token([RESTORE_READWRITE])}", "Content-Type": "application/json"}
    rng = random.Random(seed)
    latencies: list[float] = []
    counts = {"create": 0, "get": 0, "errors": 0}
    stop = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(base_url=None, connector=connector, headers=headers) as session:

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                if rng.random() < create_ratio:
                    body = {"driveRestoreArtifacts": [{"restorePoint": {"id": rng.choice(points)},
                                                       "destinationType": "new"}]}
                    async with session.post(base + ODB, data=json.dumps(body)) as resp:
                        payload = await resp.read()
                        if resp.status == 201:
                            counts["create"] += 1
                            ids.append(json.loads(payload)["id"])
                        else:
                            counts["errors"] += 1
                else:
                    sid = ids[rng.randrange(len(ids))]
                    async with session.get(f"{base}/solutions/backupRestore/restoreSessions/{sid}") as resp:
                        await resp.read()
                        if resp.status == 200:
                            counts["get"] += 1
                        else:
                            counts["errors"] += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    total = len(latencies)
    return {
        "requests": total,
        "elapsed": elapsed,
        "rps": total / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(total * 0.99) - 1] if total >= 100 else 0.0,
        **counts,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulators.graph.bench", description=__doc__)
    p.add_argument("--sessions", type=int, default=10_000, help="sessions stored before the run")
    p.add_argument("--drives", type=int, default=1000)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--create-ratio", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.graph", "--host", "127.0.0.1", "--port", str(port), "--drives",
         str(args.drives), "--seed", str(args.seed), "--log-level", "ERROR"],
        stdout=subprocess.DEVNULL,
    )
    try:
        server_pinned = bool(cpus) and _pin(proc.pid, {cpus[0]})
        if len(cpus) > 1:
            _pin(0, set(cpus[1:]))
        deadline = time.monotonic() + 30
        while True:
            try:
                _admin(root, "GET", "/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        t0 = time.perf_counter()
        seeded = _admin(root, "POST", "/seed-sessions", {"count": args.sessions, "artifacts": 1})
        seed_s = time.perf_counter() - t0
        ids: list[str] = list(seeded["ids"])
        sample = _admin(root, "GET", f"/samples?count={min(args.drives, 200)}")
        points = [x["id"] for x in sample["restorePoints"]]
        print(f"server pid {proc.pid} pinned to cpu {cpus[0] if server_pinned else 'n/a'}; "
              f"load from cpus {cpus[1:] if len(cpus) > 1 else 'shared'}")
        print(f"stored sessions: {len(ids)} (seeded in {seed_s:.2f}s); drives {args.drives}")
        asyncio.run(_load(f"{root}/v1.0", ids, points, 1.0, args.concurrency, args.create_ratio, args.seed))  # warm-up
        result = asyncio.run(
            _load(f"{root}/v1.0", ids, points, args.duration, args.concurrency, args.create_ratio, args.seed + 1)
        )
        state = _admin(root, "GET", "/state?sessions=0")
        print(
            f"mix: {int(args.create_ratio * 100)}% create / {100 - int(args.create_ratio * 100)}% get, "
            f"concurrency {args.concurrency}, {args.duration:.0f}s"
        )
        print(f"requests: {result['requests']} ({result['create']} create, {result['get']} get, "
              f"{result['errors']} errors)")
        print(f"throughput: {result['rps']:.0f} req/s")
        print(f"latency: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
        print(f"sessions stored at the end: {state['sessionCount']}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
