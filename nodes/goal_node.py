"""goal_node: the ReachGoal action on /jepa/reach_goal: drive to a goal image, with feedback and a result.

Serves     /jepa/reach_goal (jepa_pilot/action/ReachGoal)
Calls      <encoder>/set_goal (SetGoal), <planner>/clear_goal (Trigger),
           <planner>/get_parameters and set_parameters (a goal's own tolerance: goal_tolerance)
Subscribes /jepa/plan (PlanStatus), /jepa/surprise (Surprise), /jepa/estop (std_msgs/Bool)

Each goal image is restamped with a stamp of its own (newer than any goal the
planner has reported), set through the encoder's service, and followed in
/jepa/plan by that stamp. When and how a goal ends is control.goal_session's
GoalSession; this node converts messages, calls the services and reports.
One goal drives at a time: a new goal preempts the running one, which ends
aborted before the new one is set.
"""
from __future__ import annotations

import dataclasses
import threading
import time

from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.task import Future
from rclpy.parameter import Parameter, parameter_value_to_python
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from jepa_pilot.action import ReachGoal
from jepa_pilot.common.config import setting
from jepa_pilot.control.goal_session import GoalSession, GoalSessionConfig, Outcome, goal_problem
from jepa_pilot.msg import PlanStatus, Surprise
from jepa_pilot.nodes.params import ConfigParameters
from jepa_pilot.nodes.qos import qos
from jepa_pilot.nodes.ros_io import ImageError, from_time, msg_to_image, to_time
from jepa_pilot.nodes.runner import run_node
from jepa_pilot.srv import SetGoal


@dataclasses.dataclass(frozen=True)
class GoalNodeConfig(GoalSessionConfig):
    encoder: str = setting("/encoder", "the encoder node: its set_goal service takes the goal images")
    planner: str = setting("/planner", "the planner node: its clear_goal service and goal_tolerance parameter")
    feedback_rate_hz: float = setting(5.0, "feedback messages per second while a goal runs", low=0.1, high=100.0)
    service_timeout: float = setting(10.0, "wall s to wait for the encoder's and the planner's services",
                                     low=0.1, high=600.0)


CONFIG = GoalNodeConfig  # parameters this node declares (checked against launch files by tests)


class ServiceError(RuntimeError):
    pass


class GoalNode(Node):
    def __init__(self) -> None:
        super().__init__("goal")
        self.params = ConfigParameters(self, GoalNodeConfig, self._on_params)
        cfg = self.params.config
        self.cond = threading.Condition()        # guards the fields below; notified on every event
        self.exclusive = threading.Lock()        # one goal at a time talks to the encoder and the planner
        self.session: GoalSession | None = None  # the goal being set or followed
        self.latest = None                       # the newest accepted goal handle
        self.estop, self.newest_stamp, self.last_stamp, self.stopping = False, 0.0, 0.0, False
        self.saved_tolerance: float | None = None  # the planner's goal_tolerance before a goal's own
        self.set_goal = self.create_client(SetGoal, f"{cfg.encoder}/set_goal")
        self.clear_goal = self.create_client(Trigger, f"{cfg.planner}/clear_goal")
        self.get_params = self.create_client(GetParameters, f"{cfg.planner}/get_parameters")
        self.set_params = self.create_client(SetParameters, f"{cfg.planner}/set_parameters")
        self.create_subscription(PlanStatus, "/jepa/plan", self._on_plan, qos("reliable", depth=50))
        self.create_subscription(Surprise, "/jepa/surprise", self._on_surprise, qos("reliable"))
        self.create_subscription(Bool, "/jepa/estop", self._on_estop, qos("reliable"))
        self.wake = self.create_guard_condition(lambda: None)  # a goal's thread has ended (_execute)
        # rclpy's signal handlers are off (nodes/runner.py): a steady tick lets the executor see Ctrl-C.
        self.create_timer(0.2, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.server = ActionServer(self, ReachGoal, "/jepa/reach_goal", self._execute,
                                   goal_callback=self._check_goal, handle_accepted_callback=self._accepted,
                                   cancel_callback=self._cancel)
        self.get_logger().info(f"serving /jepa/reach_goal: goals through {self.set_goal.srv_name}, "
                               f"cancel through {self.clear_goal.srv_name}")

    def _on_params(self, cfg: GoalNodeConfig) -> None:
        with self.cond:
            if self.session is not None:
                self.session.config = cfg

    def safe_stop(self) -> None:
        """The process ends (runner.py, while ROS is still up): the running goal ends aborted. The
        planner's goal is left in place, as a goal set on the topic would be."""
        with self.cond:
            self.stopping = True
            if self.session is not None:
                self.session.fail("the goal node is shutting down")
            self.cond.notify_all()
        if self.exclusive.acquire(timeout=2.0):  # the goal's thread has reported its end
            self.exclusive.release()

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs -------------------------------------------------------------------------
    def _on_plan(self, msg: PlanStatus) -> None:
        stamp = from_time(msg.goal_header.stamp)
        with self.cond:
            self.newest_stamp = max(self.newest_stamp, stamp)
            if self.session is not None:
                self.session.on_plan(msg.status, msg.reason, stamp, msg.goal_distance, self.now(), time.monotonic())
                self.cond.notify_all()

    def _on_surprise(self, msg: Surprise) -> None:
        with self.cond:
            if self.session is not None:
                self.session.on_surprise(msg.distance)

    def _on_estop(self, msg: Bool) -> None:
        with self.cond:
            self.estop = msg.data
            if self.session is not None:
                self.session.on_estop(msg.data)
                self.cond.notify_all()

    # --- the action ---------------------------------------------------------------------
    def _check_goal(self, goal: ReachGoal.Goal) -> GoalResponse:
        """Refuse a goal that cannot be pursued, so that it does not preempt the running one."""
        problem = goal_problem(goal.timeout, goal.tolerance)
        if not problem:
            try:
                msg_to_image(goal.image)  # as the encoder will decode it
            except ImageError as exc:
                problem = f"goal image: {exc}"
        if problem:
            self.get_logger().error(f"goal rejected: {problem}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _accepted(self, handle) -> None:
        with self.cond:
            self.latest = handle
            if self.session is not None:
                self.session.preempt()
                self.cond.notify_all()
        handle.execute()

    def _cancel(self, handle) -> CancelResponse:
        with self.cond:
            self.cond.notify_all()
        return CancelResponse.ACCEPT

    async def _execute(self, handle) -> ReachGoal.Result:
        """The action's execute callback. The goal runs in a thread of its own (it waits for services
        and for the planner's reports), so the executor's one thread keeps taking those meanwhile."""
        done = Future()

        def drive() -> None:
            try:
                done.set_result(self._drive(handle))
            except BaseException as exc:  # noqa: BLE001 - raised again in the executor, as from a callback
                done.set_exception(exc)
            self.wake.trigger()  # the executor resumes this coroutine

        threading.Thread(target=drive, name="goal", daemon=True).start()
        return await done

    def _drive(self, handle) -> ReachGoal.Result:
        goal = handle.request
        with self.exclusive:  # the previous goal has ended and reported
            with self.cond:
                self.last_stamp = stamp = from_time(to_time(max(self.now(), self.newest_stamp + 1e-3,
                                                                self.last_stamp + 1e-3)))
                session = self.session = GoalSession(stamp, goal.timeout, self.params.config, self.now(),
                                                     time.monotonic(), self.estop)
                if self.latest is not handle:
                    session.preempt()
            overrode = goal.tolerance > 0 and not self._ended(handle, session)
            try:
                if overrode:
                    self._set_tolerance(goal.tolerance)
                if not self._ended(handle, session):
                    goal.image.header.stamp = to_time(stamp)
                    answer = self._call(self.set_goal, SetGoal.Request(image=goal.image), "setting the goal")
                    if not answer.success:
                        session.fail(answer.message)
            except ServiceError as exc:
                session.fail(str(exc))
            end = self._follow(handle, session)
            reason = end.reason
            try:
                if end.clear_planner and not self.stopping:
                    self._call(self.clear_goal, Trigger.Request(), "clearing the planner's goal")
                if overrode and not self.stopping:
                    self._set_tolerance(None)
            except ServiceError as exc:
                reason += f" ({exc})"
                self.get_logger().error(str(exc))
            with self.cond:
                if self.session is session:
                    self.session = None
            if end.outcome == Outcome.ABORTED:  # (one severity per logging call site: rclpy insists)
                self.get_logger().warning(f"goal {stamp:.3f} aborted: {reason}")
            else:
                self.get_logger().info(f"goal {stamp:.3f} {end.outcome.value}: {reason}")
            # CANCELED only comes from a cancel request, so the handle is canceling.
            {Outcome.REACHED: handle.succeed, Outcome.ABORTED: handle.abort, Outcome.CANCELED: handle.canceled}[
                end.outcome]()
            return ReachGoal.Result(reached=end.reached, reason=reason, final_goal_distance=session.goal_distance,
                                    elapsed=session.elapsed(self.now()))

    def _ended(self, handle, session: GoalSession):
        with self.cond:
            if handle.is_cancel_requested:
                session.cancel()
            return session.ended

    def _follow(self, handle, session: GoalSession):
        """Report feedback until the goal ends (or the node shuts down); returns the ending."""
        next_feedback = 0.0
        while True:
            with self.cond:
                if self.stopping:
                    session.fail("the goal node is shutting down")
                if handle.is_cancel_requested:
                    session.cancel()
                end = session.tick(self.now(), time.monotonic())
                if end is not None:
                    return end
                feedback = session.feedback(self.now())
                self.cond.wait(0.1)
            if time.monotonic() >= next_feedback:
                next_feedback = time.monotonic() + 1.0 / self.params.config.feedback_rate_hz
                handle.publish_feedback(ReachGoal.Feedback(**dataclasses.asdict(feedback)))  # the same fields

    # --- services -----------------------------------------------------------------------
    def _call(self, client, request, what: str):
        """A service call from a goal's thread (the executor's thread takes the answer)."""
        timeout, future = self.params.config.service_timeout, None
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stopping:
            if future is None and client.service_is_ready():
                future = client.call_async(request)
            if future is not None and future.done():
                return future.result()
            time.sleep(0.02)
        if future is not None:
            client.remove_pending_request(future)
        problem = "did not answer" if future is not None else "is not available"
        raise ServiceError(f"{what}: " + ("the goal node is shutting down" if self.stopping else
                                          f"{client.srv_name} {problem} within {timeout:g} s"))

    def _set_tolerance(self, value: float | None) -> None:
        """The planner's goal_tolerance for one goal (its value before is saved); None: restore that value."""
        if value is None and self.saved_tolerance is None:
            return
        if self.saved_tolerance is None:
            answer = self._call(self.get_params, GetParameters.Request(names=["goal_tolerance"]),
                                "reading the planner's goal_tolerance")
            old = parameter_value_to_python(answer.values[0]) if answer.values else None
            if not isinstance(old, (int, float)):
                raise ServiceError(f"reading the planner's goal_tolerance: got {old!r}")
            self.saved_tolerance = float(old)
        new = self.saved_tolerance if value is None else float(value)
        request = SetParameters.Request(parameters=[Parameter("goal_tolerance", value=new).to_parameter_msg()])
        result = self._call(self.set_params, request, "setting the planner's goal_tolerance").results[0]
        if not result.successful:
            raise ServiceError(f"the planner refused goal_tolerance = {new:g}: {result.reason}")
        self.get_logger().info(f"planner goal_tolerance {new:g}" + (" restored" if value is None else
                                                                    f" for this goal (was {self.saved_tolerance:g})"))
        if value is None:
            self.saved_tolerance = None

def main(args=None) -> int:
    return run_node(GoalNode, "goal", args)


if __name__ == "__main__":
    raise SystemExit(main())
