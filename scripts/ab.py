#!/usr/bin/env python3
"""Interleaved A/B runs of `mnist-mlp bench`, for effects smaller than this
host's run-to-run noise.

    scripts/ab.py WORKLOAD THREADS ROUNDS EPOCHS VARIANT [VARIANT ...]

A VARIANT is a binary path, optionally with extra bench flags after colons
and environment settings before an `@`:

    target/release/mnist-mlp
    target/release/mnist-mlp:--threading:blas
    MLP_BIG_COLS=500000:b@target/release/mnist-mlp

Every round runs each variant once (`bench --workload W --threads N
--epochs E --json`), in reversed order on odd rounds. Prints per variant the
median samples/s and the median of its per-round ratios to the first
variant (with their range): the ratio within a round cancels the host's
slow drift, which the medians alone do not. Where the bench reports it, the
same is printed for the 10th-percentile step time (as a speed ratio): other
tenants only ever add time, so the fastest steps resolve smaller effects.
"""
import json
import os
import statistics
import subprocess
import sys


def run(variant, workload, threads, epochs):
    env = dict(os.environ)
    spec = variant
    if "@" in spec:
        settings, spec = spec.split("@", 1)
        for kv in settings.split(","):
            k, v = kv.split("=", 1)
            env[k] = v
    parts = spec.split(":")
    cmd = [parts[0], "bench", "--workload", workload, "--threads", threads,
           "--epochs", epochs, "--json"] + parts[1:]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    return d["samples_per_s"], d.get("step_ms_p10")


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    workload, threads, rounds, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    variants = sys.argv[5:]
    res = {v: [] for v in variants}
    for r in range(rounds):
        order = variants[::-1] if r % 2 else variants
        for v in order:
            res[v].append(run(v, workload, threads, epochs))
    base = res[variants[0]]
    for v in variants:
        sps = [x[0] for x in res[v]]
        ratios = [x[0] / y[0] for x, y in zip(res[v], base)]
        print(f"{workload} threads={threads} {v}: median {statistics.median(sps):,.0f} samples/s, "
              f"ratio to the first {statistics.median(ratios):.3f} [{min(ratios):.2f}..{max(ratios):.2f}]")
        if all(x[1] for x in res[v] + base):
            p10 = [x[1] for x in res[v]]
            # Speed ratio from the fastest tenth of the steps: lower time, faster.
            r10 = [y[1] / x[1] for x, y in zip(res[v], base)]
            print(f"    10th-percentile step: median {statistics.median(p10):.3f} ms, "
                  f"speed ratio to the first {statistics.median(r10):.3f} [{min(r10):.2f}..{max(r10):.2f}]")


if __name__ == "__main__":
    main()
