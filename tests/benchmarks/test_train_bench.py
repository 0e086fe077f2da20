"""benchmarks.train: the throughput arithmetic and the command line (no timing runs)."""

from __future__ import annotations

import pytest

from benchmarks.train import FULL, QUICK, images_per_sec, main


def test_images_per_sec() -> None:
    # Step ends at 1, 2, 4, 6 s: after 1 warm-up step, 3 steps of 8 images take 5 s.
    assert images_per_sec([1.0, 2.0, 4.0, 6.0], warmup=1, timed=3, batch=8) == pytest.approx(24 / 5)
    with pytest.raises(RuntimeError):
        images_per_sec([1.0, 2.0], warmup=1, timed=3, batch=8)
    with pytest.raises(ValueError):
        images_per_sec([1.0, 2.0], warmup=0, timed=1, batch=8)


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m benchmarks.train" in out and "--quick" in out
    assert QUICK.timed_steps < FULL.timed_steps and QUICK.repeats <= FULL.repeats
