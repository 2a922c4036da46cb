"""pilot_node: the encoder, the planner and the predictor in one process (``compose:=true``).

What a ROS 2 component container does for C++ nodes, for these three: each
keeps its name (/encoder, /planner, /predictor), parameters, services,
lifecycle and /diagnostics, and every topic is still published for the rest
of the graph (the goal node, the trainer, rosbag, your tools). What changes
is the path of a camera frame: the encoder hands each latent straight to the
predictor and the planner, in the thread that encoded it, and the planner
hands its plans to the predictor. No serialisation, no DDS hop and no
executor wake-up lie between a frame and its command, and two processes
fewer compete for the CPU.

The planner plans in its own thread, as in its own process: while it plans,
the encoder encodes the next frame, and the newest latent waits for the
planner (a newer one replaces it). The watchdog, the e-stop and the services
run in the executor's thread.
"""
from __future__ import annotations

from jepa_pilot.nodes.encoder_node import EncoderConfig, EncoderNode
from jepa_pilot.nodes.planner_node import PlannerNode, PlannerNodeConfig
from jepa_pilot.nodes.predictor_node import PredictorConfig, PredictorNode
from jepa_pilot.nodes.runner import run_node

# The nodes this process holds and the parameters each declares (checked against launch files by tests).
CONFIGS = {"encoder": EncoderConfig, "planner": PlannerNodeConfig, "predictor": PredictorConfig}


def compose() -> list:
    """The three nodes, wired: latents to the predictor (first: its history must hold the latent a
    plan is made on) and the planner; plans to the predictor. Started in the order data flows back."""
    encoder, planner, predictor = EncoderNode(), PlannerNode(), PredictorNode()
    encoder.latent_sinks += [predictor.hand_in("/jepa/latent", predictor.on_latent),
                             planner.hand_in("/jepa/latent", planner.on_latent, lock=False)]
    planner.plan_sinks.append(predictor.hand_in("/jepa/plan", predictor.on_plan))
    return [node.start() for node in (predictor, planner, encoder)]


def main(args=None) -> int:
    return run_node(compose, "pilot", args)


if __name__ == "__main__":
    raise SystemExit(main())
