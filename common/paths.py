"""Where the package's data files (launch/, config/, models/) live."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["package_share", "source_root"]

PACKAGE = "jepa_pilot"


def source_root() -> Path | None:
    """The source checkout (folder with package.xml, launch/ and config/), if running from one."""
    root = Path(__file__).resolve().parents[1]  # resolve(): colcon --symlink-install links here
    return root if (root / "package.xml").is_file() and (root / "config").is_dir() else None


def package_share(package: str = PACKAGE) -> Path:
    """``$(find-pkg-share package)``: ``<prefix>/share/<package>`` from AMENT_PREFIX_PATH.

    For jepa_pilot, falls back to the source checkout, so a checkout works
    without a colcon install.
    """
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        share = Path(prefix) / "share" / package
        if share.is_dir():
            return share
    if package == PACKAGE and (root := source_root()) is not None:
        return root
    raise FileNotFoundError(
        f"package {package!r} not found: no share/{package} under AMENT_PREFIX_PATH "
        f"({os.environ.get('AMENT_PREFIX_PATH', '<unset>')}); source its install/setup.bash or scripts/env.sh")
