"""How numbers read in every view (formats.num / signed)."""

import pytest

from runner.formats import num, signed


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10000.0, "10000"),  # was 1e+04
        (12345.678, "12346"),
        (-25000.5, "-25000"),  # rounded half to even, as Python formats
        (0.84123, "0.8412"),
        (9999.4, "9999"),
        (1e-5, "1e-05"),
        (1e20, "1e+20"),
        (3, "3"),
        ("adam", "adam"),
    ],
)
def test_a_number_reads_without_an_exponent_a_person_would_not_write(value, shown):
    assert num(value) == shown


def test_a_change_is_signed_the_same_way():
    assert [signed(v) for v in (12000.0, -0.0123, 0.0)] == ["+12000", "-0.0123", "+0"]


def test_status_columns_line_up_past_a_long_name():
    # was: a name longer than the first column ran into the next one, the rows misaligned
    from runner.status import render

    data = {
        "target": "local",
        "tracking_uri": "sqlite:///x",
        "resources": [
            {
                "address": "environment.docker-image-plus-conda-examplev1",
                "kind": "environment",
                "attrs": {"version": "1"},
            },
            {"address": "compute.cpu", "kind": "compute", "attrs": {"type": "amlcompute"}},
        ],
        "jobs": [
            {
                "job": "train",
                "status": "Completed",
                "run_id": "abcdef123",
                "up_to_date": True,
                "error": None,
                "steps": [{"step": "prep", "status": "Completed", "run_id": "1234567"}],
            },
        ],
    }
    lines = render(data).splitlines()[1:]
    assert lines == [
        "  compute.cpu                                    amlcompute, 0..1 nodes",
        "  environment.docker-image-plus-conda-examplev1  v1",
        "  job.train                                      Completed  run abcdef1 up to date",
        "      prep                                       Completed  run 1234567",
    ]
