"""The metrics history's percentile maths, and that the Lua scripts and Python agree on its buckets."""

from __future__ import annotations

import re

import pytest

from services.jobs.queue_history import LATENCY_BOUNDS_MS, minute_from_fields, percentile
from services.jobs.store import LUA_DIR

EMPTY = [0] * (len(LATENCY_BOUNDS_MS) + 1)


def _histogram(**buckets: int) -> list[int]:
    """Counts by 1-based bucket number: `_histogram(b3=4)` is four latencies in (2, 5] ms."""
    counts = list(EMPTY)
    for name, count in buckets.items():
        counts[int(name[1:]) - 1] = count
    return counts


def test_empty_histogram_is_zero() -> None:
    assert percentile(EMPTY, 0.5) == 0.0
    assert percentile(EMPTY, 0.95) == 0.0


def test_interpolates_inside_the_bucket() -> None:
    # 10 latencies in (100, 200] ms: the median sits halfway through the bucket.
    counts = _histogram(b8=10)
    assert percentile(counts, 0.5) == pytest.approx(150.0)
    assert percentile(counts, 0.95) == pytest.approx(195.0)


def test_picks_the_bucket_the_rank_falls_in() -> None:
    # 90 fast (≤1 ms) and 10 slow in (1000, 2000]: p50 is fast, p95 is in the slow bucket's middle.
    counts = _histogram(b1=90, b11=10)
    assert percentile(counts, 0.5) == pytest.approx(50 / 90)
    assert percentile(counts, 0.95) == pytest.approx(1500.0)


def test_overflow_answers_the_largest_bound() -> None:
    counts = _histogram(**{f"b{len(LATENCY_BOUNDS_MS) + 1}": 3})
    assert percentile(counts, 0.5) == LATENCY_BOUNDS_MS[-1]


def test_percentiles_never_decrease() -> None:
    counts = _histogram(b2=5, b5=7, b9=1, b14=2)
    values = [percentile(counts, fraction / 100) for fraction in range(1, 101)]
    assert values == sorted(values)
    assert values[-1] <= LATENCY_BOUNDS_MS[13]


def test_minute_from_the_hash_the_scripts_write() -> None:
    minute = minute_from_fields(
        120_000, {"started": "4", "completed": "3", "failed": "1", "w1": "4", "r10": "2", "r12": "2"}
    )
    assert (minute.started, minute.completed, minute.failed) == (4, 3, 1)
    assert minute.wait_p50_ms == pytest.approx(0.5)
    assert 500 < minute.run_p50_ms <= 1000
    assert 2000 < minute.run_p95_ms <= 5000


def test_lua_and_python_share_the_bounds() -> None:
    prelude = (LUA_DIR / "prelude.lua").read_text()
    match = re.search(r"LATENCY_BOUNDS_MS = \{([^}]*)\}", prelude)
    assert match is not None
    assert tuple(int(value) for value in re.findall(r"\d+", match.group(1))) == LATENCY_BOUNDS_MS
