"""Shared fixtures. Tiers are pytest markers: unit, sim, ros, slow, gpu (see pyproject.toml).

Every test has exactly one tier marker; a test with none or several fails
with a message that says so (README, Tests).
"""
from __future__ import annotations

import os
import random

import pytest

# Tests never let DDS leave this machine, and a run outside `make` still gets
# a domain of its own (the Makefile and .ci/run set one per run).
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.setdefault("MUJOCO_GL", "egl")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


TIERS = ("unit", "sim", "ros", "slow", "gpu")


def tiers_of(item) -> list[str]:
    """The tier markers of a collected test (module, class and function markers together)."""
    return sorted({m.name for m in item.iter_markers()} & set(TIERS))


def pytest_runtest_setup(item):
    tiers = tiers_of(item)
    if len(tiers) != 1:
        pytest.fail(f"{item.nodeid} has tier markers {tiers or 'none'}: give it exactly one of "
                    f"{', '.join(TIERS)} (see the README's Tests section)", pytrace=False)


def pytest_collection_modifyitems(config, items):
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
