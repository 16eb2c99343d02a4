#!/usr/bin/env python3
"""Kill-and-resume soak (#23): ROUNDS times, start
`train --save --checkpoint-every 1 --metrics-out`, send SIGKILL or SIGINT
at a random moment, resume (killing again at random, at most 5 times), and
check against one uninterrupted run: the final weights bit for bit, and
every epoch's metrics line exactly once with the same figures.

    python3 scripts/kill_soak.py BINARY DATA_DIR [ROUNDS] [SEED]
"""
import json, os, random, shutil, signal, struct, subprocess, sys, tempfile, time

def tensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    base = 8 + n
    return {k: b[base + v['data_offsets'][0]: base + v['data_offsets'][1]]
            for k, v in h.items() if k.startswith('layers.')}

FIELDS = ('epoch', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'lr')

def lines(path):
    out = []
    for l in open(path):
        v = json.loads(l)
        out.append(tuple(v[k] for k in FIELDS))
    return out

def main():
    binary, data = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    epochs = 4
    common = ['--data-dir', data, '--hidden', '32', '--epochs', str(epochs), '--threads', '2',
              '--quiet', '--plan', 'default', '--checkpoint-every', '1']
    work = tempfile.mkdtemp()
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, 'cache'))
    ref = os.path.join(work, 'ref')
    os.mkdir(ref)
    t = time.time()
    subprocess.run([binary, 'train', *common, '--save', f'{ref}/m.safetensors',
                    '--metrics-out', f'{ref}/m.jsonl'], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    ref_took = time.time() - t
    want_t, want_m = tensors(f'{ref}/m.safetensors'), lines(f'{ref}/m.jsonl')
    good = 0
    stats = {'SIGKILL': 0, 'SIGINT': 0, 'kills': 0, 'resumes': 0}
    for r in range(rounds):
        d = os.path.join(work, f'r{r}')
        os.mkdir(d)
        m, mj = f'{d}/m.safetensors', f'{d}/m.jsonl'
        cmd = [binary, 'train', *common, '--save', m, '--metrics-out', mj]
        for attempt in range(6):
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if attempt < 5:
                time.sleep(rng.uniform(0.0, ref_took))
                if p.poll() is None:
                    sig = rng.choice([signal.SIGKILL, signal.SIGINT])
                    p.send_signal(sig)
                    stats[sig.name] += 1
                    stats['kills'] += 1
            p.wait()
            if p.returncode == 0:
                break
            if os.path.exists(m):
                cmd = [binary, 'train', '--resume', m, '--quiet']
                stats['resumes'] += 1
        ok = p.returncode == 0 and tensors(m) == want_t and lines(mj) == want_m
        good += ok
        if not ok:
            print(f'round {r}: rc {p.returncode}: {p.stderr.read().decode()[-300:]}')
            print(f'round {r}: rc {p.returncode}, weights equal {os.path.exists(m) and tensors(m) == want_t}, '
                  f'metrics {lines(mj) if os.path.exists(mj) else None}')
        shutil.rmtree(d)
    print(json.dumps({'rounds': rounds, 'identical_with_every_line_once': good, **stats,
                      'reference_seconds': round(ref_took, 2)}))
    shutil.rmtree(work)
    sys.exit(0 if good == rounds else 1)

main()
