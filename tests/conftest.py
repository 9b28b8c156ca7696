import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "deterministic",
    deadline=None,
    database=None,
    derandomize=True,
    max_examples=40,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile("nondeterministic", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("SPARSEOPT_HYPOTHESIS_PROFILE", "deterministic"))


def _has_gpu():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and cupy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
