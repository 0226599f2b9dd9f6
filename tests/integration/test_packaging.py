"""
A release-ready package: ``python -m build`` makes an sdist and a wheel that pass ``twine check``, and the
wheel installs into a fresh virtualenv (a plain ``python -m venv``, no system site-packages) with nothing but
``pip install dist/*.whl``, where Airflow finds the provider.

Slow: installing Airflow into a fresh virtualenv takes one to three minutes. pip uses the machine's
configured package index, as a user's would.
"""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from typing import TYPE_CHECKING

import pytest

import airflow_milvus_import
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

VERSION = airflow_milvus_import.__version__
DIST_NAME = "airflow_milvus_import"


def run(
    command: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run a command; on failure, fail the test with its output (the last part: pip is talkative)."""
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{' '.join(command)} took more than {timeout:.0f} s: {str(error.stdout)[-3000:]}")
    if completed.returncode != 0:
        output = f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        pytest.fail(f"{' '.join(command)} exited {completed.returncode}:\n{output}")
    return completed.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of the working tree: the sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)], timeout=600)
    return out


def only(folder: Path, pattern: str) -> Path:
    (found,) = sorted(folder.glob(pattern))
    return found


def test_build_makes_an_sdist_and_a_wheel_of_the_one_version(dist: Path) -> None:
    wheel = only(dist, "*.whl")
    sdist = only(dist, "*.tar.gz")
    assert wheel.name == f"{DIST_NAME}-{VERSION}-py3-none-any.whl"
    assert sdist.name == f"{DIST_NAME}-{VERSION}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        metadata = email.parser.Parser().parsestr(
            archive.read(f"{DIST_NAME}-{VERSION}.dist-info/METADATA").decode()
        )
        entry_points = archive.read(f"{DIST_NAME}-{VERSION}.dist-info/entry_points.txt").decode()
    assert metadata["Name"] == "airflow-milvus-import"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.10"
    assert any(requirement.startswith("apache-airflow") for requirement in metadata.get_all("Requires-Dist"))
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = airflow_milvus_import:get_provider_info" in entry_points


def test_the_wheel_holds_the_package_its_type_marker_and_the_local_server_but_no_tests(dist: Path) -> None:
    with zipfile.ZipFile(only(dist, "*.whl")) as archive:
        names = archive.namelist()
    assert "airflow_milvus_import/py.typed" in names
    for module in (
        "__init__.py",
        "hooks/milvus_import.py",
        "triggers/milvus_import.py",
        "sensors/milvus_import.py",
        "operators/milvus_import.py",
        "lineage.py",
        "links.py",
        "local/__init__.py",
        "local/__main__.py",
    ):
        assert f"airflow_milvus_import/{module}" in names
    assert not [name for name in names if name.startswith(("tests/", "example_dags/", "benchmarks/"))]
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {DIST_NAME, f"{DIST_NAME}-{VERSION}.dist-info"}


def test_the_sdist_can_rebuild_everything(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as archive:
        names = archive.getnames()
    root = f"{DIST_NAME}-{VERSION}"
    for required in (
        "pyproject.toml",
        "README.md",
        "airflow_milvus_import/py.typed",
        "airflow_milvus_import/__init__.py",
    ):
        assert f"{root}/{required}" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_twine_check_passes(dist: Path) -> None:
    output = run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))], timeout=120
    )
    assert output.count("PASSED") == 2


@pytest.fixture(scope="module")
def fresh_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A plain virtualenv with the wheel installed by ``pip install <wheel>`` alone."""
    root = tmp_path_factory.mktemp("fresh-venv")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    # An environment like a user's shell: nothing of this test session's Airflow configuration.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "PYTHON"))}
    env.update(
        {
            "AIRFLOW_HOME": str(root / "airflow-home"),
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
        }
    )
    run([str(venv / "bin" / "pip"), "install", str(only(dist, "*.whl"))], timeout=1500, env=env, cwd=root)
    return venv, env


def in_venv(venv: Path, command: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run in the fresh virtualenv's folder: ``python -c`` puts the working directory first on sys.path,
    so running from the work tree would import the package from source rather than from the install."""
    return run(command, timeout=timeout, env=env, cwd=venv.parent)


def test_the_wheel_installs_into_a_fresh_virtualenv_and_airflow_lists_the_provider(
    fresh_venv: tuple[Path, dict[str, str]],
) -> None:
    venv, env = fresh_venv
    python = str(venv / "bin" / "python")

    listed = run(
        [str(venv / "bin" / "airflow"), "providers", "list", "--output", "json"], timeout=300, env=env
    )
    providers = {item["package_name"]: item["version"] for item in json.loads(listed[listed.index("[") :])}
    assert providers["airflow-milvus-import"] == VERSION

    links = run(
        [str(venv / "bin" / "airflow"), "providers", "links", "--output", "json"], timeout=300, env=env
    )
    assert "airflow_milvus_import.links.MilvusImportJobLink" in links

    in_venv(venv, [python, "-c", "import airflow_milvus_import.hooks.milvus_import"], env)
    checked = in_venv(
        venv,
        [
            python,
            "-c",
            "import json, importlib.util, importlib.metadata as md\n"
            "import airflow_milvus_import as p\n"
            "import airflow_milvus_import.operators.milvus_import\n"
            "import airflow_milvus_import.sensors.milvus_import\n"
            "import airflow_milvus_import.triggers.milvus_import\n"
            "import airflow_milvus_import.lineage, airflow_milvus_import.links\n"
            "from airflow_milvus_import.lineage import milvus_collection_asset\n"
            "print(json.dumps({'version': p.__version__, 'dist': md.version('airflow-milvus-import'),\n"
            "  'file': p.__file__, 'asset': milvus_collection_asset('books', endpoint='http://m:19530').uri,\n"
            "  'openlineage': importlib.util.find_spec('openlineage') is not None}))",
        ],
        env,
    )
    facts = json.loads(checked.strip().splitlines()[-1])
    assert facts["version"] == facts["dist"] == VERSION
    assert facts["file"].startswith(str(venv)), "imported from the fresh install, not the work tree"
    assert facts["asset"] == "milvus://m:19530/default/books"
    # everything above imported, and the asset helper worked, without the optional OpenLineage packages
    assert facts["openlineage"] is False
    assert (venv / "bin" / "milvus-import-local").exists()


def test_the_quick_start_runs_from_the_wheel_install(
    dist: Path, fresh_venv: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The README's main job, run by the fresh install (with the ``local`` extra), not by the work tree."""
    venv, env = fresh_venv
    wheel = only(dist, "*.whl")
    run([str(venv / "bin" / "pip"), "install", f"{wheel}[local]"], timeout=1500, env=env, cwd=venv.parent)
    script = REPO_ROOT / "scripts" / "run_example.py"
    output = in_venv(
        venv,
        [
            str(venv / "bin" / "python"),
            str(script),
            "--rows",
            "2000",
            "--files",
            "2",
            "--home",
            str(tmp_path),
        ],
        env,
        timeout=900,
    )
    assert "RESULT: OK, imported row count verified" in output
    assert "Row count in Milvus: 2,000" in output
