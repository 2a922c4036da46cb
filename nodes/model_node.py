"""The base of the world-model nodes: a lifecycle node that loads a model bundle.

* ``on_configure`` loads the bundle (``bundle``, ``providers``, ``threads``)
  into a WorldModelEngine and calls the node's ``configure(engine)``; any
  error is logged once with its reason and the node stays *unconfigured*
  (alive, reporting the fault on /diagnostics, ready for another
  ``configure`` transition): it never crash-loops.
* ``on_activate`` calls ``activate()``, which creates the subscriptions,
  timers and services and returns them; ``on_deactivate`` destroys them, then
  calls ``deactivate()``; both enable / disable the lifecycle publishers;
  ``on_cleanup`` releases the engine. Transitions hold ``self.lock``, so a
  node whose callbacks run in other threads takes the same lock and checks
  ``self.active`` before it touches what a transition tears down.
* A new bundle announced on ``/jepa/model_update`` is loaded and warmed
  off the control path (perception/swap.py), checked with ``check_fit``, and
  answered on ``/jepa/model_ready``; the node switches to it when its
  protocol says so (``switch_engine``), and the current model keeps running
  until then, or for good if the bundle is refused.
* ``autostart`` (default true) configures and activates the node itself at
  startup: ``jepa-pilot up`` has no lifecycle manager.
* ``/diagnostics`` about 1 Hz on the wall clock (also when unconfigured or
  when sim time stops): lifecycle state, model id, provider in use, plus the
  node's ``diagnostic_values()``.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.subscription import Subscription
from rclpy.timer import Timer

from jepa_pilot.common.config import Config, setting
from jepa_pilot.msg import ModelReady, ModelUpdate
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import diagnostics, from_time
from jepa_pilot.nodes.runner import raise_priority
from jepa_pilot.perception.engine import PROVIDERS, WorldModelEngine
from jepa_pilot.perception.latents import resolve_bundle
from jepa_pilot.perception.swap import Staging, load_engine

__all__ = ["ModelNodeConfig", "ModelNode", "SUCCESS", "FAILURE"]

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@dataclasses.dataclass(frozen=True)
class ModelNodeConfig(Config):
    bundle: str = setting("two_rooms", "model bundle: a folder name in the package's models/ or a path")
    providers: tuple = setting(("cuda", "cpu"), "ONNX Runtime providers in order of preference "
                               f"({', '.join(PROVIDERS)}); CPU is always the last resort")
    threads: int = setting(0, "ONNX Runtime intra-op threads (0: its default, one per core)", low=0, high=256)
    autostart: bool = setting(True, "configure and activate at startup (false: wait for lifecycle transitions)")
    nice: int = setting(0, "process niceness asked for at startup (< 0: the loop preempts the rest of the "
                        "machine; needs CAP_SYS_NICE, else a warning); never raised", low=-20, high=19)

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [p for p in self.providers if p not in PROVIDERS]
        if unknown or not self.providers:
            self._fail("providers", list(self.providers), f"a list of {', '.join(PROVIDERS)}")


class ModelNode(LifecycleNode):
    """Subclasses implement configure(engine) and activate(), and may extend deactivate() and cleanup()."""

    def __init__(self, name: str, config_class: type[ModelNodeConfig]) -> None:
        super().__init__(name)
        self.params = ConfigParameters(self, config_class, on_change=self.on_params)
        why_not = raise_priority(self.cfg.nice)
        if why_not:
            self.get_logger().warning(why_not)
        self.engine: WorldModelEngine | None = None
        self.lock = threading.RLock()  # transitions vs. work in other threads (the planning thread)
        self.state_label = "unconfigured"
        self.fault = ""  # why the last configure failed
        self.staging: Staging | None = None
        self.swaps = 0
        self.ready_pub = self.create_publisher(ModelReady, "/jepa/model_ready", qos("latched"))
        self._lifecycle_pubs: list = []
        self._handles: list = []  # what activate() created
        self.handed_in: set[str] = set()  # topics another node of this process hands in (not subscribed)
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos("reliable"))
        self.create_timer(1.0, self._publish_diagnostics, clock=self.steady)

    @property
    def cfg(self):
        return self.params.config

    @property
    def active(self) -> bool:
        return self.state_label == "active"

    # --- hooks for subclasses -------------------------------------------------------
    def configure(self, engine: WorldModelEngine) -> None:
        """Check the bundle fits, create lifecycle publishers; raise ValueError with a reason if not."""

    def activate(self) -> list:
        """Create subscriptions, timers and services; return them (the base destroys them on deactivate)."""
        return []

    def deactivate(self) -> None:
        """After activate()'s handles are destroyed (e.g. leave the robot stopped)."""

    def cleanup(self) -> None:
        """Release what configure() made (lifecycle publishers are destroyed by the base)."""

    def on_params(self, cfg) -> None:
        """A dynamic parameter changed (already validated)."""

    def rollout_batches(self) -> tuple[int, ...]:
        """The rollout batch sizes this node runs (warmed at configure)."""
        return (1,)

    def _warm(self, engine: WorldModelEngine) -> None:
        """Run the graphs once now, so that the first frame does not pay for allocation or a TensorRT
        build. A graph that fails here is only warned about: it fails again, and is reported as an
        engine error, when it runs for real (a node whose bundle loads stays configurable)."""
        try:
            engine.warm(self.rollout_batches())
        except Exception as exc:  # noqa: BLE001 - reported where it matters: at run time
            self.get_logger().warning(f"warm-up run failed, the first run will fail the same way: {exc}")

    def check_fit(self, engine: WorldModelEngine) -> None:
        """Raise ValueError if a new bundle cannot replace the current one in this node."""
        old, new = self.engine.spec, engine.spec
        if (new.action_names, new.control_period) != (old.action_names, old.control_period):
            raise ValueError(f"its actions {new.action_names} every {new.control_period:g} s differ from the "
                             f"current model's {old.action_names} every {old.control_period:g} s")

    def switched(self, old: WorldModelEngine) -> None:
        """After ``switch_engine``: reset what belonged to the old model (histories, forecasts)."""

    def diagnostic_values(self) -> dict:
        return {}

    def diagnostic_level(self) -> tuple[int, str]:
        return DiagnosticStatus.OK, "running"

    # --- lifecycle ------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.cfg
        try:
            self.engine = WorldModelEngine(resolve_bundle(cfg.bundle), cfg.providers, cfg.threads)
            self.configure(self.engine)
            self._warm(self.engine)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it silently
            self.fault = f"cannot configure with bundle {cfg.bundle!r}: {exc}"
            detail = "" if isinstance(exc, ValueError) else "\n" + traceback.format_exc()
            self.get_logger().error(f"{self.fault}{detail}\nthe node stays unconfigured; fix the bundle and "
                                    f"retry with: ros2 lifecycle set {self.get_fully_qualified_name()} configure")
            self._release()
            return FAILURE
        self.fault, self.state_label = "", "inactive"
        self.staging = Staging(self._load_announced, self._report_staged)
        spec = self.engine.spec
        self.get_logger().info(f"bundle {self.engine.bundle.root} (model {spec.model_id}: {spec.latent_dim}-d latent, "
                               f"history {spec.history}, horizon {spec.horizon} x {spec.frameskip} steps) on "
                               f"{', '.join(self.engine.providers)}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._handles = [*(h for h in self.activate() if h is not None),
                         self.create_subscription(ModelUpdate, "/jepa/model_update", self._on_model_update,
                                                  qos("latched"))]
        self.state_label = "active"
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.lock:
            self._deactivate()
            self.state_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.lock:
            self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.lock:
            if self.active:
                self._deactivate()
            self._release()
            self.state_label = "finalized"
        return super().on_shutdown(state)

    def _deactivate(self) -> None:
        """Destroy what activate() created, then call deactivate()."""
        while self._handles:
            handle = self._handles.pop()
            if isinstance(handle, Subscription):
                self.destroy_subscription(handle)
            elif isinstance(handle, Timer):
                self.destroy_timer(handle)
            else:
                self.destroy_service(handle)
        self.deactivate()

    def _release(self) -> None:
        self.cleanup()
        if self.staging is not None:
            self.staging.close()
            self.staging = None
        while self._lifecycle_pubs:
            self.destroy_lifecycle_publisher(self._lifecycle_pubs.pop())
        self.engine = None
        self.state_label = "unconfigured"

    def start(self) -> "ModelNode":
        """Configure and activate now if ``autostart`` (what a lifecycle manager would do)."""
        if self.cfg.autostart and self.trigger_configure() == SUCCESS:
            self.trigger_activate()
        return self

    # --- hot-swap ---------------------------------------------------------------------
    def _on_model_update(self, msg: ModelUpdate) -> None:
        with self.lock:
            if not self.active:
                return
            why_not = self.staging.request(msg.bundle, msg.model_id, self.engine.model_id)
        if why_not:
            self.get_logger().info(f"model update ignored: {why_not}")
        else:
            self.get_logger().info(f"loading model {msg.model_id} from {msg.bundle} ({msg.reason or 'no reason given'})")

    def _load_announced(self, bundle: str, model_id: str) -> WorldModelEngine:
        """In the loading thread: the announced bundle, checked against this node and warmed."""
        cfg = self.cfg
        return load_engine(bundle, cfg.providers, cfg.threads, self.check_fit, model_id, self.rollout_batches())

    def _report_staged(self, model_id: str, ready: bool, message: str) -> None:
        if ready:  # one call site per severity: rclpy refuses to change it between calls
            self.get_logger().info(f"model {model_id}: {message}")
        else:
            self.get_logger().error(f"model {model_id}: {message}")
        msg = ModelReady(node=self.get_name(), model_id=model_id, ready=ready, message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.ready_pub.publish(msg)

    def switch_engine(self, model_id: str) -> bool:
        """Make the staged model ``model_id`` the current one (the caller holds ``self.lock``);
        False if it is not the one staged."""
        engine = self.staging.take(model_id) if self.staging is not None else None
        if engine is None:
            return False
        old, self.engine = self.engine, engine
        self.swaps += 1
        self.switched(old)
        self.get_logger().warning(f"switched from model {old.model_id} to {engine.model_id} "
                                  f"(swap {self.swaps}; loaded in {self.staging.load_seconds * 1e3:.0f} ms)")
        return True

    # --- composition (nodes/pilot_node.py) ---------------------------------------------
    def hand_in(self, topic: str, callback, lock: bool = True):
        """Take ``topic`` from another node of this process instead of subscribing to it: returns
        the function that node calls with each message. ``callback`` runs only while this node is
        active, under its lock unless ``lock`` is false (a callback that locks for itself)."""
        self.handed_in.add(topic)

        def take(msg) -> None:
            if not lock:
                return callback(msg) if self.active else None
            with self.lock:
                if self.active:
                    callback(msg)
        return take

    def subscribe(self, msg_type, topic: str, callback, profile, **kwargs):
        """A subscription, unless another node of this process hands ``topic`` in (then None)."""
        if topic in self.handed_in:
            return None
        return self.create_subscription(msg_type, topic, callback, profile, **kwargs)

    # --- helpers --------------------------------------------------------------------
    def publisher(self, msg_type, topic: str, profile):
        """A lifecycle publisher (publishes only while active), destroyed on cleanup."""
        pub = self.create_lifecycle_publisher(msg_type, topic, profile)
        self._lifecycle_pubs.append(pub)
        return pub

    def ros_now(self) -> float | None:
        """Seconds on the node's clock (sim time with use_sim_time); None before /clock arrives."""
        now = self.get_clock().now().nanoseconds * 1e-9
        return now if now > 0 else None

    @staticmethod
    def wall() -> float:
        return time.monotonic()

    @staticmethod
    def stamp_of(msg) -> float:
        return from_time(msg.header.stamp)

    def _publish_diagnostics(self) -> None:
        if self.fault:
            level, message = DiagnosticStatus.ERROR, self.fault
        elif self.state_label != "active":
            level, message = DiagnosticStatus.WARN, f"{self.state_label} (not processing)"
        else:
            level, message = self.diagnostic_level()
        values = {"state": self.state_label, "bundle": self.cfg.bundle}
        if self.engine is not None:
            values.update(model_id=self.engine.model_id, provider=self.engine.providers[0], swaps=self.swaps,
                          bundle=str(self.engine.bundle.root), staged=self.staging.staged_id)
            values.update(self.diagnostic_values())
        self.diag_pub.publish(diagnostics(f"jepa_pilot: {self.get_name()}", self.get_fully_qualified_name(), level,
                                          message, values, self.get_clock().now().to_msg()))
