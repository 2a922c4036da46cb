"""Edits to a copied model bundle that tests use to make it wrong in one known way."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import helper, numpy_helper

from jepa_pilot.common.bundle import sha256


def scale_output(bundle: Path, name: str, output: str, factor: float = 1.5) -> None:
    """The same graph and weights in ``<name>.onnx``, its output ``output`` multiplied by ``factor``."""
    graph = onnx.load(str(bundle / f"{name}.onnx"))
    for node in graph.graph.node:
        node.output[:] = ["raw" if o == output else o for o in node.output]
    graph.graph.initializer.append(numpy_helper.from_array(np.array(factor, np.float32), "scale"))
    graph.graph.node.append(helper.make_node("Mul", ["raw", "scale"], [output]))
    onnx.save(graph, str(bundle / f"{name}.onnx"))


def rehash(bundle: Path, name: str = "rollout") -> None:
    """Make bundle.yaml vouch for the graph now in the folder (a consistent but wrong bundle)."""
    meta = yaml.safe_load((bundle / "bundle.yaml").read_text())
    meta["files"][name]["sha256"] = sha256(bundle / f"{name}.onnx")
    (bundle / "bundle.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
