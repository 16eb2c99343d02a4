#!/usr/bin/env python3
"""What --augment costs: epoch times with and without augmentation, side by
side in one run (interleaved rounds), per network, and their ratio.

    MNIST_DIR=../shared/datasets/mnist python3 scripts/augment_cost.py \
        [--binary target/release/mnist-mlp] [--rounds 3] [--epochs 2] [--threads 2]

Each round trains every (network, augmentation) pair for --epochs epochs
and keeps the median epoch time; the table gives the median over rounds
and the ratio of medians. Runs pin the built-in plan (--plan default) so
that both sides of a pair run the same step.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess

NETS = {
    "784-800-10": "784,relu,800,softmax,10",
    "T1 (784-1024-1024-10)": "784,relu,1024,relu,1024,softmax,10",
}
AUGMENTS = {
    "none": [],
    "affine+elastic": ["--augment", "affine:rotate=12,shift=2,scale=0.1", "--augment", "elastic:sigma=4,alpha=34"],
}


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def epoch_seconds(binary, layers, extra, epochs, threads):
    cmd = [binary, "train", "--layers", layers, "--epochs", str(epochs), "--threads", str(threads),
           "--schedule", "constant", "--plan", "default", "--json", "--quiet"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    secs = [json.loads(l)["seconds"] for l in out.splitlines() if '"event":"epoch"' in l]
    return statistics.median(secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/mnist-mlp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if "MNIST_DIR" not in os.environ:
        ap.error("set MNIST_DIR to the folder with MNIST's IDX files")
    times = {(n, g): [] for n in NETS for g in AUGMENTS}
    for r in range(a.rounds):
        for n, layers in NETS.items():
            for g, extra in AUGMENTS.items():
                t = epoch_seconds(a.binary, layers, extra, a.epochs, a.threads)
                times[(n, g)].append(t)
                print(f"round {r + 1}: {n:24} {g:15} {t:.3f} s/epoch", flush=True)
    print(f"\nmachine: {cpu_model()}, {os.cpu_count()} CPUs; {a.threads} threads, "
          f"{a.rounds} rounds of {a.epochs} epochs, MNIST (60,000 samples)\n")
    print("| network | epoch without (s) | epoch with affine+elastic (s) | ratio | per round |")
    print("| --- | --- | --- | --- | --- |")
    for n in NETS:
        base, aug = times[(n, "none")], times[(n, "affine+elastic")]
        rounds = ", ".join(f"{y / x:.2f}" for x, y in zip(base, aug))
        print(f"| {n} | {statistics.median(base):.3f} | {statistics.median(aug):.3f} | "
              f"{statistics.median(aug) / statistics.median(base):.2f}x | {rounds} |")


if __name__ == "__main__":
    main()
