"""ROS 2 nodes: thin adapters from topics and parameters to the pure rooms.

This is the only room that imports rclpy or message packages.
"""

# Executable name (as in launch files: `exec: sim_node`) -> module with main().
# CMakeLists.txt installs one executable per entry (a unit test keeps them equal).
NODES = {
    "sim_node": "jepa_pilot.nodes.sim_node",
    "explorer_node": "jepa_pilot.nodes.explorer_node",
}
