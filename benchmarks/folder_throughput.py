"""Fingerprinting and segmenting a folder of 1000 micrographs: images per second, serial and on Dask (issue 10).

The micrographs are generated (two-phase random media rendered as noisy greyscale images, 128 x 128); the model
is a paper-000 ``conv`` VAE with 64-px patches, trained for one epoch (the cost of encoding does not depend on
the training). ``encode_folder`` gives one fingerprint per image (the mean over its windows).

    python benchmarks/folder_throughput.py [--n 1000]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from distributed import Client, LocalCluster

from napari_microfingerprint import encode_folder, make_micrograph, make_two_phase, segment_folder, train_vae
from napari_microfingerprint.core.threads import cpu_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp()) / "micrographs"
    folder.mkdir()
    t0 = time.perf_counter()
    images = []
    for k in range(args.n):
        truth = make_two_phase((128, 128), 0.3 + 0.3 * (k % 7) / 6, 2.0 + k % 5, seed=k)
        img = make_micrograph(truth, noise=0.08, seed=k).astype(np.float32)
        tifffile.imwrite(folder / f"m{k:04d}.tif", img)
        images.append(img)
    print(f"generated {args.n} micrographs in {time.perf_counter() - t0:.1f} s")
    model = train_vae(images[:16], architecture="conv", patch_size=64, latent_dim=32, epochs=1, device="cpu")
    print("load before:", os.getloadavg())
    print("| task | mode | images | seconds | images per second |")
    print("|---|---|---|---|---|")
    cluster = LocalCluster(n_workers=cpu_count(), threads_per_worker=1, processes=True, dashboard_address=None,
                           scheduler_kwargs={"dashboard_address": ":0"})
    client = Client(cluster)
    client.run(lambda: __import__("napari_microfingerprint"))  # workers import the package before timing
    try:
        for mode, c in (("serial", None), (f"Dask LocalCluster {cpu_count()} x 1 thread", client)):
            start = time.perf_counter()
            table = encode_folder(model, folder, client=c)
            sec = time.perf_counter() - start
            print(f"| encode_folder | {mode} | {len(table)} | {sec:.1f} | {len(table) / sec:.0f} |", flush=True)
            out = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            table = segment_folder(folder, out, client=c)
            sec = time.perf_counter() - start
            print(f"| segment_folder | {mode} | {len(table)} | {sec:.1f} | {len(table) / sec:.0f} |", flush=True)
    finally:
        client.close()
        cluster.close()
    print("load after:", os.getloadavg())


if __name__ == "__main__":
    main()
