#!/usr/bin/env bash
# The ROS 2 wheels' CMake export files name the wheel build machine's Python
# and numpy include dirs (/opt/python/cp311-cp311/...). Point them at this
# venv's, so colcon can build our interfaces. Idempotent.
set -euo pipefail
venv="${1:?usage: fix_ros_wheel_paths.sh VENV}"
py="$venv/bin/python"
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$py" -c 'import numpy; print(numpy.get_include())')
files=$(grep -rl --include='*.cmake' '/opt/python/cp3' "$venv/share" 2>/dev/null || true)
[ -z "$files" ] && exit 0
echo "$files" | xargs sed -i -E \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$py_inc#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$np_inc#g"
echo ">> pointed $(echo "$files" | wc -l) ROS wheel CMake files at $py_inc and $np_inc"
