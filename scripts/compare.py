#!/usr/bin/env python3
"""Side-by-side throughput: mnist-mlp vs the NumPy reference, and the sgemm limit.

For each thread count, measures the sgemm limit (bench_limit.py), then for each
workload alternates runs of `mnist-mlp bench` and `bench_numpy.py` (--rounds
times each), and prints the medians, their ratio and the fraction of the
physical limit (`bound_samples_per_s_performed`: peak sgemm over the FLOPs a
trainer must perform). All figures of one row come from the same window of
time. A column gives the pace of mnist-mlp's fast steps (rows per step
over its 10th-percentile step time, median over rounds; full-batch
workloads have one step per epoch and none): other tenants of a shared
machine only ever add time, so it shows what the code does when left
alone, where the epoch medians show what a user got. Two columns set
beside them what the linked OpenBLAS allows at that thread count
(`examples/gemm_ceiling --threads N`), as samples/s over the same limit:
the workload's products each on its own (operands hot in cache, best of
seven; on several threads each product split its fastest way), and the
same products one after the other in a step's order and layouts, with no
elementwise work between them, as fast steps (the 10th percentile of
single steps, the statistic of mnist-mlp's fast-steps column): what a
trainer that did nothing else would reach. `mnist-mlp bench` runs under `--plan auto` (the cached or measured plan)
unless MNIST_MLP_PLAN says otherwise; the machine (CPU model, OpenBLAS build)
and each run's plan source are printed above the table, with the CPUs other
programs and the host took while the planner measured and while each
round's epochs were timed (mnist-mlp's `busy.others`, NumPy's
`other_cores`): a round well above 0 was disturbed.

    pip install numpy threadpoolctl
    cargo build --release
    MNIST_DIR=../shared/datasets/mnist python3 scripts/compare.py --threads 1 2 --rounds 3

Options: --reference DIR (default ../shared/reference), --workloads T1 T2 ...,
--epochs N (timed epochs per run), --json FILE (all raw results), --ceiling
BIN (default target/release/examples/gemm_ceiling, built by `cargo build
--release --examples`; `none` leaves the column out).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    return [json.loads(l) for l in lines]


def steal_ticks():
    """(stolen, all) clock ticks of all CPUs from /proc/stat's first line
    (user, nice, system, idle, iowait, irq, softirq, steal); None where
    there is no such file."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(x) for x in fields[1:9]]
        return (ticks[7], sum(ticks)) if fields[0] == "cpu" and len(ticks) == 8 else None
    except (OSError, ValueError, IndexError):
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--workloads", nargs="+", default=["T1", "T2", "T3", "T4", "T5"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threading", default="split")
    p.add_argument("--reference", default=os.path.join(ROOT, "..", "shared", "reference"))
    p.add_argument("--json", help="write all raw results here")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "mnist-mlp"),
                   help="the mnist-mlp binary (a copy keeps a rebuild from changing it mid-run)")
    p.add_argument("--ceiling", default=os.path.join(ROOT, "target", "release", "examples", "gemm_ceiling"),
                   help="the gemm_ceiling example binary (`none`: no ceiling column)")
    a = p.parse_args()
    ceiling = a.ceiling if a.ceiling != "none" and os.path.exists(a.ceiling) else None
    if a.ceiling != "none" and not ceiling:
        print(f"no {a.ceiling}: the ceiling column is left out (cargo build --release --examples)", file=sys.stderr)
    steal0 = steal_ticks()
    env = dict(os.environ)
    binary = a.binary
    raw = []
    rows = []
    # Per row, each round's CPUs other programs and the host took while
    # mnist-mlp's epochs and NumPy's were timed.
    others = []
    def limit(t):
        r = run_json([sys.executable, os.path.join(a.reference, "bench_limit.py"), "--threads", str(t), "--sizes", "2048"], env)[0]
        raw.append(r)
        return r

    for t in a.threads:
        # The limit is the peak sgemm rate: measured before every workload and
        # after the last, the best of those measurements of this run is used
        # (a single measurement is easily disturbed on a shared machine).
        lims = [limit(t)]
        pending = []
        for w in a.workloads:
            ours, ref, fast, busy = [], [], [], []
            for _ in range(a.rounds):
                r = run_json([binary, "bench", "--workload", w, "--threads", str(t), "--threading", a.threading,
                              "--epochs", str(a.epochs), "--json"], env)[0]
                ours.append(r["samples_per_s"])
                busy.append(((r.get("busy") or {}).get("others"), None))
                if r.get("step_ms_p10"):
                    fast.append(r["rows_per_step"] / (r["step_ms_p10"] / 1e3))
                raw.append(r)
                r = run_json([sys.executable, os.path.join(a.reference, "bench_numpy.py"), "--workload", w,
                              "--threads", str(t), "--epochs", str(a.epochs)], env)[0]
                ref.append(r["samples_per_s"])
                busy[-1] = (busy[-1][0], r.get("other_cores"))
                raw.append(r)
            o, n = statistics.median(ours), statistics.median(ref)
            ceil = None
            if ceiling:
                r = run_json([ceiling, w, "--threads", str(t), "--json"], env)[0]
                raw.append(r)
                ceil = (r["samples_per_s"], r.get("step_order_samples_per_s"))
            pending.append((w, o, n, statistics.median(fast) if fast else None, ceil))
            others.append((w, t, busy))
            print(f"{w} threads={t}: ours {o:.0f} numpy {n:.0f} ratio {o / n:.2f}", file=sys.stderr, flush=True)
            lims.append(limit(t))
        lim = max(lims, key=lambda r: r["gflop_per_s_best"])
        print(f"threads={t}: sgemm GFLOP/s measured {[r['gflop_per_s_best'] for r in lims]}, using the best",
              file=sys.stderr, flush=True)
        for w, o, n, f, c in pending:
            # The physical limit: peak sgemm over the FLOPs a trainer must
            # perform (no input gradient for the first layer).
            bounds = lim.get("bound_samples_per_s_performed") or lim["bound_samples_per_s"]
            bound = bounds[w]
            rows.append((w, t, o, n, o / n, bound, o / bound, n / bound, lim["gflop_per_s_best"],
                         f / bound if f else None,
                         c[0] / bound if c else None, c[1] / bound if c and c[1] else None))
    steal1 = steal_ticks()
    if steal0 and steal1 and steal1[1] > steal0[1]:
        # A VM's hypervisor taking the vCPUs away slows both programs and
        # lengthens every join (BENCHMARKS.md, session 25).
        print(f"host steal during the comparison: {100 * (steal1[0] - steal0[0]) / (steal1[1] - steal0[1]):.1f}% of all CPU time")
    machine = next((r for r in raw if "cpu" in r), {})
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    print(f"machine: {machine.get('cpu', '?')}; {machine.get('blas', '?')}; "
          + (f"OPENBLAS_CORETYPE={pinned} in the environment (NumPy's and ours); " if pinned else "")
          + f"plans: {sorted({(r['workload'], r['threads'], r['planner']['source']) for r in raw if 'planner' in r})}")
    # What the planner saw while it measured (a run that reads its plan
    # from the cache measures nothing): others' cores and the host's steal.
    seen = [(r["workload"], r["threads"], r["planner"]["others_cores"], r["planner"]["source"])
            for r in raw if r.get("planner", {}).get("others_cores") is not None]
    if seen:
        print("planner measurements, CPUs other programs and the host took meanwhile: "
              + ", ".join(f"{w}/{t} {o:.2f}{' (busy: not cached)' if 'busy' in src else ''}"
                          for w, t, o, src in seen))
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    print("CPUs others took during the timed epochs, per round (mnist-mlp|NumPy): "
          + "; ".join(f"{w}/{t} " + " ".join(f"{fmt(a)}|{fmt(b)}" for a, b in rounds) for w, t, rounds in others))
    print("| workload | threads | mnist-mlp samples/s | NumPy samples/s | ratio | physical limit samples/s (sgemm GFLOP/s) | mnist-mlp % of limit | NumPy % of limit | mnist-mlp fast steps % of limit | OpenBLAS's products alone % of limit: each on its own | in step order |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    pct = lambda v: f"{100 * v:.0f}%" if v else "-"
    for w, t, o, n, r, b, fo, fn, gf, ff, fc, fs in rows:
        print(f"| {w} | {t} | {o:,.0f} | {n:,.0f} | {r:.2f} | {b:,.0f} ({gf:.0f}) | {100 * fo:.0f}% | {100 * fn:.0f}% | {pct(ff)} | {pct(fc)} | {pct(fs)} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
