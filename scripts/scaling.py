#!/usr/bin/env python3
"""Thread scaling: `mnist-mlp bench --limit` at 1, 2, 4, ... threads.

For each round, each thread count and each workload, runs

    mnist-mlp bench --workload W --threads N --epochs E --limit --json

(the planner on: `--plan auto` unless MNIST_MLP_PLAN says otherwise; the
peak sgemm rate of the linked OpenBLAS on the same N threads measured
before and after the epochs, the best counting) and prints, per workload
and thread count, the medians over the rounds: samples/s, the speedup over
one thread and the parallel efficiency (speedup / N), the physical limit at
N threads and the run's fraction of it, the fraction of its fast steps
(10th-percentile step; none for a full batch), how the sgemm peak itself
scaled, the most CPUs other programs and the host took during a run's
timed epochs (`bench`'s `busy.others`: well above 0, the row was
disturbed), and the plan the planner chose. Rounds go over every thread count
in turn, so a slow minute of a shared machine falls on all of them alike.

    cargo build --release
    MNIST_DIR=../shared/datasets/mnist python3 scripts/scaling.py --threads 1 2 4 8 16

Options: --workloads T1 T4 T5 (default), --rounds R (default 2), --epochs E
(timed epochs per run, default 2), --binary PATH, --json FILE (every raw
result), --max-seconds S (start no run after S seconds: the table then
holds what was measured, and says which runs are missing), --profile (each
run adds one epoch with the step's timers on, `bench --profile`, and a
second table gives where a step's thread-time went at each thread count:
each kind of work, waiting at the joins before blocks start and after they
end, the serial part; medians over the rounds), --ceiling BIN (the
`gemm_ceiling` example, `cargo build --release --examples`: in the first
round, after each workload's run, what OpenBLAS's products alone allow
at that thread count, as fractions of the run's limit: each product on
its own, split its fastest way, and the step's products in step order as
fast steps, the statistic of the fast-steps column).
Needs nothing but the binary, its OpenBLAS and the data: it runs on a
machine without Rust or NumPy.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd):
    """The JSON object `cmd` prints on a line of its own, and its stderr;
    exits with that stderr where the command fails."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(next(l for l in out.stdout.splitlines() if l.startswith("{"))), out.stderr


def bench(binary, workload, threads, epochs, profile=False):
    cmd = [binary, "bench", "--workload", workload, "--threads", str(threads),
           "--epochs", str(epochs), "--limit", "--json"] + (["--profile"] if profile else [])
    r, err = run_json(cmd)
    # The plan as `bench` prints it on stderr: "plan <fields> (<source>)".
    line = next((l for l in err.splitlines() if l.startswith("plan ")), "plan ?")
    r["plan_line"] = line[len("plan "):].split(" (")[0]
    return r


def cpus():
    """The logical CPUs this process may run on (its affinity, where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads():
    n = cpus()
    ts, t = [], 1
    while t < n:
        ts.append(t)
        t *= 2
    return ts + [n]


def pct(x):
    return f"{100 * x:.0f}%" if x is not None else "-"


def ceiling_cell(c, lim):
    """gemm_ceiling's two figures as fractions of the limit `lim` (samples/s)."""
    if not c:
        return " - |"
    return f" {pct(c['samples_per_s'] / lim)} \\| {pct(c.get('step_order_samples_per_s', 0) / lim)} |"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=default_threads())
    p.add_argument("--workloads", nargs="+", default=["T1", "T4", "T5"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--json", help="write every raw result here")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "mnist-mlp"))
    p.add_argument("--profile", action="store_true",
                   help="also profile one epoch per run (bench --profile) and print where the time went")
    p.add_argument("--ceiling", help="the gemm_ceiling example binary: OpenBLAS's products alone per thread count")
    a = p.parse_args()
    if 1 not in a.threads:
        sys.exit("--threads must include 1: speedups are over one thread")

    def others(r):
        """CPUs other programs and the host took during the timed epochs."""
        b = r.get("busy")
        return "-" if not b else f"{b['others']:.2f}"

    start = time.time()
    runs = {}  # (workload, threads) -> [result]
    ceilings = {}  # (workload, threads) -> gemm_ceiling's result
    raw, skipped = [], 0
    for rnd in range(a.rounds):
        for t in a.threads:
            for w in a.workloads:
                if a.max_seconds is not None and time.time() - start > a.max_seconds:
                    skipped += 1
                    continue
                r = bench(a.binary, w, t, a.epochs, a.profile)
                r["round"] = rnd
                raw.append(r)
                runs.setdefault((w, t), []).append(r)
                if a.ceiling and rnd == 0:
                    ceilings[(w, t)] = run_json([a.ceiling, w, "--threads", str(t), "--json"])[0]
                    raw.append(ceilings[(w, t)])
                print(f"[{time.time() - start:6.0f} s] round {rnd + 1} {w} {t:>2} threads: "
                      f"{r['samples_per_s']:,.0f} samples/s, {pct(r['limit']['fraction'])} of the limit, "
                      f"others took {others(r)} CPUs",
                      file=sys.stderr, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1)
    if not raw:
        sys.exit("no run fitted in --max-seconds")

    first = next(r for r in raw if "cpu" in r)
    print(f"machine: {first['cpu']}, {cpus()} logical CPUs; {first['blas']}")
    print(f"`scripts/scaling.py --threads {' '.join(map(str, a.threads))} --workloads {' '.join(a.workloads)} "
          f"--rounds {a.rounds} --epochs {a.epochs}`; medians over the rounds"
          + (f"; {skipped} runs left out for --max-seconds" if skipped else ""))
    over = [t for t in a.threads if t > cpus()]
    if over:
        print(f"threads {', '.join(map(str, over))}: more than the {cpus()} logical CPUs, "
              "so threads share cores (correctness, not speed)")
    print()
    print("| workload | threads | runs | samples/s | speedup | parallel efficiency | limit samples/s "
          "(sgemm GFLOP/s) | % of limit | fast steps % | sgemm scaling | others' CPUs (most) | plan |"
          + (" OpenBLAS's products alone % of limit: each on its own \\| in step order |" if a.ceiling else ""))
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if a.ceiling else ""))
    for w in a.workloads:
        base = runs.get((w, 1))
        base_sps = statistics.median(r["samples_per_s"] for r in base) if base else None
        base_peak = statistics.median(max(r["limit"]["sgemm_gflop_per_s"]) for r in base) if base else None
        for t in a.threads:
            rs = runs.get((w, t))
            if not rs:
                continue
            sps = statistics.median(r["samples_per_s"] for r in rs)
            lim = statistics.median(r["limit"]["samples_per_s"] for r in rs)
            peak = statistics.median(max(r["limit"]["sgemm_gflop_per_s"]) for r in rs)
            frac = statistics.median(r["limit"]["fraction"] for r in rs)
            fast = [r["limit"].get("fast_steps_fraction") for r in rs]
            fast = statistics.median(fast) if all(f is not None for f in fast) else None
            speedup = sps / base_sps if base_sps else None
            plans = sorted({r["plan_line"] for r in rs})
            print(f"| {w} | {t} | {len(rs)} | {sps:,.0f} | "
                  + (f"{speedup:.2f}x | {pct(speedup / t)}" if speedup else "- | -")
                  + f" | {lim:,.0f} ({peak:.0f}) | {pct(frac)} | {pct(fast)} | "
                  + (f"{peak / base_peak:.2f}x" if base_peak else "-")
                  + f" | {max((others(r) for r in rs), key=lambda v: -1.0 if v == '-' else float(v))}"
                  + f" | {'; '.join(plans)} |"
                  + (ceiling_cell(ceilings.get((w, t)), lim) if a.ceiling else ""))
    if a.profile:
        profile_table(a, runs)


def profile_table(a, runs):
    """Thread-ms per step by kind of work, the waits and the serial part,
    medians over the rounds (`bench --profile`)."""
    kinds = None
    rows = []
    for w in a.workloads:
        for t in a.threads:
            ps = [r["profile"] for r in runs.get((w, t), []) if r.get("profile")]
            if not ps:
                continue
            kinds = kinds or [k for k, _ in ps[0]["work_ms"]]
            med = lambda f: statistics.median(f(p) for p in ps)
            cells = [med(lambda p: p["step_ms"]), med(lambda p: p["step_ms"] * p["blocks"])]
            cells += [med(lambda p, i=i: p["work_ms"][i][1]) for i in range(len(kinds))]
            wait = (f"{med(lambda p: p['waiting_ms']):.3f} ({med(lambda p: p['start_wait_ms']):.3f}"
                    f" + {med(lambda p: p['end_wait_ms']):.3f})")
            rows.append(f"| {w} | {t} | " + " | ".join(f"{c:.3f}" for c in cells)
                        + f" | {wait} | {med(lambda p: p['serial_ms']):.3f} |")
    if not rows:
        return
    print()
    print("Where a step's thread-time went (`bench --profile`: one more epoch with the timers on; "
          "thread-ms per step, medians over the rounds):")
    print()
    print("| workload | threads | step ms | thread-ms | " + " | ".join(kinds)
          + " | waiting at joins (before blocks + after) | serial |")
    print("|" + " --- |" * (6 + len(kinds)))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
