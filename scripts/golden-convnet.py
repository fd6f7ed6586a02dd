#!/usr/bin/env python3
"""Writes golden ConvNet forward outputs for Tests/DistillTests/Fixtures, computed independently with NumPy.

Run once (numpy only); the Swift test `NetworkTests.goldenForward` loads the parameters and input from the
fixture, runs FedDistill's ConvNet, and compares logits and embeddings. Parameter order: per block conv weight
(Cout, Cin, 3, 3), conv bias, norm gamma, norm beta; then classifier weight (K, F) and bias.
"""
import pathlib
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent / "Tests/DistillTests/Fixtures"
EPS = 1e-5


def conv(x, w, b, pad):
    n, c, h, wd = x.shape
    cout, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    out = np.zeros((n, cout, ho, wo), dtype=np.float64)
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, :, ky:ky + ho, kx:kx + wo]  # (n, c, ho, wo)
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
    return out + b[None, :, None, None]


def norm(x, kind, gamma, beta):
    if kind == "instance":
        mean = x.mean(axis=(2, 3), keepdims=True)
        var = x.var(axis=(2, 3), keepdims=True)
        return (x - mean) / np.sqrt(var + EPS) * gamma[None, :, None, None] + beta[None, :, None, None]
    if kind == "batch":  # evaluation mode with fresh running statistics (mean 0, variance 1)
        return x / np.sqrt(1 + EPS) * gamma[None, :, None, None] + beta[None, :, None, None]
    raise ValueError(kind)


def act(x, kind):
    return np.maximum(x, 0) if kind == "relu" else np.where(x > 0, x, 0.01 * x)


def pool(x, kind):
    n, c, h, w = x.shape
    x = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    return x.mean(axis=(3, 5)) if kind == "avg" else x.max(axis=(3, 5))


def write(name, shape, classes, depth, width, normkind, activation, pooling, seed):
    rng = np.random.default_rng(seed)
    directory = ROOT / name
    directory.mkdir(parents=True, exist_ok=True)
    x = rng.normal(size=shape).astype(np.float32)
    params = []
    h = x.astype(np.float64)
    channels, height = shape[1], shape[2]
    for block in range(depth):
        pad = 3 if block == 0 and channels == 1 and height == 28 else 1
        w = (rng.normal(size=(width, channels, 3, 3)) / np.sqrt(channels * 9)).astype(np.float32)
        b = (0.1 * rng.normal(size=width)).astype(np.float32)
        g = (1 + 0.2 * rng.normal(size=width)).astype(np.float32)
        be = (0.1 * rng.normal(size=width)).astype(np.float32)
        params += [w, b, g, be]
        h = pool(act(norm(conv(h, w, b, pad), normkind, g, be), activation), pooling)
        channels = width
        height = h.shape[2]
    features = h.reshape(h.shape[0], -1)
    wc = (rng.normal(size=(classes, features.shape[1])) / np.sqrt(features.shape[1])).astype(np.float32)
    bc = (0.1 * rng.normal(size=classes)).astype(np.float32)
    params += [wc, bc]
    logits = features @ wc.T.astype(np.float64) + bc
    np.save(directory / "input.npy", x)
    for i, p in enumerate(params):
        np.save(directory / f"param{i}.npy", p)
    np.save(directory / "embedding.npy", features.astype(np.float32))
    np.save(directory / "logits.npy", logits.astype(np.float32))
    (directory / "spec.txt").write_text(
        f"classes={classes}\ndepth={depth}\nwidth={width}\nnorm={normkind}\nactivation={activation}\npooling={pooling}\n")


write("convnet-mnist", (2, 1, 28, 28), 10, 3, 8, "instance", "relu", "avg", seed=1)
write("convnet-rgb-batchnorm-max", (2, 3, 16, 16), 4, 2, 6, "batch", "leakyrelu", "max", seed=2)
