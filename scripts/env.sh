# shellcheck shell=bash
# Environment for running JEPA Pilot from this checkout: `source scripts/env.sh`.
# The Makefile sources it before every command, so `make` and your shell agree.
#
# Two modes:
#   wheels  (default)  ROS 2 Jazzy from PyPI wheels inside .venv (no apt ROS needed)
#   system             ROS 2 already sourced (ROS_DISTRO set, e.g. /opt/ros/jazzy):
#                      .venv sees the system packages; colcon is the system one.

JEPA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
JEPA_VENV="${JEPA_VENV:-$JEPA_ROOT/.venv}"
JEPA_INSTALL="$JEPA_ROOT/ros_ws/install/jepa_pilot"
if [ -n "${ROS_DISTRO:-}" ] && [ -z "${JEPA_ROS_MODE:-}" ]; then JEPA_ROS_MODE=system; fi
JEPA_ROS_MODE="${JEPA_ROS_MODE:-wheels}"
export JEPA_ROOT JEPA_VENV JEPA_ROS_MODE

_jepa_prepend() {  # _jepa_prepend VAR DIR: put DIR first in the path list VAR, once
  local var="$1" dir="$2" cur
  cur="${!var:-}"
  case ":$cur:" in *":$dir:"*) ;; *) export "$var=$dir${cur:+:$cur}" ;; esac
}

_jepa_prepend PATH "$JEPA_VENV/bin"
JEPA_SITE="$(ls -d "$JEPA_VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1)"
JEPA_PYVER="$(basename "$(dirname "${JEPA_SITE:-/python3}")")"

if [ "$JEPA_ROS_MODE" = wheels ] && [ -n "$JEPA_SITE" ]; then
  # The wheels' shared libraries: without these on LD_LIBRARY_PATH before Python
  # starts, `import rclpy` re-executes the process (ros_wheels_bootstrapper).
  for _d in "$JEPA_SITE"/*.libs; do [ -d "$_d" ] && _jepa_prepend LD_LIBRARY_PATH "$_d"; done
  _jepa_prepend LD_LIBRARY_PATH "$JEPA_VENV/lib"
  export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
  _jepa_prepend AMENT_PREFIX_PATH "$JEPA_VENV"
  _jepa_prepend CMAKE_PREFIX_PATH "$JEPA_VENV"
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
fi

# Our own package, built by colcon in ros_ws/ (messages + Python rooms).
_jepa_prepend AMENT_PREFIX_PATH "$JEPA_INSTALL"
_jepa_prepend LD_LIBRARY_PATH "$JEPA_INSTALL/lib"
_jepa_prepend PYTHONPATH "$JEPA_INSTALL/lib/$JEPA_PYVER/site-packages"

# DDS stays on this machine unless you say otherwise (a robot sets what its network needs).
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Headless MuJoCo rendering on the CPU.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
unset _d
