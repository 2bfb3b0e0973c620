"""Command-line interface: ``lsi-app run`` serves the dashboard, ``lsi-app compute`` scores headless."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from lsi_app.data import DATASETS
from lsi_app.engine import Device, Hessian
from lsi_app.models import MODELS, check_model_source
from lsi_app.pipeline import DATASET_VARIABLE, MODEL_VARIABLE, PipelineSettings, run_pipeline

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
        help="score a dataset without the dashboard",
        description="Extract features, fit the probe posterior and write one row of scores per sample.",
    )
    _add_source_options(compute)
    compute.add_argument(
        "--hessian",
        default=Hessian.FULL.value,
        choices=[member.value for member in Hessian],
        help="posterior structure (default full)",
    )
    compute.add_argument(
        "--prior-precision",
        type=float,
        default=1.0,
        help="precision of the Gaussian prior on the probe weights (default 1.0; larger = stronger regularisation)",
    )
    compute.add_argument(
        "--device",
        default=Device.AUTO.value,
        choices=[member.value for member in Device],
        help="where to compute (default auto: CUDA when available, else CPU)",
    )
    compute.add_argument("--out", type=Path, required=True, help="output Parquet file, one row per sample")
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


def _check_sources(dataset: str, model: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset source {dataset!r}; available: {', '.join(sorted(DATASETS))}")
    check_model_source(model)


def _run_server(args: argparse.Namespace) -> int:
    _check_sources(args.dataset, args.model)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
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
    _check_sources(args.dataset, args.model)
    settings = PipelineSettings(
        dataset=args.dataset,
        model=args.model,
        hessian=args.hessian,
        prior_precision=args.prior_precision,
        device=args.device,
    )
    with tqdm(total=100, unit="%", desc="lsi", file=sys.stderr, bar_format="{l_bar}{bar}| {postfix}") as bar:

        def report(fraction: float, message: str) -> None:
            bar.n = round(100 * fraction)
            bar.set_postfix_str(message)

        result = run_pipeline(settings, progress=report)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    result.table.to_parquet(out, index=False)
    table = result.table
    accuracy = float((table["predicted"] == table["label"]).mean())
    logger.info(
        "wrote %d rows to %s: mean LSI %.4g nats, median %.4g, probe accuracy %.1f%%%s",
        len(table),
        out,
        table["lsi"].mean(),
        table["lsi"].median(),
        100 * accuracy,
        " (from cache)" if result.from_cache else "",
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
