"""Command-line interface: ``lsi-app run`` serves the dashboard, ``lsi-app compute`` scores headless."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from lsi_app.analysis import summarize_lsi
from lsi_app.data import DATASETS, check_dataset_source, labels_in_npz, load_features, load_labels
from lsi_app.engine import Device, Hessian, Method
from lsi_app.models import MODELS, check_model_source
from lsi_app.pipeline import DATASET_VARIABLE, MODEL_VARIABLE, PipelineSettings, run_pipeline, score_arrays

logger = logging.getLogger("lsi_app")

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"
APP_FILE = Path(__file__).with_name("app.py")


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

    compute = commands.add_parser(
        "compute",
        help="score a dataset or precomputed features without the dashboard",
        description=(
            "Score every sample with LSI and write one row per sample. Either --dataset/--model "
            "(features extracted here) or --features/--labels (features extracted elsewhere)."
        ),
    )
    _add_source_options(compute)
    compute.add_argument(
        "--features",
        type=Path,
        help="precomputed features, shape (n_samples, n_features), in .npy, .npz or .parquet; replaces --dataset/--model",
    )
    compute.add_argument(
        "--labels",
        type=Path,
        help="labels for --features in .npy, .npz or .parquet; strings or any integers, mapped to 0..C-1 "
        "(may be omitted when the --features .npz holds a 'labels' array)",
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
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="score the features as given instead of scaling each to zero mean and unit variance",
    )
    compute.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output Parquet file (.parquet), one row per sample; per-class summaries go beside it, "
        "e.g. scores.summary.csv for scores.parquet",
    )
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default="digits",
        help=f"dataset source (default digits; available: {', '.join(sorted(DATASETS))})",
    )
    parser.add_argument(
        "--model",
        default="cnn",
        help=f"feature extractor (default cnn, a small CNN trained in-app; available: {', '.join(MODELS)})",
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
    ]
    env = dict(os.environ, **{DATASET_VARIABLE: args.dataset, MODEL_VARIABLE: args.model})
    logger.info("serving %s on http://%s:%d", args.dataset, args.address, args.port)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130


def _compute(args: argparse.Namespace) -> int:
    settings = PipelineSettings(
        dataset=args.dataset,
        model=args.model,
        hessian=args.hessian,
        prior_precision=args.prior_precision,
        method=args.method,
        device=args.device,
        self_check=args.self_check,
        refine_top=args.refine_top,
        standardize=args.standardize,
    )
    if args.out.suffix.lower() != ".parquet":
        raise ValueError(f"--out {args.out} must end in .parquet; the scores are written as Parquet")
    if args.features is None and args.labels is not None:
        raise ValueError("--labels needs --features; to score a dataset source, use --dataset alone")
    if args.features is None:
        _check_sources(args.dataset, args.model)
    elif args.labels is None and not labels_in_npz(args.features):
        raise ValueError(f"--labels is missing; pass the labels file for {args.features}")

    bar_format = "{percentage:3.0f}%|{bar:30}| {elapsed} {desc}"
    # disable=None turns the bar off when stderr is not a terminal (logs, CI);
    # the log lines still report each step there.
    with tqdm(total=100, file=sys.stderr, bar_format=bar_format, disable=None) as bar:
        last_message = [""]

        def report(fraction: float, message: str) -> None:
            if bar.disable:
                if message != last_message[0] and not message.startswith(("Exact LSI: refit", "Choosing the prior")):
                    logger.info("%s", message)
                last_message[0] = message
                return
            bar.n = round(100 * fraction)
            bar.set_description_str(message, refresh=False)
            bar.refresh()

        if args.features is None:
            result = run_pipeline(settings, progress=report)
            table, from_cache = result.table, result.from_cache
            class_names = result.samples.class_names
        else:
            features = load_features(args.features)
            labels = load_labels(args.labels if args.labels is not None else args.features)
            table, from_cache = score_arrays(features, labels, settings, progress=report), False
            class_names = tuple(table.attrs["label_mapping"].values())

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    summary = summarize_lsi(table["lsi"].to_numpy(), table["label"].to_numpy(), class_names)
    summary_path = out.with_name(out.stem + ".summary.csv")
    summary.per_class.to_csv(summary_path)

    accuracy = float((table["predicted"] == table["label"]).mean())
    logger.info(
        "wrote %d rows to %s: mean LSI %.4g nats, median %.4g, probe accuracy %.1f%%%s; per-class summary in %s",
        len(table),
        out,
        summary.mean,
        summary.median,
        100 * accuracy,
        " (from cache)" if from_cache else "",
        summary_path,
    )
    check = table.attrs.get("lsi_settings", {}).get("self_check")
    if check:
        logger.info(
            "self-check on %d samples: Spearman %.4f, median relative error %.3g (fast against exact)",
            check["n_samples"],
            check["spearman"],
            check["median_relative_error"],
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return the process exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"run": _run_server, "compute": _compute}
    try:
        return handlers[args.command](args)
    except (ValueError, OSError) as error:
        print(f"lsi-app {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
