"""Benchmark: an image folder end to end, first run against a cached second run.

The script writes a folder of synthetic JPEG photos (--images, default
2,000, 320x240 pixels, 10 classes, plus a few dirty files) and saves a
randomly initialised ResNet-18 state_dict. It then times ``lsi-app
compute`` on the folder with that model at --image-size (default 224).
Each run has its own process, so that peak memory is its own:

- first: scan, extract features, fit, score, write;
- second: the same command again, which must be a cache hit (no extraction
  and no fit);
- kron: the same features with ``--hessian kron``, which reuses the cached
  features and fits anew.

A fourth case measures the peak memory of thumbnailing one 6000x4000 JPEG
against decoding it whole.

Run: .venv/bin/python -m benchmarks.extraction [--images 2000] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from benchmarks._common import machine

N_CLASSES = 10
PHOTO_SIZE = (320, 240)
LARGE_PHOTO_SIZE = (6000, 4000)


def write_folder(root: Path, n_images: int) -> None:
    """Write ``n_images`` noisy colour photos in ``N_CLASSES`` folders, plus one 0-byte and one truncated file."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(N_CLASSES, 3))
    for index in range(n_images):
        label = index % N_CLASSES
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.normal(colours[label], 60, size=(PHOTO_SIZE[1] // 8, PHOTO_SIZE[0] // 8, 3))
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize(PHOTO_SIZE, Image.BILINEAR)
        image.save(folder / f"{index:06d}.jpg", quality=90)
    (root / "class_0" / "empty.jpg").write_bytes(b"")
    whole = (root / "class_1" / f"{1:06d}.jpg").read_bytes()
    (root / "class_1" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])


def run_compute(arguments: list[str], log: Path) -> dict:
    """Run ``lsi-app compute`` in a child process; return its wall time, own peak RSS and what it did."""
    started = time.perf_counter()
    with open(log, "w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "lsi_app.cli", "compute", *arguments], stderr=stderr)
        # wait4 returns the child's own resource usage, so each case reports its own peak.
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    output = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(output)
    return {
        "seconds": seconds,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
        "extracted": "extracting features of" in output,
        "from_cache": "(from cache)" in output,
    }


def thumbnail_memory(case: str, path: Path) -> float:
    """Peak resident memory, in MiB, that thumbnailing or fully decoding ``path`` adds in a fresh process.

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the
    current resident size (Linux 4.0 and later), so imports do not count.
    """
    code = (
        "import re, sys\n"
        "from lsi_app.data.images import ImageFiles\n"
        "def kib(field):\n"
        "    return int(re.search(field + r':\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "files = ImageFiles((sys.argv[2],))\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = kib('VmRSS')\n"
        "files.thumbnail(0) if sys.argv[1] == 'thumbnail' else files.load(0)\n"
        "print((kib('VmHWM') - before) / 1024)\n"
    )
    output = subprocess.run([sys.executable, "-c", code, case, str(path)], capture_output=True, text=True, check=True)
    return float(output.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="number of photos (default 2000)")
    parser.add_argument("--image-size", type=int, default=224, help="model input edge in pixels (default 224)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(machine())

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        root = scratch / "photos"
        started = time.perf_counter()
        write_folder(root, args.images)
        print(f"wrote {args.images} photos in {time.perf_counter() - started:.1f} s")
        torch.manual_seed(0)
        weights = scratch / "resnet18.pth"
        torch.save(torchvision.models.resnet18(num_classes=N_CLASSES).state_dict(), weights)

        common = [
            "--dataset", str(root),
            "--model", f"torchvision:resnet18:{weights}",
            "--image-size", str(args.image_size),
            "--device", args.device,
            "--workspace", str(scratch / "workspace"),
        ]
        rows = []
        for case, extra in (("first", []), ("second", []), ("kron", ["--hessian", "kron"])):
            result = run_compute([*common, *extra, "--out", str(scratch / f"{case}.parquet")], scratch / f"{case}.log")
            rows.append({"case": case, **result})
            print(json.dumps(rows[-1]))

        large = scratch / "large.jpg"
        noise = np.random.default_rng(1).integers(0, 256, size=(400, 600, 3), dtype=np.uint8)
        Image.fromarray(noise).resize(LARGE_PHOTO_SIZE, Image.BILINEAR).save(large, quality=90)
        thumbnail_mib = thumbnail_memory("thumbnail", large)
        decode_mib = thumbnail_memory("load", large)

    first = rows[0]["seconds"]
    print("\n| case | wall time (s) | peak RSS (GiB) | extracted | from cache |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['case']} | {row['seconds']:.1f} | {row['peak_rss_gib']:.2f} | "
            f"{'yes' if row['extracted'] else 'no'} | {'yes' if row['from_cache'] else 'no'} |"
        )
    print(f"\nfirst run: {args.images / first:.0f} images/s end to end; second run {first / rows[1]['seconds']:.1f}x faster")
    print(f"6000x4000 JPEG: thumbnail peak {thumbnail_mib:.1f} MiB, full decode {decode_mib:.1f} MiB")


if __name__ == "__main__":
    main()
