"""The pure parts of the load and soak benchmarks, in this process (their runs against a server: the engine
tests): which failed requests count against the soak's goal, the latency summary, and the loopback rule."""

from __future__ import annotations

import pytest

from tests.integration import benchmark_script

load = benchmark_script("load")
soak = benchmark_script("soak")


def _timed(started: float, ended: float, ok: bool) -> object:
    return soak.Timed(started, ended, load.Outcome(ok, ended - started, None, 4 if ok else 0))


def test_only_failures_in_flight_during_the_restart_are_the_restarts() -> None:
    run = soak.Soak(seconds=40.0, restart=(20.0, 25.0))
    run.requests = [
        _timed(1.0, 2.0, ok=True),
        _timed(19.0, 21.0, ok=False),  # in flight when the restart began
        _timed(24.0, 26.0, ok=False),  # in flight when it ended
        _timed(30.0, 31.0, ok=False),  # after it: against the goal
    ]
    during, outside = run.failed()
    assert [r.started for r in during] == [19.0, 24.0]
    assert [r.started for r in outside] == [30.0]
    assert "4 requests in 0.7 min: 1 ok, 3 failed (2 in flight at the restart, 1 outside it)" in run.report(
        5.0
    )


def test_without_a_restart_every_failure_counts() -> None:
    run = soak.Soak(seconds=10.0)
    run.requests = [_timed(1.0, 2.0, ok=False)]
    assert run.failed() == ([], run.requests)


def test_percentiles_and_aggregate_speed_count_answered_requests_only() -> None:
    result = load.LoadResult(clients=2, wall_s=2.0)
    result.outcomes = [load.Outcome(True, s, None, 10) for s in (1.0, 2.0, 3.0, 4.0)]
    result.outcomes.append(load.Outcome(False, 99.0, None, 0, "URLError: refused"))
    assert result.percentile(50) == 3.0 and result.percentile(95) == 4.0
    assert result.tokens_per_second == 20.0
    assert len(result.failures) == 1


@pytest.mark.parametrize("url", ["http://192.0.2.1:8080", "http://example.com:8080"])
def test_load_is_only_sent_to_this_machine(url: str) -> None:
    with pytest.raises(SystemExit, match="only ever sent to this machine"):
        load.check_local(url)
    load.check_local("http://127.0.0.1:8080")
    load.check_local("http://localhost:8080")
