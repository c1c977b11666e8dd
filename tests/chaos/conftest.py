"""The chaos rounds: run once each (the first test that asks), shared by every test of their promises, and
printed as a table at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.chaos import ChaosRig, RoundPlan, RoundResult, format_table, format_totals

RESULTS: dict[str, RoundResult | BaseException] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: worker processes killed and raced on real local services "
                                       "(tests/chaos; run by default, select with -m chaos)")


@pytest.fixture(scope="session")
def chaos_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosRig]:
    with ChaosRig(Path(tmp_path_factory.mktemp("chaos"))) as rig:
        yield rig


@pytest.fixture
def chaos_round(chaos_rig: ChaosRig) -> Callable[[RoundPlan], RoundResult]:
    """Run a round the first time it is asked for; later tests of the same round read its counts."""

    def run(plan: RoundPlan) -> RoundResult:
        if plan.name not in RESULTS:
            try:
                RESULTS[plan.name] = chaos_rig.run_round(plan)
            except Exception as exc:  # a round that could not run fails every test of it, once each
                RESULTS[plan.name] = exc
        outcome = RESULTS[plan.name]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    done = [r for r in RESULTS.values() if isinstance(r, RoundResult)]
    if done:
        terminalreporter.section("chaos rounds")
        terminalreporter.write_line(format_table(done))
        terminalreporter.write_line(format_totals(done))
