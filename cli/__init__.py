"""jepa_pilot.cli."""
