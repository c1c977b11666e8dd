"""Benchmark: CPU a 50-artifact session create costs the worker, SDK models versus our raw-JSON path.

    python -m bench.graph_create_cpu [--creates 200]

Both paths use the same msgraph-sdk request adapter (auth, retry, redirect and telemetry middleware);
they differ in how the body is written and the answer read: kiota models and serializers, or json.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.services import local_services
from emulators.graph import make_token
from orchestrators.adapters.credentials import FixedTokenCredential
from orchestrators.adapters.graph import GraphGateway

ROLES = ("BackupRestore-Restore.ReadWrite.All",)


async def sdk_models(gateway: GraphGateway, batches: list[list[str]]) -> float:
    from msgraph import GraphServiceClient
    from msgraph.generated.models.destination_type import DestinationType
    from msgraph.generated.models.drive_restore_artifact import DriveRestoreArtifact
    from msgraph.generated.models.one_drive_for_business_restore_session import OneDriveForBusinessRestoreSession
    from msgraph.generated.models.restore_point import RestorePoint

    client = GraphServiceClient(request_adapter=gateway._adapter)
    sessions = client.solutions.backup_restore.one_drive_for_business_restore_sessions
    start = time.process_time()
    for points in batches:
        body = OneDriveForBusinessRestoreSession(drive_restore_artifacts=[
            DriveRestoreArtifact(restore_point=RestorePoint(id=rp), destination_type=DestinationType.New)
            for rp in points])
        created = await sessions.post(body)
        assert created is not None and created.id
    return (time.process_time() - start) / len(batches)


async def raw_json(gateway: GraphGateway, batches: list[list[str]]) -> float:
    start = time.process_time()
    for points in batches:
        created = await gateway.create_restore_session("new", points)
        assert created.session_id
    return (time.process_time() - start) / len(batches)


async def run(creates: int) -> None:
    with local_services(drives=creates * 50 + 500) as services:
        points = [p["id"] for p in services.graph.samples(creates * 50)["restorePoints"]]
        batches = [points[i:i + 50] for i in range(0, creates * 50, 50)]
        gateway = GraphGateway.create(FixedTokenCredential(make_token(ROLES)), services.graph_url)
        try:
            await raw_json(gateway, batches[:5])  # warm both paths: imports, connections, token
            await sdk_models(gateway, batches[:5])
            half = len(batches) // 2
            raw = await raw_json(gateway, batches[5:half])
            sdk = await sdk_models(gateway, batches[half:])
        finally:
            await gateway.aclose()
    print(f"CPU per 50-artifact create ({creates} creates, same adapter and middleware):")
    print(f"  msgraph-sdk models: {sdk * 1000:.1f} ms")
    print(f"  raw JSON path:      {raw * 1000:.1f} ms  ({sdk / raw:.1f}x less)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--creates", type=int, default=200)
    asyncio.run(run(parser.parse_args().creates))


if __name__ == "__main__":
    main()
