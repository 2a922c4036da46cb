"""jepa_pilot.common."""
