"""The call model as a library: reproducible columnar batches with the configured shape."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from ecm_common.domain import REASONS
from generator.batch import CallBatch, split_valid
from generator.encode import encode_copy
from generator.model import CallModel, ModelParams, zipf_weights

ORIGIN_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def model(**kw: object) -> CallModel:
    params = ModelParams(**{"tower_weights": zipf_weights(50, 0.8), **kw})  # type: ignore[arg-type]
    return CallModel(params, origin_us=ORIGIN_US)


def test_same_seed_same_batch() -> None:
    a = model().batch(1000, 0.0, np.random.default_rng(5))
    b = model().batch(1000, 0.0, np.random.default_rng(5))
    assert encode_copy(a) == encode_copy(b)
    c = model().batch(1000, 0.0, np.random.default_rng(6))
    assert encode_copy(a) != encode_copy(c)


def test_uuids_are_version_7_time_ordered_and_unique() -> None:
    b = model(rate=1000.0).batch(5000, 0.0, np.random.default_rng(1))
    ids = [uuid.UUID(bytes=bytes(row)) for row in b.uuid]
    assert {u.version for u in ids} == {7}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)
    ms = [u.int >> 80 for u in ids]
    assert ms == sorted(ms)
    assert ms[0] == int(b.ts_us[0]) // 1000


def test_arrivals_rate_failures_and_latency_shape() -> None:
    n = 20_000
    b = model(rate=5.0, failure_prob=0.2, idle_share=0.0).batch(n, 0.0, np.random.default_rng(2))
    span_s = (int(b.ts_us[-1]) - int(b.ts_us[0])) / 1e6
    assert n / span_s == pytest.approx(5.0, rel=0.05)
    gaps = np.diff(b.ts_us) / 1e6
    assert np.std(gaps) == pytest.approx(np.mean(gaps), rel=0.05)  # exponential gaps
    failed = b.status == 1
    assert failed.mean() == pytest.approx(0.2, abs=0.015)
    ok = b.latency_ms[~failed]
    assert np.median(ok) == pytest.approx(1800, rel=0.03)
    assert np.std(np.log(ok)) == pytest.approx(0.35, rel=0.05)
    timeouts = b.latency_ms[failed & (b.reason == REASONS.index("CORE_TIMEOUT"))]
    assert len(timeouts) > 0 and set(timeouts.tolist()) == {10_000}
    counts = np.bincount(b.tower, minlength=50)
    assert counts[0] > counts[9] > counts[49]  # Zipf-like: tower 1 busiest


def test_seed_example_latency_is_reproducible() -> None:
    # The seed's example report: avg 640 ms, p95 1134 ms.
    b = model(latency_median_ms=600.0, latency_sigma=0.4, idle_share=0.0, failure_prob=0.0).batch(
        20_000, 0.0, np.random.default_rng(3)
    )
    assert np.mean(b.latency_ms) == pytest.approx(650, rel=0.05)
    assert np.percentile(b.latency_ms, 95) == pytest.approx(1160, rel=0.05)


def test_invalid_rows_are_split_out() -> None:
    b = model().batch(10, 0.0, np.random.default_rng(4))
    b.status[3] = 7
    b.tower[5] = 99
    valid, invalid = split_valid(b)
    assert len(valid) == 8
    assert sorted(why for _, why in invalid) == ["unknown status", "unknown tower"]
    assert all(isinstance(row["call_uuid"], str) for row, _ in invalid)


def test_records_round_trip() -> None:
    b = model().batch(100, 0.0, np.random.default_rng(4))
    back = CallBatch.from_records(b.to_records(), b.n_towers)
    assert encode_copy(back) == encode_copy(b)


def test_regions_are_contiguous_near_equal_blocks() -> None:
    p = ModelParams(tower_weights=(1.0,) * 7, regions=3)
    assert p.tower_regions() == ("REGION_1",) * 3 + ("REGION_2",) * 2 + ("REGION_3",) * 2
    # More regions than towers: one tower per region; the default is a single region.
    assert ModelParams(tower_weights=(1.0, 1.0), regions=5).tower_regions() == (
        "REGION_1",
        "REGION_2",
    )
    assert set(ModelParams(tower_weights=(1.0,) * 4).tower_regions()) == {"REGION_1"}
