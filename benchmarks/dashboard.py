"""Benchmark: dashboard latency at 50,000 samples (page switches, gallery filters, map).

The script writes 50,000 grayscale 28x28 images in torchvision's MNIST file
format: the 1,797 scikit-learn digits, enlarged, with noise, repeated. It
saves a small random TorchScript CNN and scores the images once through the
pipeline with the dashboard's settings (features, LSI, self-check and UMAP
map, timed). Then it runs the real dashboard script under Streamlit's
AppTest and times, server side:

- each page's first run after the result is in memory, and a second visit;
- gallery changes: sort column, class filter, search, score range, next page;
- ``query_gallery`` alone, over its filters.

AppTest times the Python script run that produces the page, not the
browser's drawing. The map's plotly spec size is reported because the
browser has to receive and draw it.

Run: .venv/bin/python -m benchmarks.dashboard [--samples 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from streamlit.testing.v1 import AppTest
from torch import nn

import lsi_app
from benchmarks._common import machine
from lsi_app.analysis.gallery import GalleryQuery, merge_curation, query_gallery
from lsi_app.pipeline import DATASET_VARIABLE, MODEL_VARIABLE, run_pipeline
from lsi_app.store import HOME_VARIABLE
from lsi_app.ui.state import default_settings

APP = str(Path(lsi_app.__file__).with_name("app.py"))
PAGES = ("gallery", "mislabeled", "classes", "embedding", "export", "overview")
IMAGE_EDGE = 28
#: Timed repeats of each gallery change; the median is reported.
REPEATS = 3


def write_mnist_format(root: Path, n_samples: int) -> None:
    """Write ``n_samples`` noisy enlarged digits as MNIST's raw training files under ``root/MNIST/raw``."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(digits.target), n_samples)
    small = (digits.images[picks] / 16 * 255).astype(np.uint8)
    large = np.stack([np.asarray(Image.fromarray(image).resize((IMAGE_EDGE, IMAGE_EDGE), Image.BILINEAR)) for image in small])
    noisy = np.clip(large + rng.normal(0, 20, size=large.shape), 0, 255).astype(np.uint8)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, images, labels in (("train", noisy, digits.target[picks]), ("t10k", noisy[:10], digits.target[picks][:10])):
        with open(raw / f"{split}-images-idx3-ubyte", "wb") as handle:
            handle.write(struct.pack(">IIII", 2051, len(images), IMAGE_EDGE, IMAGE_EDGE))
            handle.write(images.tobytes())
        with open(raw / f"{split}-labels-idx1-ubyte", "wb") as handle:
            handle.write(struct.pack(">II", 2049, len(labels)))
            handle.write(labels.astype(np.uint8).tobytes())


class SmallBackbone(nn.Module):
    """A random convolutional feature extractor with 64 outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000, help="number of images (default 50000)")
    args = parser.parse_args()
    print(machine())

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        write_mnist_format(scratch / "mnist", args.samples)
        torch.manual_seed(0)
        model_path = scratch / "backbone.pt"
        torch.jit.script(SmallBackbone().eval()).save(str(model_path))
        dataset = f"torchvision:mnist:{scratch / 'mnist'}"
        os.environ.update({DATASET_VARIABLE: dataset, MODEL_VARIABLE: str(model_path), HOME_VARIABLE: str(scratch / "ws")})

        settings = replace(default_settings(), image_size=IMAGE_EDGE + 4)
        started = time.perf_counter()
        result = run_pipeline(settings, workspace=scratch / "ws", dashboard=True)
        print(f"pipeline (extraction, LSI, self-check, UMAP) on {len(result.table):,} samples: "
              f"{time.perf_counter() - started:.1f} s")

        app = AppTest.from_file(APP, default_timeout=600)
        app.session_state["pipeline_settings"] = settings
        first_load = timed(app.run)
        print(f"first dashboard run (result read from the workspace cache): {first_load:.2f} s")

        rows = []
        for visit in ("first visit", "second visit"):
            for page in PAGES:
                seconds = timed(lambda: app.switch_page(f"ui/pages/{page}.py").run())
                assert not app.exception, app.exception
                rows.append((f"switch to {page} ({visit})", seconds))
        spec = json.loads(app.switch_page("ui/pages/embedding.py").run().get("plotly_chart")[0].proto.spec)
        points = sum(len(trace["customdata"]) for trace in spec["data"])

        app.switch_page("ui/pages/gallery.py").run()
        changes = {
            "sort by mislabel_score": lambda: app.selectbox(key="gallery-sort").set_value("mislabel_score").run(),
            "filter one class": lambda: app.multiselect(key="gallery-classes").set_value(["3"]).run(),
            "search id": lambda: app.text_input(key="gallery-search").set_value("train-0001").run(),
            "clear search": lambda: app.text_input(key="gallery-search").set_value("").run(),
            "next page": lambda: app.number_input(key="gallery-page").increment().run(),
        }
        for name, change in changes.items():
            rows.append((f"gallery: {name}", timed(change)))

        table = merge_curation(result.table, None)
        queries = [
            GalleryQuery(),
            GalleryQuery(sort_by="mislabel_score", classes=("3", "5")),
            GalleryQuery(search="train-00", score_min=1e-4),
        ]
        query_times = [statistics.median(timed(lambda: query_gallery(table, query)) for _ in range(REPEATS)) for query in queries]

    print("\n| action | server time (s) |")
    print("| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    print(f"\nquery_gallery alone on {len(table):,} rows: " + ", ".join(f"{1000 * t:.1f} ms" for t in query_times))
    print(f"map: {points:,} points, plotly spec {len(json.dumps(spec)) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
