"""The package as users get it: stubs match the compiled module, the kernels ship inside it, and
the built wheel installs and works in a fresh virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import reasonrl
REPO_ROOT = Path(__file__).resolve().parent.parent


def _built_wheel() -> Path:
    """The wheel `make test` built; skipped (with the reason shown) when pytest runs alone."""
    wheel_dir = Path(os.environ.get("REASONRL_WHEEL_DIR", REPO_ROOT / "dist"))
    if not wheel_dir.is_absolute():
        wheel_dir = REPO_ROOT / wheel_dir
    wheels = sorted(wheel_dir.glob("reasonrl-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        pytest.skip(f"no wheel in {wheel_dir}: run `make test` (or `maturin build -o dist`) first")
    return wheels[-1]


def test_stubs_match_compiled_module():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "reasonrl._core",
         "--allowlist", str(REPO_ROOT / "tests" / "stubtest_allowlist.txt")],
        capture_output=True, text=True, cwd=REPO_ROOT.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_names_are_exported():
    for name in reasonrl.__all__:
        assert getattr(reasonrl, name) is not None
    package_dir = Path(reasonrl.__file__).parent
    assert (package_dir / "py.typed").exists()
    assert (package_dir / "_core.pyi").exists()


def test_kernels_are_part_of_the_installed_package():
    import reasonrl.kernels

    package_dir = Path(reasonrl.__file__).resolve().parent
    assert Path(reasonrl.kernels.__file__).resolve().parent == package_dir / "kernels"
    if os.environ.get("REASONRL_WHEEL_DIR"):  # `make test`: the wheel, not the source tree
        site = Path(sysconfig.get_paths()["purelib"]).resolve()
        assert package_dir.is_relative_to(site), f"{package_dir} is not an installed package"


def test_wheel_is_abi3_and_carries_everything():
    wheel = _built_wheel()
    assert "-cp310-abi3-" in wheel.name and ("manylinux" in wheel.name or "macosx" in wheel.name or "win" in wheel.name)
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("reasonrl/__init__.py", "reasonrl/_core.pyi", "reasonrl/py.typed", "reasonrl/kernels/__init__.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert any(n.startswith("reasonrl/_core.") and n.endswith((".so", ".pyd")) for n in names)
    source_kernels = {f"reasonrl/kernels/{p.relative_to(REPO_ROOT / 'kernels')}" for p in (REPO_ROOT / "kernels").rglob("*.py")}
    assert source_kernels <= names, f"kernels missing from the wheel: {sorted(source_kernels - names)}"


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    """A clean venv with only the wheel and numpy: the compiled core works without torch."""
    wheel = _built_wheel()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True)
    subprocess.run([*pip, "numpy"], check=True)
    check = (
        "import importlib.util, pathlib, reasonrl\n"
        "adv = reasonrl.compute_advantages([1.0, 0.0, 0.5, 0.5], [0, 0, 1, 1], 'dr_grpo')\n"
        "assert adv.tolist() == [0.5, -0.5, 0.0, 0.0], adv\n"
        "spec = importlib.util.find_spec('reasonrl.kernels')\n"
        "assert pathlib.Path(spec.origin).is_relative_to(pathlib.Path(reasonrl.__file__).parent)\n"
        "print(pathlib.Path(reasonrl.__file__).parent)\n"
    )
    out = subprocess.run([str(python), "-c", check], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(venv)
