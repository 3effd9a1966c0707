"""A non-editable install (`pip install .` into a fresh virtual environment) works from an empty
directory: nothing reaches the checkout through __file__, builds go to ./build (or
$SPECMX_BUILD), SCALE-Sim's interpreter comes from $SPECMX_SCALESIM_PYTHON or the documented
default beside the virtual environment."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "specmx", "hdl", "sim", "models", "boards"]


def test_non_editable_install_runs_from_an_empty_directory(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:          # a copy, so the build leaves nothing in the checkout
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies come from this test's environment (already installed); specmx itself is
    # built from the copy and installed as a regular, non-editable package.
    Path(site, "specmx_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-build-isolation", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SPECMX_BUILD", "SPECMX_SCALESIM_PYTHON",
                                                            "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    specmx = str(venv / "bin" / "specmx")

    where = subprocess.run([str(python), "-c", "import specmx.sim.runner as r; print(r.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env)
    assert where.stdout.startswith(site), where.stdout + where.stderr          # not the checkout

    proc = subprocess.run([specmx, "fma", "check", "--vectors", "300", "--stages", "1"],
                          capture_output=True, text=True, cwd=work, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("300 vectors, 0 mismatches"), proc.stdout + proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["build"]                  # ./build, nothing else
    assert any(p.name.startswith("fma-verilator-") for p in (work / "build" / "sim").iterdir())
    # $SPECMX_BUILD moves the builds (here to a shared cache, so this engine compiles once per run)
    shared = Path(os.environ.get("SPECMX_BUILD", ROOT / "build"))
    proc = subprocess.run([specmx, "gemm", "check", "--rows", "2", "--cols", "3", "--shape", "3,4,5",
                           "--buffers", "32,32,32"], capture_output=True, text=True, cwd=work,
                          env={**env, "SPECMX_BUILD": str(shared)})
    assert proc.returncode == 0 and "0 mismatches" in proc.stdout, proc.stdout + proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["build"]
    assert not any(p.name.startswith("gemm-") for p in (work / "build" / "sim").iterdir())

    # SCALE-Sim: the default interpreter is beside the venv (none here), the variable overrides it.
    proc = subprocess.run([specmx, "gemm", "perf", "--compare", "scalesim", "--shape", "16,16,16"],
                          capture_output=True, text=True,
                          cwd=work, env=env)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0
    assert str(tmp_path / ".venv-scalesim" / "bin" / "python") in proc.stderr
    env["SPECMX_SCALESIM_PYTHON"] = str(Path(sys.prefix).parent / ".venv-scalesim" / "bin" / "python")
    proc = subprocess.run([specmx, "gemm", "perf", "--compare", "scalesim", "--shape", "16,16,16", "--json"],
                          capture_output=True, text=True, cwd=work, env=env)
    assert proc.returncode == 0 and '"scalesim_compute_cycles"' in proc.stdout, proc.stderr
