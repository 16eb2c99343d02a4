#!/bin/bash
# A plan chosen while another program holds a CPU, then used on a quiet
# machine (BENCHMARKS.md, session 26). For each binary: a fresh plan cache,
# two `bench` runs of workload W on two threads while `yes` keeps one CPU
# busy, then three quiet runs of EPOCHS (default 5) epochs that read
# whatever the busy runs cached.
#
#   MNIST_DIR=../shared/datasets/mnist scripts/busy.sh T2 /tmp/old-mnist-mlp target/release/mnist-mlp
set -eu
W=$1; shift
for B in "$@"; do
  export XDG_CACHE_HOME=$(mktemp -d)
  echo "== $B (plan cache $XDG_CACHE_HOME)"
  yes > /dev/null & Y=$!
  for i in 1 2; do
    "$B" bench --workload "$W" --threads 2 --epochs 1 2>&1 | grep -E "^plan|samples/s" | sed "s/^/busy: /"
  done
  kill $Y; sleep 1
  for i in 1 2 3; do
    "$B" bench --workload "$W" --threads 2 --epochs "${EPOCHS:-5}" 2>&1 | grep -E "^plan|samples/s" | sed "s/^/quiet: /"
  done
  rm -rf "$XDG_CACHE_HOME"
done
