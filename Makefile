# JEPA Pilot — the two commands are `make demo` and `make test`.
# Each bootstraps from nothing and is idempotent: a second run skips what is done
# (apt packages, .venv, pip packages, the colcon build), tracked by files in .stamps/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMPS := .stamps
ROS_MODE := $(if $(ROS_DISTRO),system,wheels)
ENV := source scripts/env.sh &&

# DDS never leaves this machine in tests, the demo or benchmarks, and every
# `make` invocation gets its own ROS domain so parallel runs do not cross-talk.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= $(shell echo $$(( $$$$ % 100 + 1 )))

# ONNX Runtime follows the hardware: onnxruntime-gpu where nvidia-smi finds a GPU (or GPU=1),
# else onnxruntime (GPU=0 forces it). Never both in one venv: they install the same module.
GPU ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1 || echo 0)
ORT := $(if $(filter 1,$(GPU)),gpu,cpu)
ORT_OTHER := $(if $(filter 1,$(GPU)),onnxruntime,onnxruntime-gpu)

APT_PACKAGES := cmake g++ make libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libsdformat-dev ignition-tools
# The stamp's name carries the package list, so adding a package reinstalls.
APT_STAMP := $(STAMPS)/apt-$(shell echo $(APT_PACKAGES) | md5sum | cut -c1-8)
PY_SOURCES := $(shell find common sim control data world_model perception evaluation nodes cli -name '*.py' 2>/dev/null)
ROS_SOURCES := package.xml CMakeLists.txt $(wildcard msg/*.msg srv/*.srv action/*.action launch/* config/*.yaml config/*/*.yaml models/*/* gazebo/* gazebo/*/* gazebo/*/*/*)

.PHONY: help setup build test test-unit test-sim test-ros test-gpu demo bench soak train clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMPS)/venv $(STAMPS)/ort-$(ORT)  ## apt packages + .venv with pinned pip packages (+ ROS 2 wheels; onnxruntime-gpu with GPU=1)
build: $(STAMPS)/colcon  ## setup + colcon build of the jepa_pilot package in ros_ws/

$(APT_STAMP):
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(STAMPS)/venv: $(APT_STAMP) requirements/base.txt requirements/ros-jazzy.txt pyproject.toml
	@echo ">> .venv ($(ROS_MODE) ROS 2) with $(PYTHON)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(if $(filter system,$(ROS_MODE)),--system-site-packages) $(VENV)
	$(VENV)/bin/python -m pip install -qq --disable-pip-version-check -r requirements/base.txt
	@if [ "$(ROS_MODE)" = wheels ]; then \
	  $(VENV)/bin/python -m pip install -qq --disable-pip-version-check -r requirements/ros-jazzy.txt && \
	  scripts/fix_ros_wheel_paths.sh $(VENV); fi
	$(VENV)/bin/python -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Switching flavour uninstalls the other one, then reinstalls this one over the files they shared.
$(STAMPS)/ort-$(ORT): $(STAMPS)/venv requirements/ort-$(ORT).txt
	@if $(VENV)/bin/python -m pip show -q $(ORT_OTHER) >/dev/null 2>&1; then \
	  echo ">> replacing $(ORT_OTHER) with requirements/ort-$(ORT).txt"; \
	  $(VENV)/bin/python -m pip uninstall -y -q $(ORT_OTHER); \
	  $(VENV)/bin/python -m pip install -qq --disable-pip-version-check --force-reinstall --no-deps -r requirements/ort-$(ORT).txt; \
	fi
	$(VENV)/bin/python -m pip install -qq --disable-pip-version-check -r requirements/ort-$(ORT).txt
	@rm -f $(STAMPS)/ort-*; touch $@

$(STAMPS)/colcon: $(STAMPS)/venv $(STAMPS)/ort-$(ORT) $(ROS_SOURCES) $(PY_SOURCES)
	@echo ">> colcon build (ros_ws/)"
	@mkdir -p ros_ws/src ros_ws/log && ln -sfn ../.. ros_ws/src/jepa_pilot
	@$(ENV) cd ros_ws && colcon --log-base log build --symlink-install \
	  --cmake-args -DPython3_EXECUTABLE=$(CURDIR)/$(VENV)/bin/python -DBUILD_TESTING=OFF \
	  > $(CURDIR)/ros_ws/log/last_build.txt 2>&1 || { tail -n 40 $(CURDIR)/ros_ws/log/last_build.txt; exit 1; }
	@touch $@

test: $(STAMPS)/colcon  ## run every test tier: unit, sim, ros, slow, and gpu (skipped without CUDA)
	@echo ">> pytest (ROS_DOMAIN_ID=$$ROS_DOMAIN_ID, discovery $$ROS_AUTOMATIC_DISCOVERY_RANGE)"
	$(ENV) python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMPS)/colcon  ## only the pure unit tests
	$(ENV) python -m pytest -m unit $(PYTEST_ARGS)
test-sim: $(STAMPS)/colcon  ## only the MuJoCo tests
	$(ENV) python -m pytest -m sim $(PYTEST_ARGS)
test-ros: $(STAMPS)/colcon  ## only the ROS 2 graph tests
	$(ENV) python -m pytest -m ros $(PYTEST_ARGS)
test-gpu: $(STAMPS)/colcon  ## only the CUDA tests (make test-gpu GPU=1 on a machine with an NVIDIA GPU)
	$(ENV) python -m pytest -m gpu $(PYTEST_ARGS)

demo: $(STAMPS)/colcon  ## run the ROS 2 graph driving the built-in simulated robot
	$(ENV) jepa-pilot demo $(DEMO_ARGS)

bench: $(STAMPS)/colcon  ## regenerate every number in README.md and benchmarks/ (about 2 h on 2 cores)
	$(ENV) jepa-pilot bench sim --json benchmarks/sim.json
	$(ENV) jepa-pilot bench dds --json benchmarks/dds.json
	$(ENV) jepa-pilot bench model --bundle two_rooms --json benchmarks/model_two_rooms.json
	$(ENV) jepa-pilot bench swap --bundle two_rooms --providers cpu --json benchmarks/swap.json
	$(ENV) jepa-pilot bench finetune --bundle two_rooms --json benchmarks/finetune.json
	$(ENV) jepa-pilot eval --env two_rooms --episodes 50 --seed 0 --policies latent,true_state,random \
	  --json benchmarks/eval_two_rooms_direct.json
	$(ENV) jepa-pilot eval --env two_rooms --episodes 50 --seed 0 --policies ros --json benchmarks/eval_two_rooms_ros.json
	$(ENV) jepa-pilot bench planning --env two_rooms --json benchmarks/planning_two_rooms.json
	$(ENV) jepa-pilot bench planning --env two_rooms_random_door --goal-tolerance 0.83 \
	  --policies latent,shortest_path,random --budgets "" --json benchmarks/planning_two_rooms_random_door.json
	$(ENV) jepa-pilot bench planning --env two_rooms_random_door --policies true_state --budgets "" \
	  --json benchmarks/planning_two_rooms_random_door_true_state.json
	$(ENV) jepa-pilot eval --env two_rooms --episodes 50 --seed 101 --policies ros \
	  --json benchmarks/eval_two_rooms_ros_seed101.json
	$(ENV) jepa-pilot eval --env two_rooms_random_door --episodes 50 --seed 101 --goal-tolerance 0.83 --policies ros \
	  --json benchmarks/eval_two_rooms_random_door_ros_seed101.json
	$(ENV) jepa-pilot bench planning --env reacher --goal-tolerance 0.266 --policies latent,true_state,random \
	  --json benchmarks/planning_reacher.json
	$(ENV) jepa-pilot eval --env reacher --episodes 50 --seed 101 --goal-tolerance 0.266 --policies ros \
	  --json benchmarks/eval_reacher_ros_seed101.json
	$(ENV) jepa-pilot demo --out out/demo && cp out/demo/demo.json benchmarks/demo.json
	$(ENV) jepa-pilot bench faults --json benchmarks/faults.json
	$(ENV) jepa-pilot bench loop --json benchmarks/loop.json
	$(ENV) jepa-pilot bench loop --compose --json benchmarks/loop_composed.json
	@# gpu.json holds GPU measurements: only a machine with a GPU rewrites it
	$(if $(filter 1,$(GPU)),$(ENV) jepa-pilot bench gpu --json benchmarks/gpu.json,@echo ">> no GPU here: benchmarks/gpu.json kept (jepa-pilot bench gpu measures this machine's CPU path)")

soak: $(STAMPS)/colcon  ## one hour driving random goals: memory, CPU, latency, drops per node (benchmarks/soak.json)
	$(ENV) jepa-pilot bench soak --minutes 60 --json benchmarks/soak.json --log out/bench/soak.log

train: $(STAMPS)/colcon  ## reproduce the shipped bundles in models/ (collect, train, export, evaluate)
	$(ENV) scripts/train_default.sh two_rooms 1000 100 config/train/two_rooms.yaml 300
	$(ENV) scripts/train_default.sh two_rooms_random_door 1000 100 config/train/two_rooms_random_door.yaml 300
	$(ENV) scripts/train_default.sh reacher 500
	$(ENV) scripts/train_default.sh pointmaze_umaze 400 200 config/train/pointmaze.yaml 300 \
	  --env gym:PointMaze_UMaze-v3 --action-repeat 5
	$(ENV) scripts/train_default.sh pointmaze_medium 600 200 config/train/pointmaze.yaml 500 \
	  --env gym:PointMaze_Medium-v3 --action-repeat 5

clean:  ## remove the colcon build (keeps .venv)
	rm -rf ros_ws/build ros_ws/install ros_ws/log ros_ws/src $(STAMPS)/colcon
distclean: clean  ## remove everything make created
	rm -rf $(VENV) $(STAMPS)
