from __future__ import annotations

import pytest
from assay_backends._packing import job_count, pack
from assay_backends._workers import worker_count
from hypothesis import given
from hypothesis import strategies as st


@given(
    n=st.integers(min_value=0, max_value=500),
    max_jobs=st.integers(min_value=1, max_value=200),
    min_items=st.integers(min_value=1, max_value=50),
)
def test_pack_keeps_every_item_in_order_and_respects_both_limits(
    n: int, max_jobs: int, min_items: int
) -> None:
    items = list(range(n))
    groups = pack(items, max_jobs=max_jobs, min_items_per_job=min_items)
    assert [item for group in groups for item in group] == items
    assert len(groups) <= max_jobs
    assert all(groups), "no empty job"
    sizes = [len(group) for group in groups]
    if sizes:
        assert max(sizes) - min(sizes) <= 1
    if len(groups) > 1:
        assert min(sizes) >= min_items
    # As many jobs as the limits allow: one more would break one of them.
    more = len(groups) + 1
    assert n == 0 or more > max_jobs or n // more < min_items or more > n


def test_a_100_item_sweep_packs_into_4_jobs_of_25() -> None:
    assert [len(group) for group in pack(list(range(100)), max_jobs=4)] == [25] * 4


def test_min_items_per_job_combines_small_items() -> None:
    assert job_count(10, max_jobs=128, min_items_per_job=3) == 3
    assert job_count(2, max_jobs=128, min_items_per_job=3) == 1
    assert job_count(0, max_jobs=5) == 0


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("max_jobs", {"max_jobs": 0}),
        ("max_jobs", {"max_jobs": True}),
        ("min_items_per_job", {"max_jobs": 2, "min_items_per_job": -1}),
    ],
)
def test_bad_limits_name_the_key_and_value(name: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=rf"{name} must be a positive integer, got"):
        pack([1, 2, 3], **kwargs)


@given(
    max_jobs=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
    n=st.integers(min_value=0, max_value=300),
    cpus=st.integers(min_value=1, max_value=64),
)
def test_worker_count_is_the_smallest_limit_and_uses_every_core(
    max_jobs: int | None, n: int, cpus: int
) -> None:
    workers = worker_count(max_jobs, n, cpus)
    limits = [n, cpus] + ([max_jobs] if max_jobs else [])
    assert workers == max(1, min(limits))


def test_two_cores_give_two_workers_where_exca_gives_one() -> None:
    assert worker_count(128, n_items=10, cpus=2) == 2
