"""Shared fixtures: real local services on ephemeral ports, stopped by PID when the session ends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulators.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    service = start_azurite()
    try:
        yield service
    finally:
        service.stop()
