"""The policy agent's health aggregation: Felix's reporter semantics and component table."""
from __future__ import annotations

import logging

import pytest

from node.felix.config import FelixConfig
from node.felix.health import (
    CALC_GRAPH,
    DATAPLANE,
    FELIX_STARTUP,
    HealthAggregator,
    dataplane_timeout,
    register_felix_reporters,
    render_table,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def agg(clock) -> HealthAggregator:
    return HealthAggregator(clock)


def state(agg: HealthAggregator) -> tuple[bool, bool]:
    s = agg.summary()
    return s.live, s.ready


def test_no_reporters_is_live_and_ready(agg):
    assert state(agg) == (True, True)
    # Felix still renders the (empty) table, so the endpoints answer 200 with it.
    assert agg.summary().detail == "\n".join([
        "+-----------+---------+----------+-----------+--------+",
        "| COMPONENT | TIMEOUT | LIVENESS | READINESS | DETAIL |",
        "+-----------+---------+----------+-----------+--------+",
        "+-----------+---------+----------+-----------+--------+",
    ])


def test_new_reporter_is_live_but_not_ready_until_it_reports(agg):
    agg.register_reporter("a", timeout=10)
    assert state(agg) == (True, False)
    agg.report("a", live=True, ready=True)
    assert state(agg) == (True, True)


def test_libcalico_go_scenarios(agg, clock):
    # The three reporters of libcalico-go's own health tests: ready-only, both, live-only.
    agg.register_reporter("source1", live=False, ready=True, timeout=0.1)
    agg.register_reporter("source2", live=True, ready=True, timeout=0.1)
    agg.register_reporter("source3", live=True, ready=False, timeout=0.1)
    assert state(agg) == (True, False)
    agg.report("source3", live=True, ready=False)
    agg.report("source2", live=True, ready=True)
    assert state(agg) == (True, False)  # source1 has not said ready
    agg.report("source1", live=False, ready=True)  # it does not report liveness: live=False is ignored
    assert state(agg) == (True, True)
    agg.report("source3", live=False, ready=False)
    assert state(agg) == (False, True)
    agg.report("source3", live=True, ready=False)
    clock.advance(0.2)
    # Expired reports are neither live nor ready.
    assert state(agg) == (False, False)


def test_not_ready_report(agg):
    agg.register_reporter("a", timeout=10)
    agg.register_reporter("b", timeout=10)
    agg.report("a", live=True, ready=True)
    agg.report("b", live=True, ready=True)
    agg.report("a", live=True, ready=False)
    assert state(agg) == (True, False)


def test_timeout_boundary_is_strict(agg, clock):
    agg.register_reporter("a", timeout=30)
    agg.report("a", live=True, ready=True)
    clock.advance(30)
    assert state(agg) == (True, True)  # Felix: timed out only when *more* than the timeout passed
    clock.advance(0.001)
    assert state(agg) == (False, False)
    agg.report("a", live=True, ready=True)  # a fresh report revives it
    assert state(agg) == (True, True)


def test_zero_timeout_never_expires(agg, clock):
    agg.register_reporter("a", timeout=0)
    agg.report("a", live=True, ready=True)
    clock.advance(10**6)
    assert state(agg) == (True, True)


def test_reporting_unregistered_name_fails(agg):
    with pytest.raises(KeyError, match="nope"):
        agg.report("nope", live=True, ready=True)


def test_timeout_table_matches_libcalico_go(agg, clock):
    agg.register_reporter("source1", live=False, ready=True, timeout=0.1)
    agg.register_reporter("source2", live=True, ready=True, timeout=0)
    agg.report("source1", live=False, ready=True)
    agg.report("source2", live=True, ready=True, detail="but very busy!")
    assert agg.summary().detail == "\n".join([
        "+-----------+---------+----------------+-----------------+----------------+",
        "| COMPONENT | TIMEOUT |    LIVENESS    |    READINESS    |     DETAIL     |",
        "+-----------+---------+----------------+-----------------+----------------+",
        "| source1   | 100ms   | -              | reporting ready |                |",
        "| source2   | -       | reporting live | reporting ready | but very busy! |",
        "+-----------+---------+----------------+-----------------+----------------+",
    ])


def test_override_lengthens_timeout_and_is_marked(agg, clock):
    agg.register_reporter("source1", live=False, ready=True, timeout=0.1)
    agg.register_reporter("source2", live=True, ready=True, timeout=0)
    agg.report("source1", live=False, ready=True)
    agg.report("source2", live=True, ready=True, detail="but very busy!")
    agg.set_timeout_overrides((("source1", 0.3),))
    clock.advance(0.2)
    summary = agg.summary()
    assert (summary.live, summary.ready) == (True, True)
    assert summary.detail == "\n".join([
        "+-----------+------------------+----------------+-----------------+----------------+",
        "| COMPONENT |     TIMEOUT      |    LIVENESS    |    READINESS    |     DETAIL     |",
        "+-----------+------------------+----------------+-----------------+----------------+",
        "| source1   | 300ms (override) | -              | reporting ready |                |",
        "| source2   | -                | reporting live | reporting ready | but very busy! |",
        "+-----------+------------------+----------------+-----------------+----------------+",
    ])
    clock.advance(0.2)
    summary = agg.summary()
    assert (summary.live, summary.ready) == (True, False)
    assert "| source1   | 300ms (override) | -              | timed out       |" in summary.detail


def test_override_can_add_or_remove_a_timeout(agg, clock):
    agg.register_reporter(FELIX_STARTUP, timeout=0)
    agg.register_reporter(CALC_GRAPH, timeout=30)
    agg.report(FELIX_STARTUP, live=True, ready=True)
    agg.report(CALC_GRAPH, live=True, ready=True)
    agg.set_timeout_overrides({FELIX_STARTUP: 5.0, CALC_GRAPH: 0.0})
    clock.advance(60)
    summary = agg.summary()
    assert (summary.live, summary.ready) == (False, False)
    assert "| CalculationGraph | - (override)  | reporting live | reporting ready |" in summary.detail
    assert "| FelixStartup     | 5s (override) | timed out      | timed out       |" in summary.detail
    agg.set_timeout_overrides(())
    assert state(agg) == (False, False)  # CalculationGraph's own 30 s is back, and long past
    agg.report(CALC_GRAPH, live=True, ready=True)
    assert state(agg) == (True, True)


def test_dataplane_timeout_floor(caplog):
    assert dataplane_timeout(90) == 90
    assert dataplane_timeout(20) == 20
    with caplog.at_level(logging.WARNING, logger="node.felix.health"):
        assert dataplane_timeout(5) == 20
    assert "Dataplane watchdog timeout (5s) too low, defaulting to 20s" in caplog.text


def test_felix_reporters_and_config_overrides(agg, clock):
    config = FelixConfig.resolve({"FELIX_DATAPLANEWATCHDOGTIMEOUT": "10",
                                  "FELIX_HEALTHTIMEOUTOVERRIDES": "InternalDataplaneMainLoop=2m"})
    register_felix_reporters(agg, config.DataplaneWatchdogTimeout)
    agg.set_timeout_overrides(config.HealthTimeoutOverrides)
    assert agg.summary().detail == "\n".join([
        "+---------------------------+-----------------+----------------+---------------------+--------+",
        "|         COMPONENT         |     TIMEOUT     |    LIVENESS    |      READINESS      | DETAIL |",
        "+---------------------------+-----------------+----------------+---------------------+--------+",
        "| CalculationGraph          | 30s             | reporting live | reporting non-ready |        |",
        "| FelixStartup              | -               | reporting live | reporting non-ready |        |",
        "| InternalDataplaneMainLoop | 2m0s (override) | reporting live | reporting non-ready |        |",
        "+---------------------------+-----------------+----------------+---------------------+--------+",
    ])
    # Felix's startup sequence: each component reports ready in turn.
    for name in (FELIX_STARTUP, CALC_GRAPH, DATAPLANE):
        assert state(agg) == (True, False)
        agg.report(name, live=True, ready=True)
    assert state(agg) == (True, True)
    # The calc graph reports every 10 s; missing 30 s of reports makes Felix not live.
    clock.advance(31)
    agg.report(FELIX_STARTUP, live=True, ready=True)
    agg.report(DATAPLANE, live=True, ready=True)
    assert state(agg) == (False, False)


def test_felix_dataplane_floor_applies_without_override(agg, clock):
    register_felix_reporters(agg, watchdog_timeout=5)
    for name in (FELIX_STARTUP, CALC_GRAPH, DATAPLANE):
        agg.report(name, live=True, ready=True)
    clock.advance(19)
    agg.report(CALC_GRAPH, live=True, ready=True)
    assert state(agg) == (True, True)  # 5 s was raised to the 20 s floor
    clock.advance(1.5)
    assert state(agg) == (False, False)


def test_status_change_logging(agg, caplog):
    agg.register_reporter("a", timeout=10)
    with caplog.at_level(logging.INFO, logger="node.felix.health"):
        agg.summary()
        agg.summary()
        agg.report("a", live=True, ready=True)
        agg.summary()
    changes = [r.getMessage() for r in caplog.records if "Overall health status changed" in r.getMessage()]
    assert [c.splitlines()[0] for c in changes] == [
        "Overall health status changed: live=true ready=false",
        "Overall health status changed: live=true ready=true",
    ]
    assert any("Health of component changed: name=a newReport=live,ready oldReport=live,non-ready"
               in r.getMessage() for r in caplog.records)


def test_table_wraps_long_detail_at_30_columns():
    table = render_table(["AB", "DETAIL"], [["x", "the quick brown fox jumps over the lazy dog again"]])
    assert table == "\n".join([
        "+----+--------------------------------+",
        "| AB |             DETAIL             |",
        "+----+--------------------------------+",
        "| x  | the quick brown fox jumps over |",
        "|    | the lazy dog again             |",
        "+----+--------------------------------+",
    ])


def test_table_keeps_tablewriters_filler_quirk():
    # tablewriter fills the missing lines of a multi-line row with two spaces, which
    # overflows a one-character column; Felix's output has the same kink.
    table = render_table(["A", "DETAIL"], [["x", "the quick brown fox jumps over the lazy dog again"]])
    assert table.splitlines()[4] == "|    | the lazy dog again             |"


def test_table_right_aligns_numbers_and_keeps_long_words():
    table = render_table(["N", "W"], [["1,234", "a" * 35], ["7", "b"]])
    assert table.splitlines()[3] == "| 1,234 | " + "a" * 35 + " |"
    assert table.splitlines()[4] == "|     7 | b" + " " * 34 + " |"
