#!/usr/bin/env python3
"""Renders the first test digit of each class of MNIST as dark ink on gray
paper (level PAPER), upscaled 4x into a 160x160 page, as PNG files; then
asks each binary to predict them and counts right answers of ten.
    python3 gray_paper.py MNIST_DIR MODEL OUT_DIR BIN [BIN...]"""
import gzip, struct, subprocess, sys, zlib, os, json
import numpy as np

def idx(path):
    b = gzip.open(path).read()
    nd = b[3]
    dims = struct.unpack('>' + 'I' * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)

def png(path, a):
    h, w = a.shape
    raw = b''.join(b'\x00' + a[y].tobytes() for y in range(h))
    def chunk(t, d):
        c = struct.pack('>I', len(d)) + t + d
        return c + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) \
        + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    open(path, 'wb').write(data)

d, model, out, bins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
X = idx(os.path.join(d, 't10k-images-idx3-ubyte.gz'))
Y = idx(os.path.join(d, 't10k-labels-idx1-ubyte.gz'))
os.makedirs(out, exist_ok=True)
first = [int(np.argmax(Y == c)) for c in range(10)]
results = {}
for paper in (180, 200, 225, 245):
    files = []
    for c, i in enumerate(first):
        ink = X[i].astype(np.float64) / 255.0            # 1 = ink
        big = np.kron(ink, np.ones((4, 4)))               # 112x112
        page = np.zeros((160, 160)); page[24:136, 24:136] = big
        gray = paper * (1 - page) + 20 * page             # dark ink (20) on paper
        f = os.path.join(out, f'p{paper}-{c}.png')
        png(f, np.clip(gray, 0, 255).astype(np.uint8))
        files.append(f)
    for b in bins:
        r = subprocess.run([b, 'predict', '--model', model, '--json', *files], capture_output=True, text=True)
        got = [json.loads(l)['class'] for l in r.stdout.splitlines()]
        right = sum(int(g == c) for c, g in enumerate(got))
        results.setdefault(b, {})[paper] = (right, got)
for b, r in results.items():
    print(b)
    for paper, (right, got) in r.items():
        print(f'  paper {paper}: {right}/10 right  predicted {got}')
