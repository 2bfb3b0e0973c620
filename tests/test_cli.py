import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

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
        (["compute", "--dataset", "mnist", "--out", "x.parquet"], "dataset source 'mnist' not found"),
        (["compute", "--model", "vit", "--out", "x.parquet"], "'vit'"),
        (["compute", "--prior-precision", "-1", "--out", "x.parquet"], "prior precision must be a finite number > 0 or 'auto'"),
        (["run", "--dataset", "mnist"], "dataset source 'mnist' not found"),
        (["compute", "--dataset", "torchvision:cifar10", "--out", "x.parquet"], "torchvision:NAME:ROOT"),
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
        ("run", ["--port", "--address", "--dataset", "--model", "--labels", "--clusters", "--workspace"]),
        (
            "compute",
            [
                "--dataset", "--model", "--features", "--labels", "--clusters", "--feature-layer", "--image-size",
                "--batch-size", "--hessian", "--prior-precision", "--method", "--device", "--self-check",
                "--refine-top", "--no-standardize", "--out", "--workspace", "--engine", "--ray-address", "--rows-per-file",
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
    assert table["sample_id"].is_unique
    assert len(table) == 60
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


def test_compute_skips_nan_rows_and_lists_them(tmp_path, empty_workspace, caplog):
    features = np.ones((10, 2))
    features[[2, 7], 1] = np.nan
    features += np.arange(10)[:, None]
    np.save(tmp_path / "features.npy", features)
    np.save(tmp_path / "labels.npy", np.arange(10) % 2)
    out = tmp_path / "o.parquet"

    with caplog.at_level("INFO"):
        status = cli.main(
            ["compute", "--features", str(tmp_path / "features.npy"), "--labels", str(tmp_path / "labels.npy"), "--out", str(out)]
        )

    assert status == 0
    assert len(pd.read_parquet(out)) == 8
    skipped = pd.read_csv(tmp_path / "o.skipped.csv")
    assert len(skipped) == 2
    assert skipped["reason"].str.contains("non-finite").all()
    assert "skipped 2 items" in caplog.text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--features", "f.npy", "--dataset", "digits", "--model", "cnn"], "--features replaces --dataset and --model"),
        (["--labels", "l.npy"], "--labels applies to embeddings sources only"),
        (["--features", "absent.npy", "--labels", "l.npy"], "'absent.npy' not found"),
    ],
)
def test_compute_feature_option_errors(empty_workspace, capsys, arguments, message):
    assert cli.main(["compute", *arguments, "--out", "x.parquet"]) == 2
    assert message in capsys.readouterr().err


def test_compute_unlabelled_features_need_clusters(tmp_path, empty_workspace, capsys):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(20, 3)))

    assert cli.main(["compute", "--features", str(tmp_path / "f.npy"), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "pass --clusters K" in capsys.readouterr().err
    assert cli.main(["compute", "--features", str(tmp_path / "f.npy"), "--clusters", "2", "--out", str(tmp_path / "o.parquet")]) == 0


def _write_image_folder(root):
    rng = np.random.default_rng(3)
    for name, colour in {"chat": (220, 120, 40), "chien": (40, 120, 220)}.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, size=(10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    (root / "chat" / "broken.png").write_bytes(b"")
    return root


def test_compute_image_folder_writes_scores_and_skipped(tmp_path, caplog):
    root = _write_image_folder(tmp_path / "photos")
    out = tmp_path / "out" / "scores.parquet"
    workspace = tmp_path / "ws"

    with caplog.at_level("INFO"):
        status = cli.main(["compute", "--dataset", str(root), "--workspace", str(workspace), "--out", str(out)])

    assert status == 0
    table = pd.read_parquet(out)
    assert len(table) == 20
    assert {"sample_id", "path", "label", "class_name", "lsi", "mislabel_score"} <= set(table.columns)
    assert table.attrs["label_mapping"] == {"0": "chat", "1": "chien"}
    skipped = pd.read_csv(tmp_path / "out" / "scores.skipped.csv")
    assert skipped["item"].str.endswith("broken.png").tolist() == [True]
    assert "0 bytes" in skipped["reason"].iloc[0]
    assert (workspace / "features").is_dir()

    caplog.clear()
    with caplog.at_level("INFO"):
        assert cli.main(["compute", "--dataset", str(root), "--workspace", str(workspace), "--out", str(out)]) == 0
    assert "(from cache)" in caplog.text


def test_cache_list_prune_clear(tmp_path, capsys):
    root = _write_image_folder(tmp_path / "photos")
    workspace = tmp_path / "ws"
    (workspace).mkdir()
    (workspace / "curation.sqlite").write_bytes(b"flags")
    assert cli.main(["compute", "--dataset", str(root), "--workspace", str(workspace), "--out", str(tmp_path / "s.parquet")]) == 0
    capsys.readouterr()

    assert cli.main(["cache", "list", "--workspace", str(workspace)]) == 0
    listing = capsys.readouterr().out
    assert "features" in listing
    assert "results" in listing

    assert cli.main(["cache", "prune", "--max-size", "0B", "--workspace", str(workspace)]) == 0
    assert "deleted" in capsys.readouterr().out
    assert cli.main(["cache", "list", "--workspace", str(workspace)]) == 0
    assert "no cache entries" in capsys.readouterr().out
    assert (workspace / "curation.sqlite").read_bytes() == b"flags"

    assert cli.main(["cache", "clear", "--workspace", str(workspace)]) == 0
    assert "deleted 0 entries" in capsys.readouterr().out


def test_cache_prune_rejects_bad_size(capsys):
    with pytest.raises(SystemExit):
        cli.main(["cache", "prune", "--max-size", "lots"])
    assert "lots" in capsys.readouterr().err


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


def test_two_concurrent_runs_extract_once(tmp_path):
    root = _write_image_folder(tmp_path / "photos")
    workspace = tmp_path / "ws"
    command = [sys.executable, "-m", "lsi_app.cli", "compute", "--dataset", str(root), "--workspace", str(workspace)]
    runs = [
        subprocess.Popen([*command, "--out", str(tmp_path / f"run{i}.parquet")], stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    logs = [run.communicate(timeout=300)[1] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], logs
    assert sum("extracting features of" in log for log in logs) == 1
    first, second = (pd.read_parquet(tmp_path / f"run{i}.parquet") for i in range(2))
    pd.testing.assert_frame_equal(first, second)
    assert len(list((workspace / "features").glob("*.json"))) == 1


def test_cache_prune_requires_unit(capsys):
    with pytest.raises(SystemExit):
        cli.main(["cache", "prune", "--max-size", "1"])
    assert "add a unit" in capsys.readouterr().err


def test_run_stops_server_on_sigterm(tmp_path):
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "lsi_app.cli", "run", "--port", str(port), "--workspace", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/_stcore/health"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except OSError:
            time.sleep(0.3)

    wrapper.send_signal(signal.SIGTERM)
    wrapper.wait(timeout=30)
    time.sleep(1)

    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_compute_ray_engine_matches_local(tmp_path):
    pytest.importorskip("ray")
    rng = np.random.default_rng(5)
    labels = np.arange(300) % 3
    np.save(tmp_path / "f.npy", rng.normal(size=(300, 6)) + labels[:, None])
    np.save(tmp_path / "l.npy", labels)
    common = ["compute", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "l.npy"), "--hessian", "kron"]

    local = subprocess.run(
        [sys.executable, "-m", "lsi_app.cli", *common, "--workspace", str(tmp_path / "a"), "--out", str(tmp_path / "local.parquet")],
        capture_output=True, text=True,
    )
    ray = subprocess.run(
        [sys.executable, "-m", "lsi_app.cli", *common, "--engine", "ray", "--workspace", str(tmp_path / "b"), "--out", str(tmp_path / "ray.parquet")],
        capture_output=True, text=True, env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )

    assert local.returncode == 0, local.stderr
    assert ray.returncode == 0, ray.stderr
    first, second = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "ray.parquet")
    for column in ("lsi", "loss", "p_label", "margin", "mislabel_score"):
        np.testing.assert_allclose(second[column], first[column], rtol=1e-6, err_msg=column)
    assert second.attrs["lsi_settings"]["engine"] == "ray"


def test_compute_ray_engine_rejects_self_check(empty_workspace, capsys):
    assert cli.main(["compute", "--engine", "ray", "--self-check", "5", "--out", "x.parquet"]) == 2
    assert "--engine ray computes fast LSI only" in capsys.readouterr().err


def test_compute_rows_per_file_writes_parts(tmp_path, empty_workspace):
    rng = np.random.default_rng(6)
    labels = np.arange(50) % 2
    np.save(tmp_path / "f.npy", rng.normal(size=(50, 3)) + labels[:, None])
    np.save(tmp_path / "l.npy", labels)
    out = tmp_path / "scores.parquet"

    status = cli.main(
        ["compute", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "l.npy"), "--rows-per-file", "20", "--out", str(out)]
    )

    assert status == 0
    assert sorted(path.name for path in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    table = pd.read_parquet(out)
    assert len(table) == 50
    assert table["sample_id"].tolist() == sorted(table["sample_id"].tolist())
    assert (tmp_path / "scores.summary.csv").is_file()
