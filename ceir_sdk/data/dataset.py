"""One dataset interface for image folders, file lists, PIL images, arrays, torchvision-style
datasets and the ground-truth world.

A dataset yields cheap :class:`ImageRef` objects (no pixels decoded yet) so that a backbone can
hash, look up its feature cache and decode in worker threads; iterating a dataset directly yields
decoded :class:`ImageItem` objects with the on_error policy applied.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ceir_sdk.data.images import ImageLoadError, LoadOptions, array_to_rgb, load_image_file, to_rgb
from ceir_sdk.data.report import LoadReport, OnError, check_on_error
from ceir_sdk.errors import BadInputError

_HASH_CHUNK = 1 << 20


def image_extensions() -> frozenset[str]:
    """File extensions PIL can open (lower case, with the dot)."""
    return frozenset(ext.lower() for ext in Image.registered_extensions())


@dataclass(frozen=True)
class ImageItem:
    """A decoded image (PIL RGB) with its id and optional label, path and true concepts."""

    id: str
    image: Image.Image
    label: Any = None
    path: str | None = None
    concepts: frozenset[str] | None = None
    note: str = ""


@dataclass(frozen=True)
class ImageRef:
    """An image not decoded yet: a file path, or in-memory data (PIL image or array)."""

    id: str
    label: Any = None
    path: str | None = None
    data: Any = None
    concepts: frozenset[str] | None = None

    @property
    def source(self) -> str:
        return self.path if self.path is not None else f"image {self.id}"

    def content_hash(self) -> str:
        """sha256 of the file's bytes, or of an in-memory image's pixels (with shape and mode)."""
        h = hashlib.sha256()
        if self.path is not None:
            try:
                with open(self.path, "rb") as f:
                    while chunk := f.read(_HASH_CHUNK):
                        h.update(chunk)
            except FileNotFoundError:
                raise ImageLoadError(self.path, "file not found", "check the path") from None
            except IsADirectoryError:
                raise ImageLoadError(self.path, "is a directory, not an image file") from None
            except OSError as exc:
                raise ImageLoadError(self.path, f"cannot read file ({exc.strerror or exc})") from None
            return "file:" + h.hexdigest()
        data = self.data
        if isinstance(data, Image.Image):
            h.update(f"pil:{data.mode}:{data.size}".encode())
            h.update(data.tobytes())
        else:
            arr = np.ascontiguousarray(_as_numpy(data, self.source))
            h.update(f"arr:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return "pixels:" + h.hexdigest()

    def load(self, options: LoadOptions | None = None) -> ImageItem:
        """Decode into RGB; raises :class:`ImageLoadError` with the problem and a way out."""
        if self.path is not None:
            image, note = load_image_file(self.path, options)
        elif isinstance(self.data, Image.Image):
            image, note = to_rgb(self.data, self.source, options)
        else:
            image, note = array_to_rgb(_as_numpy(self.data, self.source), self.source, options)
        return ImageItem(self.id, image, self.label, self.path, self.concepts, note)


def try_load(ref: ImageRef, options: LoadOptions | None = None) -> ImageItem | ImageLoadError:
    """Like :meth:`ImageRef.load` but returns the error, so worker threads never raise."""
    try:
        return ref.load(options)
    except ImageLoadError as exc:
        return exc


def _as_numpy(data: Any, source: str) -> np.ndarray:
    """Arrays and torch tensors (uint8 HWC, or CHW with 1/3/4 channels) as numpy HWC."""
    if type(data).__module__.startswith("torch"):
        tensor = data.detach().cpu()
        arr = tensor.numpy()
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)  # CHW (torchvision.io) -> HWC
        if arr.dtype != np.uint8:
            raise ImageLoadError(
                source,
                f"got a {tensor.dtype} tensor, probably already preprocessed",
                "pass raw images (PIL or uint8), e.g. build the torchvision dataset without transform=",
            )
        return arr
    if isinstance(data, np.ndarray):
        return data
    raise ImageLoadError(
        source,
        f"cannot use an object of type {type(data).__name__} as an image",
        "pass a file path, a PIL image or a uint8 array (H, W, 3)",
    )


class ImageDataset:
    """Base class: subclasses implement :meth:`refs` (and ``__len__`` when the size is known)."""

    class_names: list[str] | None = None

    def __init__(self, *, on_error: OnError = "fail", options: LoadOptions | None = None) -> None:
        self.on_error: OnError = check_on_error(on_error)
        self.options = options or LoadOptions()
        self.ignored_files: list[str] = []
        self.report = LoadReport()

    def refs(self) -> Iterator[ImageRef]:
        raise NotImplementedError

    def length(self) -> int | None:
        """Number of images when known without reading them (progress bars), else None."""
        try:
            return len(self)  # type: ignore[arg-type]
        except TypeError:
            return None

    def new_report(self) -> LoadReport:
        self.report = LoadReport(ignored_files=list(self.ignored_files))
        return self.report

    def __iter__(self) -> Iterator[ImageItem]:
        report = self.new_report()
        for ref in self.refs():
            result = try_load(ref, self.options)
            if isinstance(result, ImageLoadError):
                report.record_error(result, item_id=ref.id, path=ref.path, on_error=self.on_error)
                continue
            report.record_loaded(result.note)
            yield result


class RefDataset(ImageDataset):
    """A fixed list of refs (file lists, PIL images, array batches)."""

    def __init__(self, refs: Sequence[ImageRef], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refs = list(refs)

    def __len__(self) -> int:
        return len(self._refs)

    def refs(self) -> Iterator[ImageRef]:
        return iter(self._refs)


class FolderDataset(ImageDataset):
    """Image files under a folder (recursive by default, sorted, hidden files skipped).

    ``labels="auto"`` takes the first-level subfolder as the label when every image lives in a
    subfolder (the torchvision ImageFolder layout); ``True`` forces it, ``False`` gives none.
    Files whose extension is not an image type are ignored and listed in the report.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, labels: bool | str = "auto", recursive: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if labels not in ("auto", True, False):
            raise BadInputError(f"labels must be 'auto', True or False, got {labels!r}")
        files, ignored = self._scan(recursive)
        self.ignored_files = [str(p) for p in ignored]
        if not files:
            listed = ", ".join(p.name for p in ignored[:5]) + (" ..." if len(ignored) > 5 else "")
            raise BadInputError(
                f"folder {self.root} holds no image files"
                + (f" (ignored {len(ignored)} other files: {listed})" if ignored else " (it is empty)")
                + f"; known image extensions include {', '.join(sorted(_COMMON_EXTS))}"
            )
        in_subfolders = all(len(p.relative_to(self.root).parts) > 1 for p in files)
        use_labels = labels is True or (labels == "auto" and in_subfolders)
        if labels is True and not in_subfolders:
            loose = [str(p) for p in files if len(p.relative_to(self.root).parts) == 1][:3]
            raise BadInputError(
                f"labels=True needs every image in a class subfolder of {self.root}, but some lie at the "
                f"top level ({', '.join(loose)}); move them or pass labels=False"
            )
        self._files = files
        self._labels = [p.relative_to(self.root).parts[0] if use_labels else None for p in files]
        self.class_names = sorted({str(x) for x in self._labels}) if use_labels else None
        self.new_report()

    def _scan(self, recursive: bool) -> tuple[list[Path], list[Path]]:
        exts = image_extensions()
        files: list[Path] = []
        ignored: list[Path] = []
        if recursive:
            walker: Iterable[tuple[str, list[str], list[str]]] = os.walk(self.root, followlinks=False)
        else:
            names = [e.name for e in os.scandir(self.root) if not e.is_dir()]
            walker = [(str(self.root), [], names)]
        for dirpath, dirnames, filenames in walker:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                (files if path.suffix.lower() in exts else ignored).append(path)
        return files, ignored

    def __len__(self) -> int:
        return len(self._files)

    def refs(self) -> Iterator[ImageRef]:
        for path, label in zip(self._files, self._labels):
            yield ImageRef(id=path.relative_to(self.root).as_posix(), label=label, path=str(path))


_COMMON_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class TorchvisionDataset(ImageDataset):
    """Any map-style dataset whose items are ``(image, label)`` (torchvision's convention).

    Datasets that expose ``samples`` as ``[(path, class_index), ...]`` (ImageFolder) are read by
    path, so decoding happens in the backbone's worker threads and the cache keys on file bytes.
    """

    def __init__(self, dataset: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        classes = getattr(dataset, "classes", None)
        self.class_names = [str(c) for c in classes] if isinstance(classes, Sequence) else None
        samples = getattr(dataset, "samples", None)
        self._samples = samples if _is_path_samples(samples) else None

    def __len__(self) -> int:
        return len(self.dataset)

    def refs(self) -> Iterator[ImageRef]:
        if self._samples is not None:
            for i, (path, label) in enumerate(self._samples):
                yield ImageRef(id=str(i), label=label, path=str(path))
            return
        for i in range(len(self.dataset)):
            item = self.dataset[i]
            if isinstance(item, tuple) and len(item) >= 2:
                image, label = item[0], item[1]
            else:
                image, label = item, None
            yield _ref_for(image, str(i), label)


def _is_path_samples(samples: Any) -> bool:
    if not isinstance(samples, Sequence) or isinstance(samples, str) or not samples:
        return False
    first = samples[0]
    return isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], (str, os.PathLike))


class WorldDataset(ImageDataset):
    """``n`` images of one split of a :class:`ceir_sdk.worlds.World`, streamed batch by batch.

    Items carry the world's true concepts (``item.concepts``), which tests and benchmarks score
    explanations against.
    """

    def __init__(self, world: Any, *, split: str, n: int, batch_size: int = 512, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n <= 0:
            raise BadInputError(f"n must be a positive number of images, got {n}")
        self.world = world
        self.split = split
        self.n = int(n)
        self.batch_size = int(batch_size)
        names = getattr(world, "class_names", None)
        self.class_names = list(names) if names is not None else None
        self.name = str(getattr(world, "name", getattr(world, "domain", "world")))

    def __len__(self) -> int:
        return self.n

    def refs(self) -> Iterator[ImageRef]:
        k = 0
        for batch in self.world.batches(self.n, split=self.split, batch_size=self.batch_size):
            images = np.asarray(batch.images)
            labels = list(batch.labels)
            concepts = list(getattr(batch, "concepts", None) or [None] * len(images))
            for j in range(len(images)):
                yield ImageRef(
                    id=f"{self.name}/{self.split}/{k}",
                    label=_plain(labels[j]),
                    data=images[j],
                    concepts=frozenset(concepts[j]) if concepts[j] is not None else None,
                )
                k += 1


def _plain(label: Any) -> Any:
    """numpy scalars -> Python scalars so labels serialise as JSON."""
    return label.item() if isinstance(label, np.generic) else label


class StreamDataset(ImageDataset):
    """A one-pass iterable (e.g. a generator) of paths, PIL images or arrays; length unknown."""

    def __init__(self, items: Iterable[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._items = items
        self._used = False

    def refs(self) -> Iterator[ImageRef]:
        if self._used and iter(self._items) is self._items:
            raise BadInputError("this stream of images was already consumed; pass a list to read it twice")
        self._used = True
        for i, obj in enumerate(self._items):
            yield _ref_for(obj, str(i), None)


def _ref_for(obj: Any, item_id: str, label: Any) -> ImageRef:
    if isinstance(obj, (str, os.PathLike)):
        return ImageRef(id=str(obj), label=label, path=str(obj))
    return ImageRef(id=item_id, label=_plain(label), data=obj)


def _is_world(obj: Any) -> bool:
    return hasattr(obj, "batches") and hasattr(obj, "oracle")


def as_dataset(
    obj: Any,
    *,
    split: str | None = None,
    n: int | None = None,
    labels: bool | str = "auto",
    recursive: bool = True,
    on_error: OnError | None = None,
    max_pixels: int | None = None,
    background: tuple[int, int, int] | None = None,
    batch_size: int = 512,
) -> ImageDataset:
    """Wrap any supported image source as an :class:`ImageDataset`.

    Accepted: a folder (recursive; class subfolders give labels), an image file, a list of paths,
    PIL images or arrays, a uint8 array (N, H, W, 3) or (N, H, W), a torchvision-style dataset
    (``ds[i] -> (image, label)``), a World (with ``split`` and ``n``), an ImageDataset (returned
    with the given policy applied), or any other iterable of the above (read once).
    """
    opt_kwargs: dict[str, Any] = {}
    if max_pixels is not None:
        opt_kwargs["max_pixels"] = int(max_pixels)
    if background is not None:
        opt_kwargs["background"] = tuple(int(c) for c in background)
    if isinstance(obj, ImageDataset):
        if on_error is not None:
            obj.on_error = check_on_error(on_error)
        if opt_kwargs:
            obj.options = LoadOptions(**{**obj.options.__dict__, **opt_kwargs})
        return obj
    kwargs: dict[str, Any] = {"on_error": on_error or "fail", "options": LoadOptions(**opt_kwargs)}
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if path.is_dir():
            return FolderDataset(path, labels=labels, recursive=recursive, **kwargs)
        if path.exists():
            return RefDataset([ImageRef(id=path.name, path=str(path))], **kwargs)
        raise BadInputError(f"no such file or folder: {path}; check the path (relative to {Path.cwd()})")
    if _is_world(obj):
        if split is None or n is None:
            raise BadInputError("a World needs split= ('train', 'val' or 'test') and n= (number of images)")
        return WorldDataset(obj, split=split, n=n, batch_size=batch_size, **kwargs)
    if isinstance(obj, Image.Image):
        return RefDataset([ImageRef(id="0", data=obj)], **kwargs)
    if isinstance(obj, np.ndarray) or (type(obj).__module__.startswith("torch") and hasattr(obj, "ndim")):
        return RefDataset(_array_refs(obj), **kwargs)
    if isinstance(obj, (list, tuple)):
        if any(isinstance(x, (str, os.PathLike)) and Path(x).is_dir() for x in obj):
            return _paths_dataset(obj, labels=labels, recursive=recursive, **kwargs)
        return RefDataset([_ref_for(x, str(i), None) for i, x in enumerate(obj)], **kwargs)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return TorchvisionDataset(obj, **kwargs)
    if isinstance(obj, Iterable):
        return StreamDataset(obj, **kwargs)
    raise BadInputError(
        f"cannot read images from an object of type {type(obj).__name__}; pass a folder, a list of "
        "paths, PIL images, a uint8 array (N, H, W, 3), a torchvision-style dataset or a World"
    )


def _paths_dataset(paths: Sequence[Any], *, labels: bool | str, recursive: bool, **kwargs: Any) -> RefDataset:
    """Several folders and files as one dataset, in the order given.

    Ids are the paths as given (folder/relative/path.png), so they stay unique across folders;
    labels come from class subfolders when every folder has them (the ImageFolder layout).
    """
    parts: list[tuple[str, FolderDataset | None]] = []
    for item in paths:
        if not isinstance(item, (str, os.PathLike)):
            raise BadInputError(f"mixed inputs: {item!r} among file and folder paths; give paths only")
        path = Path(item)
        if path.is_dir():
            parts.append((str(item), FolderDataset(path, labels=labels, recursive=recursive, **kwargs)))
        elif path.exists():
            parts.append((str(item), None))
        else:
            raise BadInputError(f"no such file or folder: {path}; check the path (relative to {Path.cwd()})")
    with_labels = all(folder is not None and folder.class_names for _, folder in parts)
    refs: list[ImageRef] = []
    ignored: list[str] = []
    for given, folder in parts:
        if folder is None:
            refs.append(ImageRef(id=given, path=given))
            continue
        ignored += folder.ignored_files
        refs += [ImageRef(id=f"{given.rstrip('/')}/{ref.id}", label=ref.label if with_labels else None, path=ref.path)
                 for ref in folder.refs()]
    dataset = RefDataset(refs, **kwargs)
    dataset.ignored_files = ignored
    if with_labels:
        dataset.class_names = sorted({str(ref.label) for ref in refs})
    dataset.new_report()
    return dataset


def _array_refs(arr: Any) -> list[ImageRef]:
    a = _as_numpy(arr, "array") if type(arr).__module__.startswith("torch") else arr
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return [ImageRef(id="0", data=a)]  # one (H, W, C) image
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] in (1, 3, 4)):
        return [ImageRef(id=str(i), data=a[i]) for i in range(a.shape[0])]
    if a.ndim == 4 and a.shape[1] in (1, 3, 4):
        raise BadInputError(
            f"array of shape {tuple(a.shape)} looks channels-first; pass (N, H, W, 3), e.g. arr.transpose(0, 2, 3, 1)"
        )
    raise BadInputError(
        f"array of shape {tuple(a.shape)} is not a batch of images; pass uint8 (N, H, W, 3) or (N, H, W)"
    )

