#!/usr/bin/env python
"""Train the small CLIP "ceir-world" contrastively on captioned images of ceir_sdk.worlds.

    HF_HUB_OFFLINE=1 python scripts/train_world_clip.py --out plugins/open-clip/src/ceir_open_clip/world_model

The committed checkpoint came from the defaults plus ``--threads 2 --max-minutes 18.5`` on a
quiet machine. A pool of 100,000 train-split images (half world10, half world100_20; the test
split the benchmark uses is never seen) is drawn once by worker processes, with four captions
per image, all tokenised once; the pool is reused in shuffled epochs with left-right mirroring
and a caption drawn at random each time, because on a shared 2-core CPU drawing fresh images
every step costs as much as the step itself, and one fixed caption per image was learnt by
heart. Each caption also comes with a copy in which one attribute word is swapped for a false
value (mostly the shape); the image must rank it below its own caption, which the ordinary
batch negatives rarely demand. ``--pool 0`` draws fresh samples every step instead (for a GPU,
with ``--workers`` and ``--no-swap-negatives``). Threads: one is fastest on a loaded 2-core
machine (two were up to 3x slower per step there), two are 1.7x faster on a quiet one.

The architecture is the open_clip config ceir-world.json next to the output (a small
ModifiedResNet image tower: cheaper per image than a ViT on 32x32 and better at local shape);
the checkpoint is an open_clip state dict in safetensors, loadable with
open_clip.create_model_and_transforms(name, pretrained=path); call model.eval() (BatchNorm).
training_info.json records the wall time and the machine's load average during training.
Deterministic for a given seed and thread count on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
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


# A swapped negative changes one attribute word; shape most often, since the contrastive signal
# alone taught shape least (star read as triangular, round as square).
SWAP_FAMILY_P: dict[str, float] = {"shape": 0.5, "colour": 1 / 6, "pattern": 1 / 6, "size": 1 / 6}


def caption_pair(
    families: dict, class_name: str, seed: int, domain: str, index: int, variant: int, nuisances: dict | None = None
) -> tuple[str, str]:
    """(caption number ``variant`` of an image, the same caption with one attribute swapped).

    Both captions are written from one random stream, so they differ only in the swapped word;
    where the caption never mentions that attribute the two are equal (masked in the loss).
    """
    from ceir_sdk.worlds.captions import make_caption
    from ceir_sdk.worlds.vocabulary import FAMILY_VALUES

    key = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(domain.encode()), 7, index, variant))
    choice = np.random.default_rng(key.spawn(1)[0])
    family = str(choice.choice(list(SWAP_FAMILY_P), p=list(SWAP_FAMILY_P.values())))
    false_values = [v for v in FAMILY_VALUES[family] if v != families[family]]
    swapped = {**families, family: false_values[int(choice.integers(len(false_values)))]}
    positive = make_caption(families, class_name, np.random.default_rng(key), nuisances)
    negative = make_caption(swapped, class_name, np.random.default_rng(key), nuisances)
    return positive, negative


def draw_chunk(
    task: tuple[str, int, int], seed: int, captions_per_image: int = 1
) -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
    """Train samples ``start .. start+n-1`` of one domain: images, then per image
    ``captions_per_image`` captions and the same captions with one attribute swapped."""
    from ceir_sdk.worlds import World

    name, start, n = task
    world = World(name, 32, seed)
    b = next(world.batches(n, "train", batch_size=n, start=start))
    captions, swapped = [], []
    for fam, fine, i, nuisances in zip(b.families, b.fine_labels, b.indices, b.nuisances):
        pairs = [
            caption_pair(fam, world.domain.classes[int(fine)].name, seed, name, int(i), v, nuisances)
            for v in range(captions_per_image)
        ]
        captions.append([c for c, _ in pairs])
        swapped.append([c for _, c in pairs])
    return b.images, captions, swapped


def draw_pool(
    size: int, seed: int, workers: int, chunk: int = 500, captions_per_image: int = 1
) -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
    """The first ``size // 2`` train samples of world10 and of world100_20 (drawn once)."""
    half = size // 2
    tasks = [(name, lo, min(chunk, half - lo)) for name in ("world10", "world100_20") for lo in range(0, half, chunk)]
    images, captions, swapped = [], [], []
    bar = tqdm(total=2 * half, desc="draw training images", unit="img")
    draw = partial(draw_chunk, seed=seed, captions_per_image=captions_per_image)
    with mp.get_context("spawn").Pool(workers) if workers > 0 else nullcontext() as procs:
        for im, cap, neg in procs.imap(draw, tasks) if procs is not None else map(draw, tasks):
            images.append(im)
            captions.extend(cap)
            swapped.extend(neg)
            bar.update(len(cap))
    bar.close()
    return np.concatenate(images), captions, swapped


def pool_stream(
    images: np.ndarray,
    tokens: torch.Tensor,
    batch_size: int,
    steps: int,
    seed: int,
    negatives: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]]:
    """Shuffled epochs over the pool; each image mirrored left-right with probability 1/2.

    Mirroring keeps every concept true (shapes are left-right symmetric or point up, things
    around sit in any corner), so it is free extra data. ``negatives`` (swapped-caption tokens,
    and whether each differs from its caption) come along with their images. ``tokens`` holds
    several captions per image (N, C, L).
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    pos = 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(images)), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        batch = images[idx]
        flip = rng.random(len(idx)) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        rows = torch.from_numpy(idx)
        # One of the image's captions at random, so no caption is learnt by heart.
        cols = torch.from_numpy(rng.integers(tokens.shape[1], size=len(idx)))
        chosen_negatives = None if negatives is None else (negatives[0][rows, cols], negatives[1][rows, cols])
        yield batch, tokens[rows, cols], chosen_negatives


def batch_stream(batch_size: int, steps: int, seed: int, workers: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Batches for steps 0..steps-1; fresh samples every step. Content depends only on the step."""
    if workers > 0:
        # Processes draw ahead (for a GPU, where drawing is the bottleneck); order is kept.
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


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def clip_loss(
    img: torch.Tensor,
    txt: torch.Tensor,
    logit_scale: torch.Tensor,
    negatives: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (features already normalised).

    ``negatives`` = (embeddings of swapped captions, valid mask): extra wrong captions every
    image must rank below its own (as in NegCLIP); a swapped caption equal to its original
    (the attribute was not mentioned) is left out.
    """
    logits = logit_scale * img @ txt.T
    target = torch.arange(img.shape[0], device=img.device)
    text_to_image = F.cross_entropy(logits.T, target)
    if negatives is not None:
        neg_txt, valid = negatives
        neg_logits = (logit_scale * img @ neg_txt.T).masked_fill(~valid[None, :], float("-inf"))
        logits = torch.cat([logits, neg_logits], dim=1)
    return (F.cross_entropy(logits, target) + text_to_image) / 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for config + checkpoint")
    p.add_argument("--name", default=NAME, help="model name: the files are NAME.json and NAME.safetensors")
    p.add_argument(
        "--config", type=Path, default=None, help="open_clip model config (default: NAME.json beside the bundled model)"
    )
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-minutes", type=float, default=18.0, help="wall budget (drawing included); the schedule shrinks to fit"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    p.add_argument(
        "--pool", type=int, default=100_000, help="train images drawn once and reused with flips (0: fresh every step)"
    )
    p.add_argument(
        "--fp16", action=argparse.BooleanOptionalAction, default=True, help="store weights in float16 (halves the file)"
    )
    p.add_argument(
        "--captions-per-image", type=int, default=4, help="captions written per pool image; one is drawn each time"
    )
    p.add_argument(
        "--swap-negatives",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add each caption with one attribute swapped as a hard negative (pool mode)",
    )
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--workers", type=int, default=2, help="processes drawing images (0: this process)")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from safetensors.torch import save_file

    from ceir_sdk.worlds.nuisance import WORLD_VERSION

    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name
    config = args.config or DEFAULT_OUT / f"{name}.json"
    config_out = args.out / f"{name}.json"
    if config.resolve() != config_out.resolve():
        shutil.copyfile(config, config_out)
    open_clip.add_model_config(config_out)
    device = torch.device(args.device)
    # channels_last: the ResNet tower's convolutions ran ~15% faster per step on this CPU.
    model = open_clip.create_model(name, pretrained=None).to(device, memory_format=torch.channels_last)
    tokenizer = open_clip.get_tokenizer(name)
    model.train()

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )

    def lr_at(step: int, progress: float) -> float:
        """Linear warmup, then cosine to zero over ``progress`` (0..1) of the run."""
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        warm = args.warmup / max(1, args.steps)
        t = min(1.0, max(0.0, (progress - warm) / max(1e-9, 1.0 - warm)))
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))

    start = time.time()
    loads = [os.getloadavg()[0]]
    stream: Iterator[tuple[np.ndarray, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]]
    if args.swap_negatives and args.pool <= 0:
        p.error("--swap-negatives needs the pool (--pool > 0); pass --no-swap-negatives to draw fresh images")
    if args.pool > 0:
        pool_images, pool_captions, swapped = draw_pool(
            args.pool, args.seed, args.workers, captions_per_image=args.captions_per_image
        )

        def tokenize(texts: list[list[str]]) -> torch.Tensor:
            # Tokenised once: the BPE tokenizer is pure Python and would cost every step.
            flat = [t for per_image in texts for t in per_image]
            tokens = torch.cat([tokenizer(flat[i : i + 4096]) for i in range(0, len(flat), 4096)])
            return tokens.view(len(texts), args.captions_per_image, -1)

        negatives = None
        if args.swap_negatives:
            differs = torch.tensor([[a != b for a, b in zip(*pair)] for pair in zip(pool_captions, swapped)])
            negatives = (tokenize(swapped), differs)
        stream = pool_stream(pool_images, tokenize(pool_captions), args.batch_size, args.steps, args.seed, negatives)
    else:
        stream = (
            (im, tokenizer(caps), None)
            for im, caps in batch_stream(args.batch_size, args.steps, args.seed, args.workers)
        )
    draw_seconds = time.time() - start
    losses: list[float] = []
    bar = tqdm(stream, total=args.steps, desc="train ceir-world")
    loop_start = time.time()
    loop_budget = args.max_minutes * 60.0 - draw_seconds - 30.0  # 30 s kept for saving
    steps_done = 0
    for step, (images, batch_tokens, batch_negatives) in enumerate(bar):
        # Progress is steps or wall time, whichever runs out first: on a busy shared machine
        # the schedule still reaches zero learning rate inside the time budget.
        progress = max(step / args.steps, (time.time() - loop_start) / loop_budget)
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, progress)
        x = pixels_to_tensor(images, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        tokens = batch_tokens.to(device)
        if batch_negatives is None:
            img_f, txt_f, scale = model(x, tokens)
            loss = clip_loss(img_f, txt_f, scale)
        else:
            neg_tokens, differs = batch_negatives
            img_f, both_f, scale = model(x, torch.cat([tokens, neg_tokens.to(device)]))
            txt_f, neg_f = both_f[: len(tokens)], both_f[len(tokens) :]
            loss = clip_loss(img_f, txt_f, scale, (neg_f, differs.to(device)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as in CLIP
        losses.append(float(loss))
        steps_done = step + 1
        if step % 50 == 0:
            loads.append(os.getloadavg()[0])
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", scale=f"{float(scale):.1f}")
    seconds = time.time() - start

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if args.fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    ckpt = args.out / f"{name}.safetensors"
    # Temp file + fsync + rename: an interrupted run leaves the previous checkpoint intact.
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "model": name})
    _fsync_replace(tmp, ckpt)
    info = {
        "model": name,
        "steps": steps_done,
        "steps_planned": args.steps,
        "stopped_by_time_budget": steps_done < args.steps,
        "max_minutes": args.max_minutes,
        "batch_size": args.batch_size,
        "samples_seen": steps_done * args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "device": args.device,
        "architecture": json.loads(config_out.read_text()),
        "fp16": bool(args.fp16),
        "train_seconds": round(seconds, 1),
        "draw_seconds": round(draw_seconds, 1),
        "pool": args.pool,
        "swap_negatives": bool(args.swap_negatives),
        "captions_per_image": args.captions_per_image,
        "cpu_count": os.cpu_count(),
        # The machine is shared: the 1-minute load average sampled every 50 steps.
        "load_average": {"mean": round(float(np.mean(loads)), 2), "max": round(float(np.max(loads)), 2)},
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "checkpoint_mb": round(ckpt.stat().st_size / 2**20, 2),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
        "world_version": WORLD_VERSION,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    # The bundled model keeps its historical file name; any other model is NAME.training_info.json.
    info_path = args.out / ("training_info.json" if name == NAME else f"{name}.training_info.json")
    info_tmp = info_path.with_name(info_path.name + ".tmp")
    info_tmp.write_text(json.dumps(info, indent=2) + "\n")
    _fsync_replace(info_tmp, info_path)
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
