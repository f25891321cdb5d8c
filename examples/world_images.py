"""Write drawn-world images to disk as PNG files, one folder per class: the layout that
`ceir fit`, `ceir index build` and every other command taking a folder read (class subfolders
become labels where a command uses them).

    python examples/world_images.py world10 train 400 images/train
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from ceir_sdk.worlds import World


def write_world_images(domain: str, split: str, n: int, out: Path, image_size: int = 32) -> list[Path]:
    world = World(domain, image_size=image_size)
    written: list[Path] = []
    for batch in world.batches(n, split=split):
        for image, label in zip(batch.images, batch.labels):
            folder = out / world.class_names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{split}-{len(written):05d}.png"
            Image.fromarray(image).save(path)
            written.append(path)
    return written


if __name__ == "__main__":
    domain, split, n, out = sys.argv[1:5]
    print(f"wrote {len(write_world_images(domain, split, int(n), Path(out)))} images under {out}")
