import gc

import pytest

pytest_plugins = ["fixtures_redis", "fixtures_redis_ha", "fixtures_zoo", "fixtures_suite"]


def pytest_configure(config):
    """Tests configure logging many times in one process (commands run in-process) and capture it:
    no logger may keep the configuration of its first use."""
    import modipick.runtime.logging

    modipick.runtime.logging.CACHE_LOGGERS = False


@pytest.fixture(autouse=True)
def _default_logging():
    """A test that configures logging (a command run in-process) leaves structlog as it found it."""
    yield
    import structlog

    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _frozen_heap():
    """This process imports TensorFlow, scikit-learn and every service (~370,000 objects): a full
    collection of it takes ~180 ms, stalling the in-process servers and clients of timing tests (a
    200 ms deadline once ended after 512 ms). Each test starts with what exists frozen, as the
    services freeze their start-up heap (modipick.runtime.entrypoint.freeze_startup_heap)."""
    gc.freeze()
    yield
