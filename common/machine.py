"""The machine a measurement ran on, recorded beside every number written to JSON."""
from __future__ import annotations

import os
import platform
import time

__all__ = ["machine"]


def machine() -> dict:
    """CPU count, platform, Python version and the date."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}
