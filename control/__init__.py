"""jepa_pilot.control."""
