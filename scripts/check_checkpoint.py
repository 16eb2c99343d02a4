#!/usr/bin/env python3
"""Reads a mnist-mlp checkpoint with nothing but Python's `safetensors` and
NumPy, runs the network on the MNIST test set in a few lines of NumPy, and
prints the test accuracy, to compare with `mnist-mlp eval --model ... --json`.

    pip install numpy safetensors
    python3 scripts/check_checkpoint.py model.safetensors ../shared/datasets/mnist [--expect 0.9842]

Tensors: layers.{i}.weight [fan_in, fan_out] (y = x @ W + b), layers.{i}.bias
[fan_out]; the metadata's `layers` entry names the activations, e.g.
784,relu,512,relu,256,softmax,10. Exit status 1 if --expect differs.
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit(f"{d}: no {stem}[.gz]")


ACT = {
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "identity": lambda z: z,
    "softmax": lambda z: np.exp(z - z.max(1, keepdims=True)),  # argmax is all we need
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("data_dir")
    p.add_argument("--expect", type=float, help="accuracy that eval reported")
    a = p.parse_args()

    tensors = load_file(a.checkpoint)
    with safe_open(a.checkpoint, framework="np") as f:
        meta = f.metadata()
    spec = meta["layers"].split(",")
    acts = spec[1::2]
    x = read_idx(find(a.data_dir, "t10k-images-idx3-ubyte")).reshape(-1, int(spec[0])).astype(np.float32) / 255
    y = read_idx(find(a.data_dir, "t10k-labels-idx1-ubyte"))
    for i, act in enumerate(acts):
        x = ACT[act](x @ tensors[f"layers.{i}.weight"] + tensors[f"layers.{i}.bias"])
    acc = float((x.argmax(1) == y).mean())
    print(json.dumps({"checkpoint": a.checkpoint, "layers": meta["layers"], "test_accuracy": acc,
                      "tensors": sorted(k for k in tensors if k.startswith("layers."))}))
    if a.expect is not None and abs(acc - a.expect) > 1e-9:
        sys.exit(f"accuracy {acc} differs from the expected {a.expect}")


if __name__ == "__main__":
    main()
