"""jepa_pilot.evaluation: closed-loop goal reaching in the built-in simulator (no ROS)."""
