"""Shared fixtures for the adanns test suite.

* ``rng``: a numpy Generator with a fresh seed per test.  The seed is printed in
  the report of a failing test; set ``ADANNS_TEST_SEED=<seed>`` to replay it.
* ``each_simd_level``: parametrizes a test over ``adanns.available_simd_levels()``,
  activates the level and restores the previous one afterwards (a guard, even
  when the test fails).
"""

from __future__ import annotations

import os
import secrets
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Helpers live next to the tests; make them importable whatever --import-mode is.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

settings.register_profile(
    "adanns",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("adanns"), max_examples=300)
settings.load_profile(os.environ.get("ADANNS_HYPOTHESIS_PROFILE", "adanns"))

_SEED_KEY = "rng_seed"


@pytest.fixture
def rng(request) -> np.random.Generator:
    env = os.environ.get("ADANNS_TEST_SEED")
    seed = int(env) if env else secrets.randbits(32)
    request.node.user_properties.append((_SEED_KEY, seed))
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for key, value in item.user_properties:
            if key == _SEED_KEY:
                report.sections.append(
                    ("rng seed", f"replay with ADANNS_TEST_SEED={value}")
                )


def _available_levels() -> list[str]:
    try:
        import adanns
    except ImportError:  # collection must not crash; the tests themselves will fail
        return ["scalar"]
    return list(adanns.available_simd_levels())


def pytest_generate_tests(metafunc):
    if "each_simd_level" in metafunc.fixturenames:
        metafunc.parametrize("each_simd_level", _available_levels(), indirect=True)


@pytest.fixture
def each_simd_level(request):
    """Activate one SIMD level for the test; restore the previous level afterwards."""
    import adanns

    previous = adanns.simd_level()
    adanns.set_simd_level(request.param)
    try:
        yield request.param
    finally:
        adanns.set_simd_level(previous)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session (tests/test_cluster_*.py); Ray takes seconds to start."""
    ray = pytest.importorskip("ray", reason="the cluster tests need the 'ray' extra (make test installs it)")
    if not ray.is_initialized():
        # Ray starts its workers at nice 15: beside any other busy process they starve, and Serve's proxy then
        # misses its 60 s start deadline. At the tests' own priority a busy machine slows them evenly instead.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
