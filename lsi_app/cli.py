"""Command-line interface: ``lsi-app run`` serves the dashboard, ``lsi-app compute`` scores headless."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from lsi_app.analysis import summarize_lsi
from lsi_app.data import BUILTIN_DATASETS, check_dataset_source
from lsi_app.engine import Device, Hessian, Method
from lsi_app.models import MODELS, check_model_source
from lsi_app.pipeline import (
    CLUSTERS_VARIABLE,
    DATASET_VARIABLE,
    DEFAULT_BATCH_SIZE,
    LABELS_VARIABLE,
    MODEL_VARIABLE,
    PipelineSettings,
    run_pipeline,
)
from lsi_app.scaleout.partitioned import write_parquet_partitioned
from lsi_app.store import HOME_VARIABLE, clear, format_size, list_entries, parse_size, prune, workspace_dir

logger = logging.getLogger("lsi_app")

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
APP_FILE = Path(__file__).with_name("app.py")

#: Dashboard theme, passed on the command line so that it applies from any working
#: folder (the repository's .streamlit/config.toml is only read from its root).
THEME = {
    "base": "dark",
    "primaryColor": "#4da3ff",
    "backgroundColor": "#0e1117",
    "secondaryBackgroundColor": "#1a1d24",
    "textColor": "#e6e6e6",
}

#: Largest upload the server accepts, in MB; the dashboard reads data from paths, not uploads.
MAX_UPLOAD_MB = 50

#: Progress messages repeated per sample or per grid point, kept out of the log.
_QUIET_PROGRESS = ("Exact LSI: refit", "Choosing the prior", "Extracting features:", "Scanning")

#: Skip reasons named in the summary line; the skipped CSV lists every item.
_LISTED_REASONS = 5


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsi-app",
        description="Rank dataset samples by Laplace Sample Information (LSI).",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="start the dashboard server",
        description="Start the Streamlit dashboard server and print its address.",
    )
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port to serve on (default {DEFAULT_PORT})")
    run.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"interface to bind (default {DEFAULT_ADDRESS}, this machine only; 0.0.0.0 exposes it to the network)",
    )
    _add_source_options(run)
    _add_workspace_option(run)

    compute = commands.add_parser(
        "compute",
        help="score a dataset without the dashboard",
        description=(
            "Open a dataset source, extract features with a model source, score every sample with LSI "
            "and write one row per sample. Features, probe and scores are cached in the workspace, so a "
            "second run with the same inputs extracts and fits nothing."
        ),
    )
    _add_source_options(compute)
    compute.add_argument(
        "--features",
        type=Path,
        help="precomputed features, shape (n_samples, n_features), in .npy, .npz or .parquet; "
        "short for --dataset embeddings:FILE --model identity",
    )
    compute.add_argument(
        "--feature-layer",
        metavar="NAME",
        help="module whose output gives the features, e.g. layer4 (default: the input of the model's last Linear)",
    )
    compute.add_argument(
        "--image-size",
        type=int,
        default=224,
        metavar="PIXELS",
        help="edge of the centre crop fed to torchvision and TorchScript models (default 224)",
    )
    compute.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"items per feature-extraction batch (default {DEFAULT_BATCH_SIZE})",
    )
    compute.add_argument(
        "--hessian",
        default=Hessian.FULL.value,
        choices=[member.value for member in Hessian],
        help="posterior structure (default full; kron and diag scale to many classes and features)",
    )
    compute.add_argument(
        "--prior-precision",
        type=_prior_precision,
        default=1.0,
        help="precision of the Gaussian prior on the probe weights, a number > 0 or 'auto' to maximise "
        "the Laplace marginal likelihood (default 1.0; larger = stronger regularisation)",
    )
    compute.add_argument(
        "--method",
        default=Method.FAST.value,
        choices=[member.value for member in Method],
        help="fast: closed form (default); exact: one leave-one-out refit per sample, slow",
    )
    compute.add_argument(
        "--device",
        default=Device.AUTO.value,
        choices=[member.value for member in Device],
        help="where to compute (default auto: CUDA when available, else CPU)",
    )
    compute.add_argument(
        "--self-check",
        type=int,
        default=0,
        metavar="N",
        help="also compute exact LSI on N random samples and log the agreement with the fast values (default 0)",
    )
    compute.add_argument(
        "--refine-top",
        type=int,
        default=0,
        metavar="K",
        help="replace the fast LSI of the K highest samples by exact values (default 0)",
    )
    compute.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="where extraction and scoring run: local (this process, default) or ray (one Ray task per "
        "shard of 20,000 samples; needs pip install 'lsi-app[ray]')",
    )
    compute.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="address of a running Ray cluster, e.g. ray://head:10001 or auto (default: start a local "
        "cluster on this machine for the run); every node must mount the workspace and model files at "
        "the same path",
    )
    compute.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="score the features as given instead of scaling each to zero mean and unit variance",
    )
    compute.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output Parquet file (.parquet), one row per sample; beside it go the per-class summary "
        "(scores.summary.csv for scores.parquet) and the skipped items with reasons (scores.skipped.csv)",
    )
    compute.add_argument(
        "--rows-per-file",
        type=int,
        metavar="N",
        help="write --out as a folder of Parquet parts of at most N rows each, in sample order "
        "(for very large runs; pandas.read_parquet reads the folder back)",
    )
    _add_workspace_option(compute)

    cache = commands.add_parser(
        "cache",
        help="list or delete cached features, probes and scores",
        description="Inspect and clean the workspace cache. Curation state (flags, notes) is never deleted.",
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_workspace_option(actions.add_parser("list", help="list cache entries, most recently used first"))
    clear_parser = actions.add_parser("clear", help="delete every cache entry")
    clear_parser.add_argument(
        "--kind",
        action="append",
        choices=["features", "probes", "results"],
        help="delete only this kind of entry (repeatable; default: all kinds)",
    )
    _add_workspace_option(clear_parser)
    prune_parser = actions.add_parser("prune", help="delete least recently used entries down to a size")
    prune_parser.add_argument(
        "--max-size",
        type=_size,
        required=True,
        metavar="SIZE",
        help="total size to keep, e.g. 500MB or 2GiB",
    )
    _add_workspace_option(prune_parser)
    return parser


def _add_workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help=f"cache and curation folder (default ${HOME_VARIABLE}, else ~/.cache/lsi-app)",
    )


def _size(text: str) -> int:
    if text.strip().replace(".", "", 1).isdigit():
        # A bare number would be bytes, and "1" would delete almost everything.
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: add a unit, e.g. 500MB or 2GiB")
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="digits",
        metavar="SRC",
        help=f"dataset source (default digits): {', '.join(BUILTIN_DATASETS)}, an image folder (one "
        "sub-folder per class), a manifest .csv/.parquet (path,label[,split]), a text .csv (text,label), "
        "embeddings .npy/.npz/.parquet, or torchvision:NAME:ROOT (cifar10, cifar100, mnist, fashionmnist "
        "already on disk; NAME-test for the test split)",
    )
    parser.add_argument(
        "--model",
        default="auto",
        metavar="SRC",
        help=f"feature extractor (default auto: cnn for images, minilm for text, identity for embeddings); "
        f"{', '.join(MODELS)}, torchvision:ARCH[:WEIGHTS_FILE], or a TorchScript file",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        help="labels for an embeddings source, in .npy, .npz or .parquet; strings or any integers, mapped "
        "to 0..C-1 (may be omitted when the .npz or .parquet holds a 'label' array)",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=0,
        metavar="K",
        help="for unlabelled data: score against K k-means clusters of the features (default 0: labels required)",
    )


def _prior_precision(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: pass a number > 0 or 'auto'") from None


def _check_sources(dataset: str, model: str) -> None:
    check_dataset_source(dataset)
    check_model_source(model)


def _run_server(args: argparse.Namespace) -> int:
    _check_sources(args.dataset, args.model)
    if args.labels is not None and not args.labels.is_file():
        raise ValueError(f"--labels file {args.labels} not found")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((args.address, args.port))
        except OSError as error:
            raise ValueError(
                f"cannot serve on {args.address}:{args.port} ({error.strerror}); pass a free port with --port"
            ) from None
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_FILE),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
    ]
    for option, value in THEME.items():
        command += [f"--theme.{option}", value]
    env = dict(os.environ, **{DATASET_VARIABLE: args.dataset, MODEL_VARIABLE: args.model})
    env[CLUSTERS_VARIABLE] = str(args.clusters)
    if args.labels is not None:
        env[LABELS_VARIABLE] = str(args.labels.resolve())
    if args.workspace is not None:
        env[HOME_VARIABLE] = str(args.workspace.resolve())
    logger.info("serving %s on http://%s:%d", args.dataset, args.address, args.port)
    server = subprocess.Popen(command, env=env)

    def stop_server(signal_number, frame) -> None:
        # Without this, SIGTERM would end this wrapper and leave Streamlit serving the port.
        server.terminate()

    previous = signal.signal(signal.SIGTERM, stop_server)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _compute(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".parquet":
        raise ValueError(f"--out {args.out} must end in .parquet; the scores are written as Parquet")
    dataset, model = args.dataset, args.model
    if args.features is not None:
        if dataset != "digits" or model not in ("auto", "identity"):
            raise ValueError("--features replaces --dataset and --model; pass either --features or --dataset/--model")
        dataset, model = f"embeddings:{args.features}", "identity"
    settings = PipelineSettings(
        dataset=dataset,
        model=model,
        labels=str(args.labels) if args.labels is not None else None,
        clusters=args.clusters,
        feature_layer=args.feature_layer,
        image_size=args.image_size,
        hessian=args.hessian,
        prior_precision=args.prior_precision,
        method=args.method,
        device=args.device,
        self_check=args.self_check,
        refine_top=args.refine_top,
        standardize=args.standardize,
        batch_size=args.batch_size,
        engine=args.engine,
        ray_address=args.ray_address,
    )
    settings.validate()
    if args.rows_per_file is not None and args.rows_per_file < 1:
        raise ValueError(f"--rows-per-file must be >= 1, got {args.rows_per_file}")

    bar_format = "{percentage:3.0f}%|{bar:30}| {elapsed} {desc}"
    # disable=None turns the bar off when stderr is not a terminal (logs, CI);
    # the log lines still report each step there.
    with tqdm(total=100, file=sys.stderr, bar_format=bar_format, disable=None) as bar:
        last_message = [""]

        def report(fraction: float, message: str) -> None:
            if bar.disable:
                if message != last_message[0] and not message.startswith(_QUIET_PROGRESS):
                    logger.info("%s", message)
                last_message[0] = message
                return
            bar.n = round(100 * fraction)
            bar.set_description_str(message, refresh=False)
            bar.refresh()

        result = run_pipeline(settings, progress=report, workspace=args.workspace)

    table = result.table
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.rows_per_file:
        write_parquet_partitioned(table, out, args.rows_per_file, overwrite=True)
    else:
        table.to_parquet(out, index=False)
    summary = summarize_lsi(table["lsi"].to_numpy(), table["label"].to_numpy(), result.samples.class_names)
    summary_path = out.with_name(out.stem + ".summary.csv")
    summary.per_class.to_csv(summary_path)
    skipped = result.skipped
    skipped_path = out.with_name(out.stem + ".skipped.csv")
    skipped.to_csv(skipped_path, index=False)

    accuracy = float((table["predicted"] == table["label"]).mean())
    logger.info(
        "wrote %d rows to %s: mean LSI %.4g nats, median %.4g, probe accuracy %.1f%%%s; per-class summary in %s",
        len(table),
        out,
        summary.mean,
        summary.median,
        100 * accuracy,
        " (from cache)" if result.from_cache else "",
        summary_path,
    )
    if result.samples.pseudo_labels:
        logger.info("labels are %d k-means clusters of the features, not given labels", result.samples.n_classes)
    empty = summary.per_class.loc[summary.per_class["count"] == 0, "class_name"].tolist()
    if empty:
        logger.warning("classes with 0 samples: %s", ", ".join(empty))
    if len(skipped):
        reasons = skipped["reason"].str.replace(r" \(row \d+\)$", "", regex=True).value_counts()
        listed = "; ".join(f"{count} x {reason}" for reason, count in reasons.head(_LISTED_REASONS).items())
        logger.warning("skipped %d items (%s); the full list is in %s", len(skipped), listed, skipped_path)
    check = table.attrs.get("lsi_settings", {}).get("self_check")
    if check:
        logger.info(
            "self-check on %d samples: Spearman %.4f, median relative error %.3g (fast against exact)",
            check["n_samples"],
            check["spearman"],
            check["median_relative_error"],
        )
    return 0


def _cache(args: argparse.Namespace) -> int:
    root = workspace_dir(args.workspace)
    if args.action == "list":
        entries = list_entries(root)
        if entries.empty:
            print(f"no cache entries in {root}")
            return 0
        shown = entries.assign(
            size=entries["size_bytes"].map(format_size),
            last_used=entries["last_used"].dt.strftime("%Y-%m-%d %H:%M"),
        )[["kind", "key", "size", "last_used", "description"]]
        print(shown.to_string(index=False))
        print(f"{len(entries)} entries, {format_size(int(entries['size_bytes'].sum()))} in {root}")
        return 0
    if args.action == "clear":
        count, size = clear(root, kinds=args.kind)
        print(f"deleted {count} entries ({format_size(size)}) from {root}")
        return 0
    count, size = prune(root, args.max_size)
    print(f"deleted {count} least recently used entries ({format_size(size)}) from {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"run": _run_server, "compute": _compute, "cache": _cache}
    try:
        return handlers[args.command](args)
    except (ValueError, OSError, ImportError) as error:
        print(f"lsi-app {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # Failures this package raises on purpose (such as a Ray shard that kept failing)
        # carry a message for the user; anything else keeps its traceback.
        if not type(error).__module__.startswith("lsi_app."):
            raise
        print(f"lsi-app {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
