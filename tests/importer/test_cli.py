"""``fhir-pain import pharmcat`` options refused before any server is called (exit 2, nothing sent)."""
from __future__ import annotations

import pytest

from fhir_pain.cli import main
from importer.files import OUTSIDE_CALLS


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("FHIR_PAIN_POLL_TOKEN", "secret-token-value")


@pytest.mark.parametrize("argv, says", [
    (["--patient", "bad id!", "--out", "-"], "--patient must be a FHIR id"),
    (["--patient", "p1", "--fhir-server", "ftp://fhir.example.org/r4"], "not an absolute http(s) URL"),
    (["--patient", "p1", "--fhir-server", "https://user:pw@fhir.example.org/r4"], "credentials in a FHIR base URL"),
    (["--patient", "p1", "--fhir-server", "http://fhir.example.org/r4"], "would get the credentials unencrypted"),
    (["--patient", "p1", "--out", "-", "--timeout", "0"], "--timeout must be positive"),
    (["--patient", "p1", "--fhir-server", "https://fhir.example.org/r4", "--smart-client-id", "x"],
     "needs both --smart-client-id and --smart-key"),
])
def test_bad_options_exit_2_before_any_call(argv, says, capsys):
    assert main(["import", "pharmcat", str(OUTSIDE_CALLS), *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and "secret-token-value" not in err


def test_an_unreadable_file_exits_2(tmp_path, capsys):
    assert main(["import", "pharmcat", str(tmp_path / "missing.phenotype.json"), "--patient", "p1", "--out", "-"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_fhir_server_or_out_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["import", "pharmcat", str(OUTSIDE_CALLS), "--patient", "p1"])
    assert exc.value.code == 2
