"""Which plugin an unexpected error is blamed on, and strict mode reporting every failure at once.

The fixtures are real distributions with entry points (tests/plugin_fixtures, exposed by
conftest.py): ceir-multi-plugin holds four entry points in one package folder, and
ceir-single-module-plugin is one module, which a non-editable install puts in site-packages
beside numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ceir_sdk.errors import PluginLoadError
from ceir_sdk.plugins import PluginHost

CEIR = [sys.executable, "-m", "ceir_sdk"]
FIXTURES = Path(__file__).resolve().parents[1] / "plugin_fixtures"
MULTI = "multi-alpha,multi-beta,multi-gamma,multi-delta"


def run_ceir(*args: str, env: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in (env or os.environ).items() if not k.startswith("CEIR_")}
    full_env.update(extra)
    return subprocess.run([*CEIR, *args], capture_output=True, text=True, env=full_env, timeout=120)


# -- blame -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "plugin", "file"), [
    ("test-multi-beta", "multi-beta", "beta.py"),  # raised in the package's shared helper, called by beta
    ("test-multi-alpha", "multi-alpha", "alpha.py"),
    ("test-multi-gamma", "multi-gamma", "gamma.py"),  # raised in gamma's own code
])
def test_an_error_is_blamed_on_the_entry_point_whose_module_raised_it(command: str, plugin: str, file: str) -> None:
    result = run_ceir(command, CEIR_LOAD_PLUGINS=MULTI)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr  # kept for the plugin's authors
    blame_line = result.stderr.strip().splitlines()[-1]
    assert f"raised inside plugin '{plugin}' (ceir-multi-plugin 0.0.1) at {file}:" in blame_line, result.stderr
    others = {"multi-alpha", "multi-beta", "multi-gamma", "multi-delta"} - {plugin}
    assert not any(f"'{other}'" in blame_line for other in others)


def test_blame_in_process_names_module_and_line(plugin_host: PluginHost) -> None:
    import click

    plugin_host.load_entry_points(only=MULTI.split(","))
    group = click.Group()
    plugin_host.add_commands(group)
    with pytest.raises(RuntimeError) as err:
        group.main(["test-multi-beta"], standalone_mode=False)
    blame = plugin_host.blame(err.value)
    assert blame is not None
    assert (blame.plugin, blame.distribution, blame.module) == ("multi-beta", "ceir-multi-plugin",
                                                                "ceir_multi_plugin.beta")
    source = (FIXTURES / "ceir-multi-plugin" / "ceir_multi_plugin" / "beta.py").read_text().splitlines()
    assert "_shared.fail" in source[blame.lineno - 1]


def test_shared_code_called_by_no_entry_point_names_the_distribution(plugin_host: PluginHost) -> None:
    plugin_host.load_entry_points(only=MULTI.split(","))
    from ceir_multi_plugin import _shared

    with pytest.raises(RuntimeError) as err:
        _shared.fail("called from the host")  # the package's helper, called by none of its entry points
    blame = plugin_host.blame(err.value)
    assert blame is not None and set(blame.candidates) == set(MULTI.split(","))
    assert str(blame).startswith("distribution ceir-multi-plugin (entry points ") and "_shared.py:" in str(blame)


def test_first_party_and_core_code_is_blamed_on_no_plugin(plugin_host: PluginHost) -> None:
    plugin_host.load_entry_points(only=["test-plugin", "static"])
    with pytest.raises(Exception) as err:
        plugin_host.resolve("concept_source", "static:no-such-world-or-file").generate(["cat"])
    assert plugin_host.blame(err.value) is None


def _site_beside_numpy(tmp_path: Path) -> dict[str, str]:
    """A site folder holding the single-module plugin, installed as pip installs it (module file plus
    dist-info, no editable hook), and numpy beside it, as in a real site-packages."""
    import numpy

    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copy(FIXTURES / "ceir-single-module-plugin" / "ceir_single_module_plugin.py", site)
    dist = site / "ceir_single_module_plugin-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ceir-single-module-plugin\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[ceir]\nsingle-module = ceir_single_module_plugin\n")
    numpy_dir = Path(numpy.__file__).parent
    for name in ("numpy", "numpy.libs"):
        if (numpy_dir.parent / name).exists():
            (site / name).symlink_to(numpy_dir.parent / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # first on the path: numpy is imported from the site folder
    env["CEIR_LOAD_PLUGINS"] = "single-module"
    return env


def test_a_numpy_error_is_not_blamed_on_a_single_module_plugin_installed_beside_numpy(tmp_path: Path) -> None:
    env = _site_beside_numpy(tmp_path)
    script = textwrap.dedent("""
        import numpy as np
        from ceir_sdk.cli.main import _plugin_in_traceback
        from ceir_sdk.plugins import get_host

        host = get_host()
        assert host.statuses["single-module"].ok, host.statuses
        print("NUMPY=" + np.__file__)
        try:
            np.linalg.inv(np.zeros((2, 2)))  # numpy raises, called by this script, not by the plugin
        except np.linalg.LinAlgError as exc:
            print("BLAME=" + repr(_plugin_in_traceback(exc)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"NUMPY={tmp_path / 'site-packages'}" in result.stdout  # numpy really sits beside the plugin
    assert "BLAME=None" in result.stdout


def test_a_numpy_error_called_from_a_plugin_is_blamed_on_the_plugin_line(tmp_path: Path) -> None:
    env = _site_beside_numpy(tmp_path)
    result = run_ceir("test-single-numpy", env=env, CEIR_LOAD_PLUGINS="single-module")
    assert result.returncode == 1
    assert "LinAlgError" in result.stderr
    blame_line = result.stderr.strip().splitlines()[-1]
    assert ("raised inside plugin 'single-module' (ceir-single-module-plugin 0.0.1) at "
            "ceir_single_module_plugin.py:") in blame_line, result.stderr
    assert "linalg" not in blame_line


# -- strict mode -----------------------------------------------------------------------------------

def _forget(monkeypatch: pytest.MonkeyPatch) -> None:
    # Earlier tests may hold working copies of the modules that break on import.
    for name in ("ceir_broken_plugin", "ceir_multi_plugin.gamma"):
        monkeypatch.delitem(sys.modules, name, raising=False)


BREAK = {"CEIR_TEST_BREAK_PLUGIN": "1", "CEIR_TEST_BREAK_MULTI": "1"}


def test_strict_loading_reports_every_failure_at_once(plugin_host: PluginHost,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _forget(monkeypatch)
    for key, value in BREAK.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(PluginLoadError) as err:
        plugin_host.load_entry_points(only=["broken-plugin", "multi-gamma", "test-plugin"], strict=True)
    message = str(err.value)
    assert "'broken-plugin'" in message and "nonexistent_lib" in message
    assert "'multi-gamma'" in message and "gamma_lib" in message
    assert "test-plugin" not in message.replace("CEIR_SKIP_PLUGINS", "")
    assert plugin_host.statuses["test-plugin"].ok  # loaded: the failures did not stop the others


def test_strict_plugins_json_prints_json_with_every_failure_and_fails() -> None:
    result = run_ceir("plugins", "--json", CEIR_STRICT_PLUGINS="1", **BREAK)
    assert result.returncode != 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "nonexistent_lib" in rows["broken-plugin"]["error"]
    assert "gamma_lib" in rows["multi-gamma"]["error"]
    assert rows["multi-gamma"]["module"] == "ceir_multi_plugin.gamma"
    assert rows["multi-gamma"]["where"].endswith("gamma.py:11")  # the line that raised, for its authors
    assert "register_commands raised" in rows["multi-delta"]["error"]
    assert rows["test-plugin"]["ok"] and rows["multi-beta"]["ok"]
    for name in ("broken-plugin", "multi-gamma", "multi-delta"):
        assert name in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr


def test_strict_mode_lists_every_failure_for_any_command() -> None:
    for args in (("plugins",), ("test-hello", "ceir")):
        result = run_ceir(*args, CEIR_STRICT_PLUGINS="1", **BREAK)
        assert result.returncode == 1, (args, result.stderr)
        for name, why in (("broken-plugin", "nonexistent_lib"), ("multi-gamma", "gamma_lib"),
                          ("multi-delta", "register_commands raised")):
            assert f"'{name}'" in result.stderr and why in result.stderr, (args, result.stderr)
        assert "CEIR_STRICT_PLUGINS" in result.stderr
        assert "Traceback (most recent call last)" not in result.stderr
    assert "hello ceir" not in result.stdout  # strict: the command does not run with failed plugins


def test_strict_mode_without_failures_runs_commands() -> None:
    result = run_ceir("test-hello", "ceir", CEIR_STRICT_PLUGINS="1", CEIR_LOAD_PLUGINS="test-plugin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello ceir from test-plugin"
