"""ROS 2 nodes: thin adapters from topics and parameters to the pure rooms.

This is the only room that imports rclpy or message packages.
"""

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
