import subprocess
import sys

import numpy as np
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
        (["compute", "--prior-precision", "-1", "--out", "x.parquet"], "prior precision must be a finite number > 0 or 'auto'"),
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
        (
            "compute",
            [
                "--dataset", "--model", "--features", "--labels", "--hessian", "--prior-precision", "--method",
                "--device", "--self-check", "--refine-top", "--no-standardize", "--out",
            ],
        ),
    ],
)
def test_help_lists_every_option(command, options):
    result = subprocess.run(
        [sys.executable, "-m", "lsi_app.cli", command, "--help"], capture_output=True, text=True, check=True
    )

    for option in options:
        assert option in result.stdout
    assert "default" in result.stdout


def test_compute_from_feature_files(tmp_path, empty_workspace):
    rng = np.random.default_rng(0)
    labels = np.array(["ant", "bee", "cow"])[np.arange(60) % 3]
    features = rng.normal(size=(60, 4)) + (np.arange(60) % 3)[:, None]
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "labels.npy", labels)
    out = tmp_path / "scores.parquet"

    status = cli.main(
        [
            "compute",
            "--features", str(tmp_path / "features.npy"),
            "--labels", str(tmp_path / "labels.npy"),
            "--hessian", "diag",
            "--prior-precision", "auto",
            "--self-check", "5",
            "--out", str(out),
        ]
    )

    assert status == 0
    table = pd.read_parquet(out)
    assert table["sample_id"].tolist() == list(range(60))
    assert table["class_name"].tolist() == labels.tolist()
    assert table.attrs["label_mapping"] == {"0": "ant", "1": "bee", "2": "cow"}
    settings = table.attrs["lsi_settings"]
    assert settings["hessian"] == "diag"
    assert settings["self_check"]["n_samples"] == 5
    assert settings["prior_precision"] in settings["prior_grid"]
    summary = pd.read_csv(tmp_path / "scores.summary.csv")
    assert summary["class_name"].tolist() == ["ant", "bee", "cow"]
    assert summary["count"].tolist() == [20, 20, 20]


def test_compute_labels_inside_npz(tmp_path, empty_workspace):
    features = np.random.default_rng(1).normal(size=(30, 3))
    np.savez(tmp_path / "data.npz", features=features, labels=np.arange(30) % 2 * 5 + 1)
    out = tmp_path / "scores.parquet"

    assert cli.main(["compute", "--features", str(tmp_path / "data.npz"), "--out", str(out)]) == 0

    table = pd.read_parquet(out)
    assert table.attrs["label_mapping"] == {"0": "1", "1": "6"}


def test_compute_feature_errors_name_rows(tmp_path, empty_workspace, capsys):
    features = np.ones((10, 2))
    features[[2, 7], 1] = np.nan
    features += np.arange(10)[:, None]
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "labels.npy", np.arange(10) % 2)

    status = cli.main(
        ["compute", "--features", str(tmp_path / "features.npy"), "--labels", str(tmp_path / "labels.npy"), "--out", str(tmp_path / "o.parquet")]
    )

    assert status == 2
    assert "NaN or inf in rows 2, 7" in capsys.readouterr().err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--features", "f.npy"], "--labels is missing"),
        (["--labels", "l.npy"], "--labels needs --features"),
        (["--features", "absent.npy", "--labels", "l.npy"], "features file absent.npy not found"),
    ],
)
def test_compute_feature_option_errors(empty_workspace, capsys, arguments, message):
    assert cli.main(["compute", *arguments, "--out", "x.parquet"]) == 2
    assert message in capsys.readouterr().err


def test_prior_precision_option_rejects_text(capsys):
    with pytest.raises(SystemExit):
        cli.main(["compute", "--prior-precision", "big", "--out", "x.parquet"])
    assert "pass a number > 0 or 'auto'" in capsys.readouterr().err


def test_compute_rejects_non_parquet_output(empty_workspace, capsys):
    assert cli.main(["compute", "--out", "scores.csv"]) == 2
    assert "--out scores.csv must end in .parquet" in capsys.readouterr().err


def test_run_rejects_busy_port(empty_workspace, capsys):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        assert cli.main(["run", "--port", str(port)]) == 2

    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
