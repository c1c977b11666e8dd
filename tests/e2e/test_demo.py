"""The README's first command must keep working: the demo runs the whole lifecycle locally."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_demo_restores_a_sample_incident_from_request_to_completion():
    run = subprocess.run([sys.executable, "-m", "emulators.demo"], cwd=ROOT, capture_output=True, text=True,
                         timeout=220, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for event_type in ("restore.session.created", "restore.session.failed", "restore.request.accepted",
                       "restore.session.activated", "restore.session.completed", "restore.request.completed",
                       "restore.request.rejected"):
        assert event_type in out, f"{event_type} missing from the demo's output"
    assert "new events: 0" in out
