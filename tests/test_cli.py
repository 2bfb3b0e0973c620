import subprocess
import sys

import pandas as pd
import pytest

from lsi_app import cli


def test_compute_writes_parquet(digits_workspace, tmp_path, caplog):
    out = tmp_path / "nested" / "scores.parquet"

    with caplog.at_level("INFO"):
        status = cli.main(["compute", "--out", str(out)])

    assert status == 0
    table = pd.read_parquet(out)
    assert len(table) == 1797
    assert table["sample_id"].is_unique
    assert table.attrs["lsi_settings"]["prior_precision"] == 1.0
    assert "wrote 1797 rows" in caplog.text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["compute", "--dataset", "mnist", "--out", "x.parquet"], "unknown dataset source 'mnist'; available: digits"),
        (["compute", "--model", "vit", "--out", "x.parquet"], "unknown model source 'vit'"),
        (["compute", "--prior-precision", "-1", "--out", "x.parquet"], "prior precision must be a finite number > 0"),
        (["run", "--dataset", "mnist"], "unknown dataset source 'mnist'"),
        (["run", "--port", "70000"], "--port must be between 1 and 65535"),
    ],
)
def test_bad_options_exit_2_with_message(empty_workspace, capsys, arguments, message):
    status = cli.main(arguments)

    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, options",
    [
        ("run", ["--port", "--address", "--dataset", "--model"]),
        ("compute", ["--dataset", "--model", "--hessian", "--prior-precision", "--device", "--out"]),
    ],
)
def test_help_lists_every_option(command, options):
    result = subprocess.run(
        [sys.executable, "-m", "lsi_app.cli", command, "--help"], capture_output=True, text=True, check=True
    )

    for option in options:
        assert option in result.stdout
    assert "default" in result.stdout
