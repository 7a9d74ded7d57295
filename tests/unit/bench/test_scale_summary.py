"""The scale bench's summary of several runs: the run with the median convergence time, and
the median of each headline number across runs (not the median run's)."""

from __future__ import annotations

from typing import Any

from bench.controlplane import scale


def _run(converged: float, peak: float) -> dict[str, Any]:
    run = dict.fromkeys(scale.HEADLINE, 1.0)
    run.update(converged_after_last_create_seconds=converged, manager_peak_rss_mib=peak)
    return run


def test_median_run_and_medians_of_each_number() -> None:
    result = scale.summary([_run(9.0, 107.0), _run(5.0, 110.0), _run(7.0, 106.0)])
    assert result["converged_after_last_create_seconds"] == 7.0
    assert result["manager_peak_rss_mib"] == 106.0  # the median run's own
    assert result["medians"]["manager_peak_rss_mib"] == 107.0  # the median of the three
    assert [r["manager_peak_rss_mib"] for r in result["runs"]] == [107.0, 110.0, 106.0]
