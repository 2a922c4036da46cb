"""Conversions between the JEPA messages (jepa_pilot/msg) and the world-model objects.

Latents (numpy vectors) and planner steps (control.mpc.Step) -> Latent and
PlanStatus messages; the nodes only add headers and publish.
"""
from __future__ import annotations

import numpy as np

from jepa_pilot.msg import Latent, PlanStatus

__all__ = ["latent_msg", "plan_status_msg"]


def latent_msg(z: np.ndarray, header, model_id: str) -> Latent:
    """A latent vector with the header of the frame it encodes."""
    z = np.asarray(z, dtype=np.float32)
    return Latent(header=header, model_id=model_id, shape=list(z.shape), data=z.ravel().tolist())


def plan_status_msg(step, header, model_id: str, planner: str, action_dim: int, goal_header=None) -> PlanStatus:
    """A control.mpc.Step -> /jepa/plan: status, reason, goal distance and, when a plan was made, the
    plan (actions at control-period resolution, cost, iterations, planning time)."""
    decision, plan = step.decision, step.plan
    status = PlanStatus(header=header, model_id=model_id, status=int(decision.status), reason=decision.reason,
                        planner=planner, action_dim=action_dim, planning_time=step.planning_time,
                        goal_distance=decision.goal_distance)
    if goal_header is not None:
        status.goal_header = goal_header
    if plan is not None:
        status.horizon, status.cost, status.iterations = len(plan.actions), plan.cost, plan.iterations
        status.actions = plan.actions.astype(np.float32).ravel().tolist()
    return status
