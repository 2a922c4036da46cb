"""ROS 2 nodes: thin adapters from topics and parameters to the pure rooms.

This is the only room that imports rclpy or message packages.
"""
import os

# One BLAS thread per node process. numpy's OpenBLAS starts a thread per core and keeps them spinning
# after each matrix product (the planner's landmark cost is one per plan iteration): on two cores that
# took the planner from about half a core to all of one and starved the rest of the loop (README,
# Performance). ONNX Runtime and torch keep their own thread settings. Set before any node imports
# numpy; a value in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Executable name (as in launch files: `exec: sim_node`) -> module with main().
# CMakeLists.txt installs one executable per entry (a unit test keeps them equal).
NODES = {
    "sim_node": "jepa_pilot.nodes.sim_node",
    "explorer_node": "jepa_pilot.nodes.explorer_node",
    "encoder_node": "jepa_pilot.nodes.encoder_node",
    "planner_node": "jepa_pilot.nodes.planner_node",
    "predictor_node": "jepa_pilot.nodes.predictor_node",
    "goal_node": "jepa_pilot.nodes.goal_node",
    "trainer_node": "jepa_pilot.nodes.trainer_node",
    "pilot_node": "jepa_pilot.nodes.pilot_node",  # encoder + planner + predictor in one process
}
