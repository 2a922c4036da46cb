"""The machine a measurement ran on, recorded beside every number written to JSON."""
from __future__ import annotations

import os
import platform
import shlex
import time

__all__ = ["machine", "command_line"]


def command_line(argv: list[str]) -> str:
    """``argv`` (the arguments after ``jepa-pilot``) as a command a user would type."""
    return shlex.join(["jepa-pilot", *argv])


def machine() -> dict:
    """CPU count, platform, Python version and the date."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}
