"""The main job at a reduced size, through the real CLI, and its report in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEIR_")}
    env["CEIR_FEATURE_CACHE"] = str(out / "feature-cache")
    result = subprocess.run(
        [sys.executable, "-m", "ceir_sdk", "demo", "--size", "small", "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((out / "results.json").read_text())
    return out, results, result


def _embedded_json(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="ceir-results">(.*?)</script>', html, re.S)
    assert match, "the report carries no embedded results"
    return dict(json.loads(match.group(1)))


def test_demo_prints_a_summary(demo_run: Any) -> None:
    out, _, proc = demo_run
    assert "ceir" in proc.stdout and "raw_kmeans" in proc.stdout
    assert "report:" in proc.stdout
    for name in ("model/config.json", "model/weights.safetensors", "bundle/manifest.json", "report.html"):
        assert (out / name).exists(), name


def test_report_metrics_equal_the_json(demo_run: Any) -> None:
    out, results, _ = demo_run
    html = (out / "report.html").read_text()
    assert _embedded_json(html) == results
    metrics = results["evaluation"]["metrics"]
    assert set(metrics) == {"ceir", "raw_kmeans", "concept_kmeans"}
    for space, values in metrics.items():
        for key in ("nmi", "acc", "ari"):
            mean = values[f"{key}_mean"]
            assert 0.0 <= mean <= 1.0
            # the table shows each figure rounded to 4 places
            assert f">{mean:.4f}<" in html, f"{space} {key} {mean:.4f} missing from the report table"


def test_report_embeds_images_and_needs_nothing_external(demo_run: Any) -> None:
    out, results, _ = demo_run
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 20
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must be self-contained"
    assert "Label information that entered" in html
    label_info = results["label_information"]
    assert label_info["class_names_in_concept_set"] is False


def test_report_shows_the_nuisances_no_concept_source_knows(demo_run: Any) -> None:
    """World version 2: a few images per nuisance value, and the statement that no concept covers them."""
    from ceir_sdk.worlds.nuisance import NUISANCE_FAMILIES, NUISANCE_VALUES, WORLD_VERSION

    out, results, _ = demo_run
    html = (out / "report.html").read_text()
    assert results["world_version"] == WORLD_VERSION == 2
    assert "How the pictures were made (nuisances)" in html
    assert "No concept source knows about them" in html
    for family in NUISANCE_FAMILIES:
        assert f"{family}: three evaluation images per value" in html
        for value in NUISANCE_VALUES[family][1:]:
            assert f'alt="{value}"' in html, value
    # and none of them is a concept of the fitted model
    config = json.loads((out / "model/config.json").read_text())
    concepts = json.dumps(config).lower()
    for word in ("blurry", "watermark", "vintage", "cartoon", "sunset", "grainy"):
        assert word not in concepts, word


def test_demo_runtime_matches_torch_and_queries_run(demo_run: Any) -> None:
    _, results, _ = demo_run
    assert results["onnx"]["max_abs_diff_latent"] <= 1e-4
    assert results["onnx"]["max_abs_diff_concepts"] <= 1e-4
    queries = results["queries"]
    assert len(queries["text"]["hits"]) == queries["k"]
    # "yellow striped" as text must find yellow striped things (before text z-scores were put on
    # the images' scale, none of the ten did)
    assert queries["text"]["share_with_both_concepts"] >= 0.5, queries["text"]
    assert queries["concept_expression"]["hits"], "the concept query found nothing"
    after = queries["edited_example"]["after"]
    assert after["hits"] and all(hit["id"] != queries["edited_example"]["item"] for hit in after["hits"])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it with apt-get)")
def test_report_opens_in_headless_chromium_without_console_errors(demo_run: Any) -> None:
    from playwright.sync_api import sync_playwright

    out, _, _ = demo_run
    problems: list[str] = []
    shot = out / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in
                    ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("CEIR report")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            assert broken == 0, f"{broken} images did not render"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert shot.stat().st_size > 20_000
