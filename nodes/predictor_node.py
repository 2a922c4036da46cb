"""predictor_node: the world model's monitor. Forecasts the executed plan, measures surprise.

Subscribes /jepa/latent (jepa_pilot/Latent), /jepa/plan (jepa_pilot/PlanStatus); both handed in
           by the encoder and the planner instead in one process (nodes/pilot_node.py)
Publishes  /jepa/forecast (jepa_pilot/Forecast: the latents the bundle forecasts for the plan
           being executed, from the latent the plan was made from; one per model step)
           /jepa/surprise (jepa_pilot/Surprise: distance between the forecast made one model
           step ago and the latent observed now)
           /diagnostics (forecast rate, latency frame stamp -> forecast, mean surprise)

Only plans being executed (status PLANNING) are forecast. The history the
rollout starts from is the one the planner used: the latents one model step
apart ending at the plan's latent (perception.latents.LatentHistory).
Latents and plans of another model id are dropped with a message, except
the first of the staged model after a hot-swap was announced: the node
switches to it then, and starts its history and forecasts afresh.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus

from jepa_pilot.common.timing import RateMeter, SampleWindow
from jepa_pilot.control.supervisor import Status
from jepa_pilot.msg import Forecast, Latent, PlanStatus, Surprise
from jepa_pilot.nodes.model_node import ModelNode, ModelNodeConfig
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.perception.latents import ForecastTracker, LatentHistory, latent_problem


@dataclasses.dataclass(frozen=True)
class PredictorConfig(ModelNodeConfig):
    pass


CONFIG = PredictorConfig  # parameters this node declares (checked against launch files by tests)


class PredictorNode(ModelNode):
    def __init__(self) -> None:
        super().__init__("predictor", PredictorConfig)
        self.rate, self.latency, self.surprises = RateMeter(), SampleWindow(), SampleWindow(50)
        self.counts = dict(forecasts=0, dropped=0, plans_without_latent=0)

    def configure(self, engine) -> None:
        self._start_streams(engine.spec)
        self.forecast_pub = self.publisher(Forecast, "/jepa/forecast", qos("reliable"))
        self.surprise_pub = self.publisher(Surprise, "/jepa/surprise", qos("reliable"))

    def _start_streams(self, spec) -> None:
        self.history = LatentHistory(spec.history, spec.model_step, keep=spec.history * spec.model_step + 2.0)
        self.tracker = ForecastTracker(spec.model_step, tolerance=spec.control_period / 2)

    def switched(self, old) -> None:
        self._start_streams(self.engine.spec)

    def _follow(self, model_id: str) -> None:
        """A message of another model: switch if it is the staged one."""
        if model_id != self.engine.model_id:
            with self.lock:
                self.switch_engine(model_id)

    def activate(self) -> list:
        return [self.subscribe(Latent, "/jepa/latent", self.on_latent, qos("reliable")),
                self.subscribe(PlanStatus, "/jepa/plan", self.on_plan, qos("reliable"))]

    def _drop(self, what: str, problem: str) -> None:
        self.counts["dropped"] += 1
        self.get_logger().warning(f"{what} dropped: {problem}", throttle_duration_sec=2.0)

    def on_latent(self, msg: Latent) -> None:
        self._follow(msg.model_id)
        spec = self.engine.spec
        problem = latent_problem(spec, msg.model_id, msg.shape, len(msg.data))
        if problem:
            return self._drop("latent", problem)
        z, stamp = np.asarray(msg.data, dtype=np.float32), self.stamp_of(msg)
        self.history.add(stamp, z)
        distance = self.tracker.surprise(stamp, z)
        if distance is not None:
            self.surprises.add(distance)
            self.surprise_pub.publish(Surprise(header=msg.header, model_id=spec.model_id, distance=distance,
                                               horizon_s=spec.model_step))

    def on_plan(self, msg: PlanStatus) -> None:
        self._follow(msg.model_id)
        spec = self.engine.spec
        if msg.status != Status.PLANNING or not len(msg.actions):
            return
        if msg.model_id != spec.model_id:
            return self._drop("plan", f"model id {msg.model_id!r} is not the bundle's {spec.model_id!r}")
        steps, dim = spec.horizon * spec.frameskip, spec.action_dim
        actions = np.asarray(msg.actions, dtype=np.float32)
        if actions.size == spec.horizon * dim:  # one action per model step: hold each for frameskip periods
            actions = np.repeat(actions.reshape(spec.horizon, dim), spec.frameskip, axis=0)
        if actions.size != steps * dim:
            return self._drop("plan", f"{actions.size} action values, the bundle's rollout takes {steps} x {dim}")
        actions = actions.reshape(steps, dim)
        z_hist = self.history.window(self.stamp_of(msg))
        if z_hist is None:
            self.counts["plans_without_latent"] += 1
            return
        latents = self.engine.rollout(z_hist, actions[None])[0]
        self.tracker.add(self.stamp_of(msg), latents)
        self.forecast_pub.publish(Forecast(
            header=msg.header, model_id=spec.model_id, step_period=spec.model_step, latent_shape=[spec.latent_dim],
            horizon=spec.horizon, action_dim=dim, actions=actions[::spec.frameskip].ravel().tolist(),
            latents=latents.astype(np.float32).ravel().tolist()))
        self.counts["forecasts"] += 1
        self.rate.tick(self.wall())
        now = self.ros_now()
        if now is not None:
            self.latency.add(now - self.stamp_of(msg))

    def diagnostic_values(self) -> dict:
        (l50, l99), (s50,) = self.latency.percentiles(50, 99), self.surprises.percentiles(50)
        return {"forecast_rate_hz": self.rate.rate(self.wall()), "latency_ms_p50": l50 * 1e3,
                "latency_ms_p99": l99 * 1e3, "surprise_p50": s50, **self.counts}

    def diagnostic_level(self) -> tuple[int, str]:
        return DiagnosticStatus.OK, "forecasting" if self.rate.rate(self.wall()) > 0 else "no plan being executed"


def main(args=None) -> int:
    return run_node(lambda: PredictorNode().start(), "predictor", args)


if __name__ == "__main__":
    raise SystemExit(main())
