"""Model bundles, as perception reads them: the format lives in :mod:`jepa_pilot.common.bundle`.

The trainer (``world_model/export.py``) writes bundles and the runtime
(``perception/engine.py``) reads them; the format sits below both so that
neither imports the other. This module keeps the names perception and the
nodes have always imported.
"""
from jepa_pilot.common.bundle import FILES, FORMAT, Bundle, BundleError, BundleSpec, load_bundle, sha256

__all__ = ["FORMAT", "FILES", "BundleError", "BundleSpec", "Bundle", "load_bundle", "sha256"]
