#!/usr/bin/env python
"""Train the small CLIP "ceir-world" contrastively on captioned images of ceir_sdk.worlds.

    HF_HUB_OFFLINE=1 python scripts/train_world_clip.py --out plugins/open-clip/src/ceir_open_clip/world_model

Half of every batch comes from world10 and half from world100_20 (train split only, fresh
samples every step, so the test split the benchmark uses is never seen). The architecture is
the open_clip config ceir-world.json next to the output; the checkpoint is an open_clip state
dict in safetensors, loadable with open_clip.create_model_and_transforms(name, pretrained=path).
Deterministic for a given seed and thread count on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without an install
DEFAULT_OUT = ROOT / "plugins/open-clip/src/ceir_open_clip/world_model"
NAME = "ceir-world"


def pixels_to_tensor(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, H, W), as open_clip's transform does."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def make_batch(step: int, batch_size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Step ``step``'s (images, captions): half world10, half world100_20, train split."""
    from ceir_sdk.worlds import World

    half = batch_size // 2
    images, captions = [], []
    for name in ("world10", "world100_20"):
        b = next(World(name, 32, seed).batches(half, "train", batch_size=half, start=step * half))
        images.append(b.images)
        captions.extend(b.captions)
    return np.concatenate(images), captions


def batch_stream(batch_size: int, steps: int, seed: int, workers: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Batches for steps 0..steps-1; fresh samples every step. Content depends only on the step."""
    if workers > 0:
        # Processes draw ahead (for a GPU, where drawing is the bottleneck); order is kept.
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as procs:
            yield from procs.imap(partial(make_batch, batch_size=batch_size, seed=seed), range(steps), chunksize=4)
        return
    make = partial(make_batch, batch_size=batch_size, seed=seed)
    # One helper thread draws the next batch while torch trains on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(make, 0)
        for step in range(steps):
            current = pending.result()
            if step + 1 < steps:
                pending = pool.submit(make, step + 1)
            yield current


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (features already normalised)."""
    logits = logit_scale * img @ txt.T
    target = torch.arange(img.shape[0], device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for config + checkpoint")
    p.add_argument("--config", type=Path, default=DEFAULT_OUT / f"{NAME}.json", help="open_clip model config")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (halves the file)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--workers", type=int, default=0, help="processes drawing batches (0: one thread)")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    config_out = args.out / f"{NAME}.json"
    if args.config.resolve() != config_out.resolve():
        shutil.copyfile(args.config, config_out)
    open_clip.add_model_config(config_out)
    device = torch.device(args.device)
    model = open_clip.create_model(NAME, pretrained=None).to(device)
    tokenizer = open_clip.get_tokenizer(NAME)
    model.train()

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))

    start = time.time()
    losses: list[float] = []
    bar = tqdm(
        batch_stream(args.batch_size, args.steps, args.seed, args.workers), total=args.steps, desc="train ceir-world"
    )
    for step, (images, captions) in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        x = pixels_to_tensor(images, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD).to(device)
        tokens = tokenizer(captions).to(device)
        img_f, txt_f, scale = model(x, tokens)
        loss = clip_loss(img_f, txt_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as in CLIP
        losses.append(float(loss))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", scale=f"{float(scale):.1f}")
    seconds = time.time() - start

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if args.fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    ckpt = args.out / f"{NAME}.safetensors"
    save_file(state, str(ckpt), metadata={"format": "pt", "model": NAME})
    info = {
        "model": NAME,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "samples_seen": args.steps * args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "device": args.device,
        "fp16": bool(args.fp16),
        "train_seconds": round(seconds, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "checkpoint_mb": round(ckpt.stat().st_size / 2**20, 2),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    (args.out / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
