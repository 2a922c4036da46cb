"""Where the package's data files (launch/, config/, models/) live.

Three layouts, one answer from :func:`package_share`:

- a colcon install: ``<prefix>/share/jepa_pilot`` on AMENT_PREFIX_PATH;
- a source checkout (also ``pip install -e .``): the repository root;
- a pip-installed wheel: the ``jepa_pilot/share`` folder next to the code.

``python -m jepa_pilot.common.paths`` prints it.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["package_share", "source_root", "installed_share"]

PACKAGE = "jepa_pilot"


def _is_share(folder: Path) -> bool:
    """A folder laid out like share/jepa_pilot: package.xml and config/."""
    return (folder / "package.xml").is_file() and (folder / "config").is_dir()


def source_root() -> Path | None:
    """The source checkout (folder with package.xml, launch/ and config/), if running from one."""
    root = Path(__file__).resolve().parents[1]  # resolve(): colcon --symlink-install links here
    return root if _is_share(root) else None


def installed_share() -> Path | None:
    """``jepa_pilot/share`` of a pip-installed wheel (pyproject's package data), if there is one."""
    share = Path(__file__).resolve().parents[1] / "share"
    return share if _is_share(share) else None


def package_share(package: str = PACKAGE) -> Path:
    """``$(find-pkg-share package)``: ``<prefix>/share/<package>`` from AMENT_PREFIX_PATH.

    For jepa_pilot, falls back to the source checkout, then to the data
    installed with the wheel, so neither needs a colcon install.
    """
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        share = Path(prefix) / "share" / package
        if share.is_dir():
            return share
    if package == PACKAGE and (root := source_root() or installed_share()) is not None:
        return root
    hint = "source its install/setup.bash or scripts/env.sh"
    if package == PACKAGE:
        hint += ", or pip install jepa-pilot (the wheel carries its data)"
    raise FileNotFoundError(
        f"package {package!r} not found: no share/{package} under AMENT_PREFIX_PATH "
        f"({os.environ.get('AMENT_PREFIX_PATH', '<unset>')}); {hint}")


if __name__ == "__main__":
    print(package_share())
