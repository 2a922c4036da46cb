"""Gives a running JEPA graph goal images one after another and records what happens.

Used by `jepa-pilot demo` (and usable from tests): for each (start, goal)
state pair it resets the sim node to the start, asks it for the goal's camera
image, sets that image as the goal (encoder ``~/set_goal``), and watches
/jepa/plan until the planner reports REACHED for that goal or the time (sim
seconds) runs out. Alongside it records camera frames, odometry and plans,
with wall-clock arrival times for the frame-to-plan latency.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from jepa_pilot.msg import PlanStatus
from jepa_pilot.nodes.monitor import GraphMonitor
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import from_time, to_time
from jepa_pilot.srv import GetGoalImage, ResetSim, SetGoal

__all__ = ["GoalResult", "GoalRunner", "run_goals"]


@dataclasses.dataclass
class GoalResult:
    start: list[float]
    goal: list[float]
    reached: bool               # the planner reported REACHED for this goal
    success: bool               # ... and the true distance was within the radius
    time_to_goal: float | None  # sim seconds from setting the goal to REACHED
    final_distance: float       # true distance (m) at the end
    stops: list[str]            # reasons of STOPPED statuses seen
    goal_stamp: float = 0.0     # sim time the goal was set
    end_stamp: float = 0.0      # sim time the goal ended (reached or timed out)
    goal_image: np.ndarray = dataclasses.field(repr=False, default=None)


class GoalRunner(GraphMonitor):
    def __init__(self) -> None:
        super().__init__(name="demo_goals")
        self.plans: list[tuple[float, PlanStatus]] = []   # (wall arrival, msg)
        self.create_subscription(PlanStatus, "/jepa/plan", self._on_plan, qos("reliable"))
        self.reset_client = self.create_client(ResetSim, "/sim/reset")
        self.goal_image_client = self.create_client(GetGoalImage, "/sim/get_goal_image")
        self.set_goal_client = self.create_client(SetGoal, "/encoder/set_goal")

    def _on_plan(self, msg: PlanStatus) -> None:
        self.plans.append((time.monotonic(), msg))

    def spin_until(self, done, timeout: float, alive=lambda: True) -> bool:
        import rclpy

        end = time.monotonic() + timeout
        while time.monotonic() < end and alive():
            if done():
                return True
            rclpy.spin_once(self, timeout_sec=0.02)
        return done()

    def call(self, client, request, timeout: float = 30.0):
        if not self.spin_until(client.service_is_ready, timeout):
            raise RuntimeError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            raise RuntimeError(f"service {client.srv_name} did not answer")
        return future.result()

    def true_distance(self, goal: np.ndarray) -> float:
        _, x, y = self.poses[-1]
        return float(np.hypot(x - goal[0], y - goal[1]))

    def run_goal(self, start: np.ndarray, goal: np.ndarray, timeout: float, radius: float, alive) -> GoalResult:
        reset = self.call(self.reset_client, ResetSim.Request(seed=0, state=start.tolist()))
        if not reset.success:
            raise RuntimeError(reset.message)
        shot = self.call(self.goal_image_client, GetGoalImage.Request(state=goal.tolist()))
        if not shot.success:
            raise RuntimeError(shot.message)
        stamp = self.sim_time + 1e-3  # a stamp of its own: plans name the goal they serve by it
        shot.image.header.stamp = to_time(stamp)
        answer = self.call(self.set_goal_client, SetGoal.Request(image=shot.image))
        if not answer.success:
            raise RuntimeError(f"goal refused: {answer.message}")
        first = len(self.plans)

        def mine():
            return [m for _, m in self.plans[first:] if abs(from_time(m.goal_header.stamp) - stamp) < 1e-6]

        def finished():
            return any(m.status == PlanStatus.STATUS_REACHED for m in mine()) or self.sim_time - stamp > timeout

        self.spin_until(finished, timeout=timeout * 5 + 30, alive=alive)
        reached = [m for m in mine() if m.status == PlanStatus.STATUS_REACHED]
        distance = self.true_distance(goal)
        return GoalResult(
            start=start.tolist(), goal=goal.tolist(), reached=bool(reached), success=bool(reached) and distance < radius,
            time_to_goal=from_time(reached[0].header.stamp) - stamp if reached else None, final_distance=distance,
            stops=sorted({m.reason for m in mine() if m.status == PlanStatus.STATUS_STOPPED}),
            goal_stamp=stamp, end_stamp=self.sim_time,
            goal_image=np.frombuffer(bytes(shot.image.data), np.uint8).reshape(shot.image.height, shot.image.width, 3))

    def latencies(self) -> np.ndarray:
        """Frame-to-plan latency (s): wall arrival of a plan minus that of the frame with its stamp."""
        frames = {round(stamp, 6): wall for wall, stamp in self.image_times}
        out = [wall - frames[key] for wall, m in self.plans
               if (key := round(from_time(m.header.stamp), 6)) in frames and m.status == PlanStatus.STATUS_PLANNING]
        return np.array(out)


def run_goals(pairs, timeout: float, radius: float, alive=lambda: True, on_goal=None):
    """Drive the running graph through ``pairs`` of (start, goal) states. Returns (results, runner data)."""
    import rclpy

    rclpy.init()
    try:
        runner = GoalRunner()
        ready = runner.spin_until(lambda: runner.image_times and runner.poses and any(
            m.status == PlanStatus.STATUS_IDLE for _, m in runner.plans), timeout=180, alive=alive)
        if not ready:
            raise RuntimeError("the graph did not come up (no images, odometry or planner status)")
        results = []
        for i, (start, goal) in enumerate(pairs):
            results.append(runner.run_goal(np.asarray(start), np.asarray(goal), timeout, radius, alive))
            if on_goal is not None:
                on_goal(i, results[-1])
        runner.destroy_node()
        return results, runner
    finally:
        rclpy.try_shutdown()
