#!/usr/bin/env bash
# Side-by-side throughput of several commits (what each optimization bought).
# Builds each commit in a temporary worktree, then runs `mnist-mlp bench` for
# every workload and binary in interleaved rounds and prints the medians.
#
#   MNIST_DIR=../shared/datasets/mnist scripts/ablation.sh "T1 T2 T3 T5" 2 3 c632d6a 6bdb400 HEAD
#   (workloads, threads, rounds, commits...; "HEAD:blas" runs HEAD with --threading blas)
set -euo pipefail
workloads=$1 threads=$2 rounds=$3
shift 3
root=$(git rev-parse --show-toplevel)
out=$(mktemp -d)
declare -A bin flag
for spec in "$@"; do
  c=${spec%%:*}
  pol=split
  [[ $spec == *:* ]] && pol=${spec#*:}
  sha=$(git -C "$root" rev-parse --short "$c")
  if [[ ! -x $out/mnist-mlp-$sha ]]; then
    wt=$out/wt-$sha
    git -C "$root" worktree add -q "$wt" "$sha"
    # One target directory for all commits: the dependencies build once.
    (cd "$wt" && CARGO_TARGET_DIR=$out/target cargo build --release -q)
    cp "$out/target/release/mnist-mlp" "$out/mnist-mlp-$sha"
    git -C "$root" worktree remove --force "$wt"
  fi
  bin[$spec]=$out/mnist-mlp-$sha
  flag[$spec]=$pol
done
for w in $workloads; do
  for r in $(seq "$rounds"); do
    for spec in "$@"; do
      extra=()
      [[ ${flag[$spec]} == blas ]] && extra=(--threading blas)
      # Older commits have no --threading flag: pass it only when asked for.
      v=$("${bin[$spec]}" bench --workload "$w" --threads "$threads" --epochs 3 --json "${extra[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["samples_per_s"])')
      echo "$w $spec $v" >> "$out/results"
    done
  done
done
python3 - "$out/results" "$@" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
specs = sys.argv[2:]
ws = sorted({r[0] for r in rows})
print("| workload | " + " | ".join(specs) + " |")
print("| --- |" + " --- |" * len(specs))
for w in ws:
    meds = [statistics.median(float(r[2]) for r in rows if r[0] == w and r[1] == s) for s in specs]
    print(f"| {w} | " + " | ".join(f"{m:,.0f} ({m / meds[0]:.2f}x)" for m in meds) + " |")
PY
