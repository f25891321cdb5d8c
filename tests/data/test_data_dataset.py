"""as_dataset over folders, lists, arrays, torchvision-style datasets and the World; skip vs fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from image_zoo import BAD, GOOD, NON_IMAGES
from PIL import Image

from ceir_sdk.data import FolderDataset, ImageDataset, as_dataset
from ceir_sdk.errors import BadInputError


def test_folder_skip_reports_every_problem(zoo: Path) -> None:
    ds = as_dataset(zoo, on_error="skip")
    assert isinstance(ds, FolderDataset)
    items = list(ds)
    assert sorted(i.id for i in items) == sorted(GOOD)
    assert all(i.image.mode == "RGB" and i.path for i in items)
    report = ds.report
    assert report.n_loaded == len(GOOD) and report.n_skipped == len(BAD)
    problems = {Path(s.path or "").name: s.problem for s in report.skipped}
    for name, word in BAD.items():
        assert word in problems[name]
    assert sorted(Path(p).name for p in report.ignored_files) == sorted(NON_IMAGES)
    summary = report.summary()
    assert f"loaded {len(GOOD)} of {len(GOOD) + len(BAD)} images" in summary
    assert "skipped 5" in summary and "truncated" in summary and "ignored 2 non-image files" in summary
    assert "CMYK -> RGB" in summary
    assert "empty.png" in report.details()


def test_folder_fail_names_the_file_and_the_way_out(zoo: Path) -> None:
    ds = as_dataset(zoo)  # default policy: fail
    with pytest.raises(BadInputError) as info:
        list(ds)
    message = str(info.value)
    assert "bomb.png" in message  # sorted order: bomb.png is the first bad file
    assert "decompression" in message and "on_error='skip'" in message


def test_folder_of_non_images_is_refused(tmp_path: Path) -> None:
    for name in NON_IMAGES:
        (tmp_path / name).write_text("x")
    with pytest.raises(BadInputError, match=r"holds no image files \(ignored 2 other files"):
        as_dataset(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="it is empty"):
        as_dataset(empty)
    with pytest.raises(BadInputError, match="no such file or folder"):
        as_dataset(tmp_path / "missing")


def test_class_subfolders_give_labels(class_folder: Path) -> None:
    ds = as_dataset(class_folder)
    items = list(ds)
    assert ds.class_names == ["blue", "red"]
    assert len(items) == 8
    assert {i.label for i in items if "nested" in i.id} == {"blue", "red"}
    for item in items:
        assert item.label == item.id.split("/")[0]
    assert [Path(p).name for p in ds.report.ignored_files] == ["notes.txt"]
    with pytest.raises(BadInputError, match="holds no image files"):
        as_dataset(class_folder, recursive=False)
    unlabeled = list(as_dataset(class_folder, labels=False))
    assert all(i.label is None for i in unlabeled)


def test_labels_true_needs_subfolders(zoo: Path) -> None:
    with pytest.raises(BadInputError, match="class subfolder"):
        FolderDataset(zoo, labels=True)


def test_lists_of_paths_pil_images_and_arrays(zoo: Path) -> None:
    paths = [str(zoo / "rgb.png"), zoo / "gray.png", str(zoo / "empty.png")]
    ds = as_dataset(paths, on_error="skip")
    assert [i.id for i in ds] == [str(zoo / "rgb.png"), str(zoo / "gray.png")]
    assert ds.report.skipped[0].problem.startswith("file is empty")
    pil = [Image.new("L", (5, 6)), Image.new("RGBA", (5, 6))]
    assert [i.image.mode for i in as_dataset(pil)] == ["RGB", "RGB"]
    batch = np.zeros((4, 6, 5, 3), np.uint8)
    items = list(as_dataset(batch))
    assert [i.id for i in items] == ["0", "1", "2", "3"] and items[0].image.size == (5, 6)
    assert len(list(as_dataset(np.zeros((4, 6, 5), np.uint8)))) == 4  # grayscale batch
    assert len(list(as_dataset(np.zeros((6, 5, 3), np.uint8)))) == 1  # one image
    with pytest.raises(BadInputError, match="channels-first"):
        as_dataset(np.zeros((4, 3, 6, 5), np.uint8))
    with pytest.raises(BadInputError, match="cannot read images from an object of type int"):
        as_dataset(3)
    with pytest.raises(BadInputError, match="on_error must be"):
        as_dataset(batch, on_error="ignore")  # type: ignore[arg-type]


def test_a_generator_is_read_once() -> None:
    ds = as_dataset(np.zeros((5, 5, 3), np.uint8) for _ in range(3))
    assert ds.length() is None
    assert len(list(ds)) == 3
    with pytest.raises(BadInputError, match="already consumed"):
        list(ds)


class _TorchvisionStyle:
    classes = ("cat", "dog")

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return Image.new("RGB", (8, 8), (i * 40, 0, 0)), i % 2


def test_torchvision_style_dataset() -> None:
    ds = as_dataset(_TorchvisionStyle())
    assert ds.class_names == ["cat", "dog"]
    items = list(ds)
    assert [i.label for i in items] == [0, 1, 0]
    assert np.asarray(items[2].image)[0, 0, 0] == 80


def test_real_torchvision_image_folder_is_read_by_path(class_folder: Path) -> None:
    tv = pytest.importorskip("torchvision.datasets")
    folder = tv.ImageFolder(str(class_folder))
    ds = as_dataset(folder)
    refs = list(ds.refs())
    assert all(r.path for r in refs)  # by path: decoding happens in the loader, not in __getitem__
    assert ds.class_names == ["blue", "red"]
    assert [r.label for r in refs] == [label for _, label in folder.samples]


def test_torch_tensors_raw_ok_preprocessed_refused() -> None:
    torch = pytest.importorskip("torch")
    chw = torch.zeros((2, 3, 6, 5), dtype=torch.uint8)
    items = list(as_dataset([chw[0], chw[1]]))
    assert items[0].image.size == (5, 6)
    ds = as_dataset([torch.zeros((3, 6, 5))], on_error="fail")
    with pytest.raises(BadInputError, match="already preprocessed"):
        list(ds)


def test_world_dataset_streams_with_true_concepts() -> None:
    worlds = pytest.importorskip("ceir_sdk.worlds")
    world = worlds.World("world10", image_size=32, seed=0)
    with pytest.raises(BadInputError, match="split="):
        as_dataset(world)
    ds = as_dataset(world, split="val", n=10, batch_size=4)
    assert len(ds) == 10 and ds.class_names == list(world.class_names)
    items = list(ds)
    assert len(items) == 10 and items[0].image.size == (32, 32)
    assert all(isinstance(i.label, int) for i in items)
    assert all(i.concepts for i in items)
    assert len({i.id for i in items}) == 10
    again = list(as_dataset(world, split="val", n=10, batch_size=4))
    assert np.array_equal(np.asarray(items[7].image), np.asarray(again[7].image))  # deterministic


def test_existing_dataset_takes_a_new_policy(zoo: Path) -> None:
    ds = as_dataset(zoo)
    same = as_dataset(ds, on_error="skip", max_pixels=10**6)
    assert same is ds and isinstance(same, ImageDataset)
    assert same.on_error == "skip" and same.options.max_pixels == 10**6
    assert len(list(same)) == len(GOOD)


def test_several_folders_and_files_form_one_dataset(class_folder: Path, tmp_path: Path) -> None:
    import shutil

    second = tmp_path / "more"
    shutil.copytree(class_folder, second)
    both = as_dataset([str(class_folder), str(second)])
    items = list(both)
    assert len(both) == len(items) == 16
    ids = [item.id for item in items]
    assert len(set(ids)) == 16 and ids[0].startswith(f"{class_folder}/")
    assert both.class_names == ["blue", "red"] and {item.label for item in items} == {"blue", "red"}
    assert len(both.report.ignored_files) == 2  # one notes.txt per folder, reported

    loose = tmp_path / "loose.png"
    Image.new("RGB", (24, 24), (0, 200, 0)).save(loose)
    mixed = as_dataset([str(class_folder), str(loose)], on_error="fail")
    assert len(list(mixed)) == 9 and mixed.class_names is None  # a loose file has no class folder
    with pytest.raises(BadInputError, match="no such file or folder"):
        as_dataset([str(class_folder), str(tmp_path / "missing")])
