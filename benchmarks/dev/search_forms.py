"""Same lease A/B: the search graph in form 1 (the model's own rollout on expanded actions, as at e8ef1ab)
and form 2 (HeldRollout), each as ONNX Runtime CUDA graph and as the torch CUDA-graph floor, interleaved.

Needs CUDA and onnxruntime-gpu. `OUT=DIR python benchmarks/dev/search_forms.py` writes DIR/forms.json
(benchmarks/dev/gpu_search_forms.json is that file from an H200, at commit bd3a88b)."""
import json, os, sys, tempfile
from pathlib import Path
import numpy as np, torch
from jepa_pilot.control import search_graph as sg
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.evaluation.gpu_bench import timed_ms, _cold_plan
from jepa_pilot.perception.latents import resolve_bundle
from jepa_pilot.perception.engine import WorldModelEngine
from jepa_pilot.world_model.finetune import load_world_model

class ModelRollout(torch.nn.Module):
    def __init__(self, model):
        super().__init__(); self.model = model
    def forward(self, z_hist, macro):
        n, h, a = macro.shape
        return self.model.rollout(z_hist.expand(n, *z_hist.shape[-2:]),
                                  macro[:, :, None].expand(n, h, self.model.cfg.frameskip, a))

bundle = WorldModelEngine(resolve_bundle("two_rooms"), providers=["cpu"]).bundle
spec = bundle.spec
model = load_world_model(bundle.root).cuda().eval()
rng = np.random.default_rng(0)
z = rng.standard_normal((spec.history, spec.latent_dim)).astype(np.float32)
goal = rng.standard_normal(spec.latent_dim).astype(np.float32)
held = sg.HeldRollout
planners = {}
for form, rollout in ((1, ModelRollout), (2, held)):
    sg.HeldRollout, sg.FORM = rollout, form
    for name, cfg in (("default", {}), ("samples4096", {"samples": 4096})):
        config = PlannerConfig(**cfg)
        planners[f"form{form} ort {name}"] = sg.graph_planner(bundle, config, load_world_model, "cuda",
                                                              cache=Path(tempfile.mkdtemp()))
        planners[f"form{form} torch {name}"] = sg.GraphPlanner(
            sg.torch_runner(sg.SearchGraph(model, config), capture=True), config, spec, "cuda")
out = {k: [] for k in planners}
for rnd in range(3):
    for k, p in planners.items():
        out[k].append(timed_ms(_cold_plan(p, z, goal), 150)["ms_p50"])
res = {"device": torch.cuda.get_device_name(0), "rounds_ms_p50": out,
       "median_ms": {k: float(np.median(v)) for k, v in out.items()},
       "captured": {k: p.captured for k, p in planners.items() if " ort " in k}}
print(json.dumps(res, indent=1))
Path(os.environ["OUT"], "forms.json").write_text(json.dumps(res, indent=1))
