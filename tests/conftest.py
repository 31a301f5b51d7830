"""Shared test settings: hypothesis profiles sized for a 2-core CI machine, GPU skip marker, float64 RNG."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minicnn import backend

# "ci" keeps the whole suite (notebooks included) under 10 minutes on 2 cores; "thorough" is for local runs:
#   HYPOTHESIS_PROFILE=thorough python -m pytest
settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

requires_gpu = pytest.mark.skipif(not backend.gpu_available(),
                                  reason=f"no usable GPU: {backend.gpu_unavailable_reason() or 'unknown'}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="module", params=["readable", "fast"])
def each_cpu_path(request):
    """Run the test once on each CPU path (minicnn.cpu_path): the readable NumPy ops and the fast C path.
    The gradient and property suites use it for every test (``pytestmark = pytest.mark.usefixtures(...)``)."""
    import minicnn
    if request.param == "fast":
        from minicnn import fast_cpu
        if not fast_cpu.available():
            pytest.skip(fast_cpu.unavailable_reason())
    with minicnn.cpu_path(request.param):
        yield request.param
