import argparse
import io
from datetime import timedelta

import pytest

from fhir_pain.cli import main
from fhir_pain.poller.cli import Progress, add_arguments, build_poller
from fhir_pain.poller.cycle import CycleStats


def test_progress_rewrites_one_line_on_a_terminal_and_clears_it():
    out = io.StringIO()
    progress = Progress(out, enabled=True, min_interval_s=0)
    stats = CycleStats(patients=3)
    progress(stats)
    stats.evaluated, stats.findings, stats.created, stats.failed = 2, 4, 3, 1
    progress(stats)
    progress.finish()
    text = out.getvalue()
    assert text.count("\r") == 3 and "\n" not in text
    assert "patients 3/3  findings 4  written 3  failed 1" in text
    assert text.endswith("\r\x1b[K")


def test_progress_is_silent_off_a_terminal():
    out = io.StringIO()
    progress = Progress(out, enabled=False)
    progress(CycleStats(patients=1))
    progress.finish()
    assert out.getvalue() == ""


def test_progress_is_throttled_but_always_shows_the_end():
    out = io.StringIO()
    progress = Progress(out, enabled=True, min_interval_s=60)
    stats = CycleStats(patients=3)
    for done in range(1, 4):
        stats.evaluated = done
        progress(stats)
    assert out.getvalue().count("\r") == 2   # the first update, then the last (3/3)
    assert "3/3" in out.getvalue()


@pytest.mark.parametrize("argv, message", [
    (["--page-size", "0"], "must be positive"),
    (["--since", "last tuesday"], "isoformat"),
    (["--smart-client-id", "poller"], "needs both"),
    (["--fhir-server", "ftp://x"], "not an absolute http"),
    (["--overlap", "-1"], "--overlap must be"),
    (["--overlap", "nan"], "--overlap must be"),
])
def test_configuration_errors_exit_2_with_a_message(tmp_path, capsys, argv, message):
    base = ["poll", "--fhir-server", "https://fhir.example.org/r4", "--once",
            "--database-url", f"sqlite:///{tmp_path / 'c.sqlite3'}"]
    assert main(base + argv) == 2
    assert message in capsys.readouterr().err


def test_a_non_positive_interval_is_refused(tmp_path, capsys):
    assert main(["poll", "--fhir-server", "https://x.org/fhir", "--interval", "0",
                 "--database-url", f"sqlite:///{tmp_path / 'c.sqlite3'}"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_interval_and_once_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["poll", "--fhir-server", "https://x.org/fhir", "--once", "--interval", "5"])


@pytest.mark.parametrize("argv, seconds", [([], 120), (["--overlap", "300"], 300), (["--overlap", "0"], 0)])
def test_the_overlap_window_reaches_the_poller(tmp_path, argv, seconds):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--fhir-server", "https://x.org/fhir",
                              "--database-url", f"sqlite:///{tmp_path / 'c.sqlite3'}", *argv])
    poller = build_poller(args)
    try:
        assert poller.overlap == timedelta(seconds=seconds)
    finally:
        poller.store.dispose()


def test_the_overlap_is_documented_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["poll", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--overlap S" in help_text and "reaches back behind its cursor" in help_text and "(120)" in help_text
