"""Imported ImageNet networks on the CPU: import time, inference speed and memory, a top-9 pass over photos.

    python benchmarks/bench_import.py [--threads 2] [--images 256] [--archs alexnet_tv,vgg16] [--no-torch]

For each architecture (random weights in torchvision's layout, written to a temporary .npz -- the speed does not
depend on the values):
  * import: seconds for ``minicnn.weights.import_weights`` from the file (read, check, convert);
  * inference: images/s of the forward pass at 224x224, float32, best of --repeats, batch --batch;
  * memory: peak resident memory of those forward passes above the resident memory before them (the weights
    are already loaded), from Linux's VmHWM, reset through /proc/self/clear_refs before each measurement;
  * top-9: ``minicnn.visualize.top_k`` over --images photos read from a folder (a ``PhotoSet``: decode, resize,
    crop, normalise, batch by batch): the 9 strongest pool5 activations of all maps, then deconvnet projections of
    the 9 units of the 8 strongest maps (72 projections), with the peak memory above the weights.
With PyTorch importable, the same model in torch.nn (torchvision's layout) runs the same inputs in the same process
with the same thread count: the forward pass, and a top-9 pass written with torch (batched forward to pool5, a
running top-9, deconvnet projections through backward hooks on the ReLUs); ratios are minicnn / PyTorch time.
The photos are the bundled ones (scikit-image, scikit-learn, matplotlib), cut into --images random crops and saved
as PNG files first, so the top-9 pass includes reading them, as ``minicnn visualize --images`` does.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def rss_now_and_peak():
    """(VmRSS, VmHWM) in bytes, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                values[key[:-1]] = int(kb) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def reset_peak():
    """Make VmHWM start again from the current resident size (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn, repeats=1):
    """(best wall time of ``repeats`` calls, peak resident memory above the start, the last result)."""
    import gc
    gc.collect()
    reset_peak()
    start, _ = rss_now_and_peak()
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    _, peak = rss_now_and_peak()
    return min(times), max(0, peak - start), out


def random_state(arch, seed=0):
    """A torchvision-layout state dict with He-scaled random weights (NumPy; no torch needed)."""
    from minicnn.models import build
    from minicnn.weights.importer import ARCHITECTURES
    builder, layouts, shape = ARCHITECTURES[arch]
    net = build(builder, input_shape=shape, init="zeros")
    rng = np.random.default_rng(seed)
    state = {}
    for module, (layer, kind) in layouts["torchvision"].items():
        W = net[layer].params["W"]
        shape_w = W.shape if kind == "conv" else W.shape[::-1]
        fan_in = int(np.prod(shape_w[1:]))
        w = rng.standard_normal(shape_w, dtype=np.float32)
        w *= np.float32(np.sqrt(2.0 / fan_in))
        state[f"{module}.weight"] = w
        state[f"{module}.bias"] = rng.uniform(0, 0.05, W.shape[0] if kind == "conv" else W.shape[1]).astype(np.float32)
    return state


def torch_model(arch, state):
    import torch
    nn = torch.nn
    if arch == "vgg16":
        layers, c = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        features = nn.Sequential(*layers)
        classifier = nn.Sequential(nn.Linear(25088, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
                                   nn.Dropout(), nn.Linear(4096, 1000))
    else:
        features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096),
                                   nn.ReLU(), nn.Linear(4096, 1000))
    model = nn.Module()
    model.features, model.classifier = features, classifier
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()

    def forward(x):
        return model.classifier(torch.flatten(model.features(x), 1))   # adaptive pool: identity at 224
    return model, forward


def make_photos(folder, n, seed=0):
    """n PNG files: random crops (and mirror images) of the bundled photos, 256 to 400 px on a side."""
    from PIL import Image
    from minicnn.visualize.photos import bundled_photos
    rng = np.random.default_rng(seed)
    sources = [Image.open(f).convert("RGB") for f in bundled_photos()]
    files = []
    for i in range(n):
        im = sources[i % len(sources)]
        w, h = im.size
        s = int(rng.integers(min(200, w, h), min(w, h) + 1))
        x0, y0 = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        crop = im.crop((x0, y0, x0 + s, y0 + s)).resize((int(rng.integers(256, 401)),) * 2, Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        path = os.path.join(folder, f"photo{i:04d}.png")
        crop.save(path)
        files.append(path)
    return files


def torch_top9(model, photos, k=9, select=8, batch_size=8):
    """The same top-9 pass in PyTorch: forward to pool5, running top-k per map, deconvnet projections of the units
    of the ``select`` strongest maps through backward hooks that rectify the gradient at each ReLU."""
    import torch
    feats = model.features
    N = len(photos)
    best_v = best_i = best_p = None
    with torch.no_grad():
        for start in range(0, N, batch_size):
            xb = torch.from_numpy(np.asarray(photos[start:start + batch_size]))
            a = feats(xb)
            B, M, h, w = a.shape
            v, p = a.reshape(B, M, -1).max(dim=2)
            v, p = v.T, p.T
            idx = torch.arange(start, start + B).expand(M, B)
            if best_v is not None:
                v, p, idx = torch.cat([best_v, v], 1), torch.cat([best_p, p], 1), torch.cat([best_i, idx], 1)
            order = torch.argsort(-v, dim=1, stable=True)[:, :k]
            best_v, best_p, best_i = v.gather(1, order), p.gather(1, order), idx.gather(1, order)
    maps = torch.argsort(-best_v.mean(dim=1), stable=True)[:select]
    units = [(int(m), int(best_i[m, j]), int(best_p[m, j])) for m in maps for j in range(min(k, N))]
    hooks = [mod.register_full_backward_hook(lambda mod, gin, gout: (torch.relu(gout[0]),))
             for mod in feats if isinstance(mod, torch.nn.ReLU)]
    projections = []
    try:
        for start in range(0, len(units), batch_size):
            chunk = units[start:start + batch_size]
            x = torch.from_numpy(photos[[i for _, i, _ in chunk]]).requires_grad_()
            a = feats(x)
            g = torch.zeros_like(a)
            for n, (m, _, p) in enumerate(chunk):
                g[n, m].view(-1)[p] = a[n, m].reshape(-1)[p].detach()
            a.backward(g)
            projections.append(x.grad.numpy())
    finally:
        for hk in hooks:
            hk.remove()
    return np.concatenate(projections)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="2", help="BLAS / minicnn / torch threads (set before NumPy loads)")
    parser.add_argument("--archs", default="alexnet_tv,vgg16")
    parser.add_argument("--images", type=int, default=256, help="photos in the top-9 pass")
    parser.add_argument("--top9", default="alexnet_tv:256:8,vgg16:256:8", help="per architecture, photos:maps of "
                        "the top-9 pass (maps: how many of the strongest maps get their 9 units projected); photos "
                        "capped by --images")
    parser.add_argument("--batch", default="alexnet_tv:32,vgg16:8", help="inference batch per architecture")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes (best of)")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINICNN_NUM_THREADS"):
        os.environ[var] = args.threads
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(int(args.threads))
        except ImportError:
            torch = None
    from minicnn.visualize import top_k
    from minicnn.visualize.photos import PhotoSet
    from minicnn.weights import import_weights

    batches = dict((kv.split(":")[0], int(kv.split(":")[1])) for kv in args.batch.split(","))
    top9 = {kv.split(":")[0]: (int(kv.split(":")[1]), int(kv.split(":")[2])) for kv in args.top9.split(",")}
    tmp = tempfile.mkdtemp(prefix="bench_import_")
    print(f"threads {args.threads}, {args.images} photos, torch {'yes ' + torch.__version__ if torch else 'no'}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    photos = PhotoSet(make_photos(tmp, args.images), cache_size=0)
    print(f"wrote {args.images} photos in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for arch in args.archs.split(","):
        state = random_state(arch)
        path = os.path.join(tmp, f"{arch}.npz")
        np.savez(path, **state)
        t_import, m_import, net = measure(lambda: import_weights(arch, path))
        B = batches.get(arch, 8)
        x = np.random.default_rng(1).standard_normal((B, 3, 224, 224)).astype(np.float32)
        net.forward(x[:1])                                            # warm-up (C loops, BLAS threads)
        t_fwd, m_fwd, y = measure(lambda: net.forward(x), args.repeats)
        row = {"arch": arch, "import_s": t_import, "import_mem": m_import, "batch": B, "ips": B / t_fwd,
               "fwd_mem": m_fwd, "params_mb": net.num_params() * 4 / 2**20}
        n_photos, n_maps = top9.get(arch, (args.images, 8))
        pool = photos[:min(n_photos, args.images)]
        t_top, m_top, res = measure(lambda: top_k(net, pool, "pool5", k=9, select=n_maps, batch_size=8,
                                                  show_progress=False))
        row.update(top9_s=t_top, top9_mem=m_top, top9_n=len(pool), top9_maps=n_maps)
        print(f"{arch}: import {t_import:.1f} s; forward {B / t_fwd:.2f} images/s (batch {B}), "
              f"+{m_fwd / 2**20:.0f} MiB; "
              f"top-9 over {len(pool)} photos, {n_maps} maps projected: {t_top:.1f} s, +{m_top / 2**20:.0f} MiB",
              flush=True)
        if torch is not None:
            model, forward = torch_model(arch, state)
            xt = torch.from_numpy(x)
            with torch.no_grad():
                forward(xt[:1])
                t_tf, m_tf, yt = measure(lambda: forward(xt), args.repeats)
            rel = float(np.abs(y - yt.numpy()).max() / np.abs(yt.numpy()).max())
            t_tt, m_tt, proj = measure(lambda: torch_top9(model, pool, select=n_maps))
            row.update(torch_ips=B / t_tf, torch_fwd_mem=m_tf, torch_top9_s=t_tt, torch_top9_mem=m_tt, rel=rel)
            print(f"  torch: forward {B / t_tf:.2f} images/s, +{m_tf / 2**20:.0f} MiB (max rel. diff of logits "
                  f"{rel:.1e}); top-9 {t_tt:.1f} s, +{m_tt / 2**20:.0f} MiB; ratios minicnn/torch: forward time "
                  f"{(B / row['ips']) / (B / row['torch_ips']):.2f}x, top-9 {t_top / t_tt:.2f}x", flush=True)
            del model, forward, xt
        rows.append(row)
        del net, state
        os.unlink(path)
    print("\n| network | import | forward images/s (batch) | forward peak memory "
          "| top-9 (photos, maps): time, peak memory |"
          + (" torch forward images/s | torch top-9 | minicnn/torch forward time | minicnn/torch top-9 |"
             if torch else ""))
    for r in rows:
        line = (f"| {r['arch']} | {r['import_s']:.1f} s | {r['ips']:.2f} ({r['batch']}) "
                f"| +{r['fwd_mem'] / 2**20:.0f} MiB | ({r['top9_n']}, {r['top9_maps']}): {r['top9_s']:.1f} s, "
                f"+{r['top9_mem'] / 2**20:.0f} MiB |")
        if "torch_ips" in r:
            line += (f" {r['torch_ips']:.2f} | {r['torch_top9_s']:.1f} s, "
                     f"+{r['torch_top9_mem'] / 2**20:.0f} MiB | {r['torch_ips'] / r['ips']:.2f}x "
                     f"| {r['top9_s'] / r['torch_top9_s']:.2f}x |")
        print(line)
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
