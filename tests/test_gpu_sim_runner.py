"""Run the CUDA-simulator tests (``test_gpu_cudasim.py``) in a subprocess.

``NUMBA_ENABLE_CUDASIM`` is read once, when numba.cuda is first imported, so
the simulator tests cannot share a process with tests that use (or might have
imported) the real numba.cuda.  This test starts a fresh interpreter with the
variable set and runs ``pytest -m cudasim`` on that module, so the plain
``make test`` runs every kernel in the simulator.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cudasim_suite_in_a_subprocess():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("NUMBA_ENABLE_CUDASIM=1 here: the cudasim tests run in this process")
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-m", "cudasim", "-q", "-p", "no:cacheprovider",
           "tests/test_gpu_cudasim.py"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cudasim tests failed:\n{output[-6000:]}"
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 40, summary
    assert "skipped" not in summary and "failed" not in summary, summary
