"""Property-based fuzzing of every decoder of outside input (hypothesis, seeded).

Each decoder either returns a well-formed result or raises its documented
error: ImageError / PreprocessError for frames, a Verdict (never an
exception) from the command gate, ConfigError for settings and parameter
updates, BundleError for bundles, LaunchError for launch files and
arguments, BagError for bags. Anything else is a crash. Every crash these
tests found is pinned below its fuzz test as an explicit regression test.

The runs are derandomized (the same examples every run) and kept small; the
bag fuzzer writes real MCAP bags and is in the slow tier.
"""
from __future__ import annotations

import array
import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jepa_pilot.cli.launch import LaunchError, _Scope, expand, parse_launch_arguments, parse_launch_file
from jepa_pilot.common.bundle import BundleError, load_bundle
from jepa_pilot.common.config import Config, ConfigError
from jepa_pilot.common.paths import package_share
from jepa_pilot.control.action_space import ActionSpace, RobotProfile
from jepa_pilot.control.command_gate import CommandGate, CommandGateConfig
from jepa_pilot.control.exploration import RandomWalkConfig, WaypointConfig
from jepa_pilot.control.planner import PlannerConfig
from jepa_pilot.control.supervisor import SupervisorConfig
from jepa_pilot.data.bag import BagImportConfig
from jepa_pilot.data.dataset import DatasetInfo
from jepa_pilot.perception.preprocess import ENCODINGS, ImageError, PreprocessError, decode_image, prepare, to_rgb


def fuzz(examples: int):
    """Seeded hypothesis settings: the same examples every run, no example database, no deadline."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


ENCODING_NAMES = st.sampled_from([*ENCODINGS, "RGB8", "Bgra8", "mono16", "16UC1", "yuv422", "", "rgb8 "]) | st.text(
    max_size=8)
SIZES = st.integers(-3, 12) | st.sampled_from([0, 2**31 - 1, 2**32 - 1, 2**63])
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


# --- image messages ---------------------------------------------------------------------------------
def byte_buffers(max_size: int = 600):
    """Raw image data as the ROS client libraries hand it over: bytes, bytearray, array('B'), uint8 arrays,
    lists of byte values, memoryviews."""
    raw = st.binary(max_size=max_size)
    return st.one_of(raw, raw.map(bytearray), raw.map(lambda b: array.array("B", b)),
                     raw.map(lambda b: np.frombuffer(b, np.uint8)), raw.map(list), raw.map(memoryview))


@pytest.mark.unit
@fuzz(400)
@given(data=byte_buffers(), encoding=ENCODING_NAMES, width=SIZES, height=SIZES, step=SIZES)
def test_decode_image_decodes_or_says_why(data, encoding, width, height, step):
    try:
        image = decode_image(data, encoding, width, height, step)
    except ImageError as exc:
        assert str(exc)
        return
    channels = ENCODINGS[encoding.lower()]
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    flat = np.frombuffer(bytes(data), np.uint8)
    # Every pixel comes from its row at ``step`` bytes, in RGB order (alpha dropped, grey repeated).
    order = {"rgb8": (0, 1, 2), "bgr8": (2, 1, 0), "rgba8": (0, 1, 2), "bgra8": (2, 1, 0), "mono8": (0, 0, 0)}
    for y, x in {(0, 0), (height - 1, width - 1), (height // 2, width // 3)}:
        start = y * step + x * channels
        assert tuple(image[y, x]) == tuple(flat[start + c] for c in order[encoding.lower()])


@pytest.mark.unit
@pytest.mark.parametrize("data, encoding, width, height, step, reason", [
    (b"\x00" * 12, "rgb8", 2, 2, 6, None),
    (b"\x00" * 11, "rgb8", 2, 2, 6, "truncated data (11 of 12 bytes)"),
    (b"\x00" * 12, "rgb8", 2, 2, 5, "step 5 < width 2 x 3 bytes"),
    (b"\x00" * 12, "rgb8", 2, -1, 6, "empty image"),
    (b"\x00" * 12, "mono16", 2, 2, 6, "unsupported encoding 'mono16'"),
    (b"", "mono8", 2**32 - 1, 2**32 - 1, 2**32 - 1, "truncated data (0 of"),
])
def test_decode_image_edge_cases(data, encoding, width, height, step, reason):
    if reason is None:
        assert decode_image(data, encoding, width, height, step).shape == (height, width, 3)
    else:
        with pytest.raises(ImageError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            decode_image(data, encoding, width, height, step)


def frames():
    """Arrays as a caller might pass them: any of a few dtypes, 0 to 4 dimensions, empty sides."""
    shapes = st.lists(st.integers(0, 7), min_size=0, max_size=4).map(tuple)
    dtypes = st.sampled_from([np.uint8, np.uint8, np.uint8, np.float32, np.int16, np.bool_])
    return st.builds(lambda shape, dtype, seed: np.random.default_rng(seed).integers(0, 256, shape).astype(dtype),
                     shapes, dtypes, st.integers(0, 2**16))


@pytest.mark.unit
@fuzz(300)
@given(image=frames(), encoding=ENCODING_NAMES, size=st.integers(1, 12))
def test_to_rgb_and_prepare_convert_or_say_why(image, encoding, size):
    try:
        rgb = to_rgb(image, encoding)
    except PreprocessError as exc:
        assert str(exc)
        with pytest.raises(PreprocessError):
            prepare(image, size, encoding)
        return
    assert rgb.shape == (*image.shape[:2], 3) and rgb.dtype == np.uint8
    out = prepare(image, size, encoding)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    if rgb.shape[:2] == (size, size):
        np.testing.assert_array_equal(out, rgb)


# --- commands ---------------------------------------------------------------------------------------
def twists():
    fields = st.sampled_from(["linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"])
    return st.dictionaries(fields, FLOATS | st.integers(-10**6, 10**6), max_size=6)


SPACES = {
    "holonomic": RobotProfile(name="holo").action_space,
    "diff": RobotProfile(name="diff", embodiment="diff_drive_base", max_angular_speed=2.0).action_space,
    "arm": RobotProfile(name="arm", embodiment="arm", joint_names=("a", "b"), max_joint_speed=2.0,
                        command_type="float64_multi_array").action_space,
}
STAMPS = st.none() | st.just(0.0) | FLOATS | st.floats(99.0, 101.0)
FRAMES = st.none() | st.sampled_from(["", "base_link", "odom", "base_link "]) | st.text(max_size=6)


@pytest.mark.unit
@fuzz(400)
@given(space=st.sampled_from(sorted(SPACES)),
       commands=st.lists(st.tuples(twists() | st.lists(FLOATS, max_size=4), STAMPS, FRAMES), min_size=1, max_size=5))
def test_command_gate_never_raises_and_only_passes_valid_commands(space, commands):
    gate = CommandGate(SPACES[space])
    now, cfg = 100.0, gate.config
    for command, stamp, frame_id in commands:
        verdict = gate.submit(command, now, stamp=stamp, frame_id=frame_id)
        action = gate.action(now)
        assert action.shape == (gate.space.dim,) and np.isfinite(action).all() and np.abs(action).max() <= 1.0
        if not verdict.accepted:
            assert verdict.reason
            continue
        # Accepted: finite values of the right kind and size, the right frame, a stamp close to our clock.
        if isinstance(command, dict):
            assert gate.space.is_twist and all(math.isfinite(float(v)) for v in command.values())
            physical = np.array([float(command.get(f, 0.0)) for f in gate.space.fields])
        else:
            assert len(command) == gate.space.dim and all(math.isfinite(v) for v in command)
            physical = np.array(command, dtype=np.float64)
        assert frame_id in (None, "", cfg.frame_id)
        if stamp:
            assert math.isfinite(stamp) and -cfg.max_future <= now - stamp <= cfg.max_age
        np.testing.assert_allclose(action, np.clip(physical / np.asarray(gate.space.scale), -1, 1))
        assert verdict.clamped == bool(gate.space.beyond_limits(physical, cfg.tolerance).any())


@pytest.mark.unit
@pytest.mark.parametrize("stamp", [math.nan, math.inf, -math.inf])
def test_command_gate_drops_non_finite_stamps(stamp):
    """Regression (found by the fuzzer): a NaN stamp passed both age checks (every comparison with NaN is
    false) and the command was taken."""
    gate = CommandGate(SPACES["holonomic"])
    verdict = gate.submit({"linear.x": 0.1}, 100.0, stamp=stamp, frame_id="base_link")
    assert not verdict.accepted and "stamp" in verdict.reason
    np.testing.assert_array_equal(gate.action(100.0), [0.0, 0.0])


@pytest.mark.unit
@fuzz(300)
@given(fields=st.lists(st.sampled_from(["linear.x", "linear.y", "angular.z", "j1", "j2"]), max_size=4),
       scale=st.lists(FLOATS, max_size=4), physical=st.lists(FLOATS, min_size=4, max_size=4))
def test_action_space_validates_and_round_trips(fields, scale, physical):
    try:
        space = ActionSpace(tuple(fields), tuple(scale))
    except ValueError as exc:
        assert str(exc)
        return
    values = np.array(physical[:space.dim])
    normalised = space.to_normalised(values)
    finite = np.isfinite(values)
    assert (np.abs(normalised[finite]) <= 1.0).all()
    np.testing.assert_allclose(space.to_physical(normalised)[finite],
                               np.clip(values[finite], -np.array(space.scale)[finite], np.array(space.scale)[finite]),
                               rtol=1e-12, atol=0)


# --- settings: Config.from_dict / from_yaml and ROS parameter updates ---------------------------------
CONFIGS = [CommandGateConfig, RobotProfile, BagImportConfig, PlannerConfig, SupervisorConfig, RandomWalkConfig,
           WaypointConfig, DatasetInfo]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), FLOATS, st.text(max_size=8))
YAML_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
# What a ROS parameter update carries: bool, int64, double, string, or an array of one of them
# (rclpy hands integer and double arrays over as array.array).
ROS_VALUES = st.one_of(
    st.booleans(), st.integers(-2**63, 2**63 - 1), FLOATS, st.text(max_size=8),
    st.lists(st.booleans(), max_size=3), st.lists(st.text(max_size=4), max_size=3),
    st.lists(st.integers(-2**63, 2**63 - 1), max_size=3).map(lambda v: array.array("q", v)),
    st.lists(FLOATS, max_size=3).map(lambda v: array.array("d", v)))


def assert_valid_or_refused(cls: type, build) -> None:
    """``build()`` makes a valid ``cls`` config, or raises a ConfigError that names the class."""
    try:
        config = build()
    except ConfigError as exc:
        assert cls.__name__ in str(exc)
        return
    assert_valid(config)


def assert_valid(config: Config) -> None:
    """Every field of a built config has its declared type and lies in its declared range."""
    for f, kind, spec in type(config).settings():
        value = getattr(config, f.name)
        if value is None:
            continue
        assert isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)), (f.name, value)
        if kind is float:
            assert math.isfinite(value), (f.name, value)
        if spec.choices is not None:
            assert value in spec.choices
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                assert spec.low is None or item >= spec.low, (f.name, item)
                assert spec.high is None or item <= spec.high, (f.name, item)


@pytest.mark.unit
@fuzz(400)
@given(cls=st.sampled_from(CONFIGS), data=st.dictionaries(st.text(max_size=12) | st.integers() | st.none(),
                                                          YAML_VALUES, max_size=4), known=st.data())
def test_config_from_dict_builds_valid_configs_or_raises_config_error(cls, data, known):
    names = [f.name for f in dataclasses.fields(cls)]
    data.update(known.draw(st.dictionaries(st.sampled_from(names), YAML_VALUES, max_size=3)))
    assert_valid_or_refused(cls, lambda: cls.from_dict(data))


@pytest.mark.unit
@fuzz(400)
@given(cls=st.sampled_from(CONFIGS), data=st.data())
def test_parameter_updates_keep_the_config_valid_or_raise_config_error(cls, data):
    """The pure path of nodes.params.ConfigParameters._validate: config.replace(**changes)."""
    config = cls(**({"embodiment": "arm", "joint_names": ("a",), "command_type": "float64_multi_array"}
                    if cls is RobotProfile and data.draw(st.booleans()) else {}))
    names = [f.name for f in dataclasses.fields(cls)]
    changes = data.draw(st.dictionaries(st.sampled_from(names), ROS_VALUES, min_size=1, max_size=3))
    assert_valid_or_refused(cls, lambda: config.replace(**changes))


@pytest.mark.unit
@fuzz(200)
@given(text=st.text(max_size=200) | YAML_VALUES.map(lambda v: yaml.safe_dump(v)), section=st.none() | st.just("s"))
def test_config_from_yaml_reads_any_text_or_raises_config_error(tmp_path_factory, text, section):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text)
    try:
        assert_valid(CommandGateConfig.from_yaml(path, section))
    except ConfigError as exc:
        assert "CommandGateConfig" in str(exc)


@pytest.mark.unit
@pytest.mark.parametrize("data, message", [
    ({"timeout": 10**400}, "expected a finite number"),        # a YAML integer too large for a float
    ({"max_age": -10**309}, "expected a finite number"),
    ({1: 0.5}, "unknown setting(s) 1"),                          # YAML keys need not be strings
    ({1: 0.5, "x": 1, None: 2}, "unknown setting(s)"),
])
def test_config_regressions(data, message):
    """Regressions found by the fuzzer: OverflowError from float(), TypeError from sorting/joining keys."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CommandGateConfig.from_dict(data)


@pytest.mark.unit
def test_config_regression_none_for_a_required_setting():
    """Found by the fuzzer: a YAML null passed every check of a setting that is not optional, and
    PlannerConfig's own check then raised TypeError comparing it."""
    from jepa_pilot.control.planner import PlannerConfig

    with pytest.raises(ConfigError, match=r"PlannerConfig.samples = None: a value is required \(int\)"):
        PlannerConfig.from_dict({"samples": None})


@pytest.mark.unit
@pytest.mark.parametrize("text", ["5\n", "- 1\n- 2\n", "just text\n"])
def test_config_from_yaml_regression_section_of_a_non_mapping(tmp_path, text):
    """Regression: asking a scalar document for a section raised TypeError (``'s' in 5``)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="CommandGateConfig"):
        CommandGateConfig.from_yaml(path, "s")


@pytest.mark.unit
def test_config_from_yaml_regression_binary_file(tmp_path):
    """Regression: a file that is not UTF-8 raised UnicodeDecodeError."""
    path = tmp_path / "c.yaml"
    path.write_bytes(b"timeout: \xff\xfe\x00")
    with pytest.raises(ConfigError, match="CommandGateConfig"):
        CommandGateConfig.from_yaml(path)


# --- bundles ---------------------------------------------------------------------------------------
SHIPPED = package_share() / "models" / "two_rooms"


@pytest.fixture(scope="module")
def bundle_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle") / "template"
    shutil.copytree(SHIPPED, root, ignore=shutil.ignore_patterns("*.png", "eval.json"))
    return root


def spec_fields():
    """Values for bundle.yaml fields: mostly plausible ones, sometimes anything."""
    ints = st.integers(-2, 70) | YAML_VALUES
    files = st.fixed_dictionaries({"encoder": st.fixed_dictionaries({"path": st.just("encoder.onnx"),
                                                                      "sha256": st.text(max_size=4)}) | YAML_VALUES,
                                   "rollout": YAML_VALUES}) | YAML_VALUES
    return st.fixed_dictionaries({}, optional={
        "format": st.just("jepa_pilot.bundle/1") | YAML_VALUES, "model_id": YAML_VALUES, "robot": YAML_VALUES,
        "image_size": ints, "latent_dim": ints, "history": ints, "horizon": ints, "frameskip": ints,
        "control_period": FLOATS | YAML_VALUES, "action_names": st.lists(st.text(max_size=3), max_size=3) | YAML_VALUES,
        "action_scale": st.lists(FLOATS, max_size=3) | YAML_VALUES, "files": files, "recipe": YAML_VALUES,
        "io": YAML_VALUES, "extra": YAML_VALUES})


@pytest.mark.unit
@fuzz(300)
@given(changes=spec_fields(), drop=st.lists(st.sampled_from(["format", "image_size", "files", "action_scale",
                                                             "control_period"]), max_size=2))
def test_bundle_yaml_fields_load_or_raise_bundle_error(bundle_template, tmp_path_factory, changes, drop):
    root = tmp_path_factory.mktemp("b")
    raw = yaml.safe_load((bundle_template / "bundle.yaml").read_text())
    raw.update(changes)
    for key in drop:
        raw.pop(key, None)
    (root / "bundle.yaml").write_text(yaml.safe_dump(raw))
    try:
        bundle = load_bundle(root, verify_hashes=False)
    except BundleError as exc:
        assert str(exc)
        return
    spec = bundle.spec
    for name in ("image_size", "latent_dim", "history", "horizon", "frameskip"):
        value = getattr(spec, name)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 1, (name, value)
    assert math.isfinite(spec.control_period) and spec.control_period > 0
    assert len(spec.action_names) == len(spec.action_scale) >= 1 and all(isinstance(n, str) for n in spec.action_names)
    assert all(math.isfinite(s) and s > 0 for s in spec.action_scale)
    for name in ("encoder", "rollout"):
        assert bundle.path(name).resolve().is_relative_to(root.resolve())


@pytest.mark.unit
@fuzz(150)
@given(text=st.text(max_size=300) | st.binary(max_size=300))
def test_bundle_yaml_text_loads_or_raises_bundle_error(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("b")
    (root / "bundle.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(BundleError):
        load_bundle(root)


@pytest.mark.unit
@pytest.mark.parametrize("change, message", [
    ({"files": ["encoder.onnx"]}, "files"),                                  # was AttributeError
    ({"files": {"encoder": {"path": 5, "sha256": "x"}, "rollout": {"path": "r", "sha256": "x"}}}, "path"),  # TypeError
    ({"files": {"encoder": {"path": "/etc/hostname", "sha256": "x"},
                "rollout": {"path": "rollout.onnx", "sha256": "x"}}}, "inside the bundle"),
    ({"files": {"encoder": {"path": "../template/encoder.onnx", "sha256": "x"},
                "rollout": {"path": "rollout.onnx", "sha256": "x"}}}, "inside the bundle"),
    ({"image_size": "64"}, "image_size"),                 # was accepted: frames were later resized to 6x4
    ({"horizon": 0}, "horizon"),
    ({"control_period": -0.1}, "control_period"),
    ({"action_names": ["vx"]}, "one per action name"),                       # one name, two scales
    ({"action_scale": [0.5, math.nan]}, "action_scale"),
])
def test_bundle_yaml_regressions(bundle_template, tmp_path, change, message):
    """Regressions found by the fuzzer: bundle.yaml values that crashed the loader (or a later user of the
    spec) with another exception, or pointed outside the bundle folder."""
    raw = yaml.safe_load((bundle_template / "bundle.yaml").read_text())
    raw.update(change)
    root = tmp_path / "b"
    root.mkdir()
    (root / "bundle.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(BundleError, match=message):
        load_bundle(root, verify_hashes=False)


@pytest.mark.unit
def test_bundle_yaml_regression_binary_file(tmp_path):
    """Regression: a bundle.yaml that is not UTF-8 raised UnicodeDecodeError."""
    (tmp_path / "bundle.yaml").write_bytes(b"format: \xff\xfe")
    with pytest.raises(BundleError, match="bundle.yaml"):
        load_bundle(tmp_path)


@pytest.mark.unit
@fuzz(40)
@given(which=st.sampled_from(["encoder", "rollout"]), cut=st.floats(0.0, 1.0), flips=st.lists(
    st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=4), garbage=st.binary(max_size=64))
def test_corrupt_onnx_files_raise_bundle_error(bundle_template, tmp_path_factory, which, cut, flips, garbage):
    """Truncated, bit-flipped or garbage graphs (with matching hashes, so they reach ONNX Runtime) give the
    bundle's error, never another exception or a crash of the process."""
    from jepa_pilot.common.bundle import sha256
    from jepa_pilot.perception.engine import WorldModelEngine

    root = tmp_path_factory.mktemp("b") / "bundle"
    shutil.copytree(bundle_template, root)
    path = root / f"{which}.onnx"
    data = bytearray(path.read_bytes())
    data = data[:int(len(data) * cut)]
    for where, value in flips:
        if data:
            data[int(where * len(data))] = value
    data += garbage
    path.write_bytes(bytes(data))
    raw = yaml.safe_load((root / "bundle.yaml").read_text())
    raw["files"][which]["sha256"] = sha256(path)
    (root / "bundle.yaml").write_text(yaml.safe_dump(raw))
    try:
        engine = WorldModelEngine(root, providers=("cpu",), threads=1)
    except BundleError as exc:
        assert which in str(exc)
        event("BundleError: " + ("ONNX Runtime" if "ONNX Runtime" in str(exc) else "shapes"))
        return
    event("loaded")
    # A flip that left a loadable graph (e.g. in a weight): it still has the declared inputs and outputs.
    assert engine.sessions[which].get_inputs()


@pytest.mark.unit
def test_bundle_hash_mismatch_is_a_bundle_error(bundle_template, tmp_path):
    root = tmp_path / "bundle"
    shutil.copytree(bundle_template, root)
    (root / "rollout.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(BundleError, match="sha256 does not match"):
        load_bundle(root)


# --- launch arguments and launch files ------------------------------------------------------------------
LAUNCH_TEXT = st.text(alphabet=st.sampled_from(list("ab_:=.-$() \x00/1")) | st.characters(), max_size=30)


@pytest.mark.unit
@fuzz(300)
@given(items=st.lists(LAUNCH_TEXT, max_size=4))
def test_parse_launch_arguments_parses_or_raises_launch_error(items):
    try:
        result = parse_launch_arguments(items)
    except LaunchError as exc:
        assert ":=" in str(exc)
        return
    for item in items:
        name, _, value = item.partition(":=")
        assert name in result
    assert all(f"{k}:={v}" in items or any(i.startswith(f"{k}:=") for i in items) for k, v in result.items())


SUBSTITUTIONS = st.sampled_from(["$(var a)", "$(var missing)", "$(env HOME)", "$(env JEPA_FUZZ_UNSET x)",
                                 "$(env JEPA_FUZZ_UNSET)", "$(find-pkg-share jepa_pilot)", "$(find-pkg-share nope)",
                                 "$(dirname)", "$(dirname x)", "$(", "$()", "$(var $(var a))", "$(eval 1)", ")"])


@pytest.mark.unit
@fuzz(300)
@given(parts=st.lists(SUBSTITUTIONS | LAUNCH_TEXT, max_size=5), external=st.booleans())
def test_expand_substitutes_or_raises_launch_error(tmp_path_factory, parts, external):
    text = "".join(parts)
    scope = _Scope(Path("/tmp/x/launch.yaml"), {"a": "A"}, resolve_external=external)
    try:
        out = expand(text, scope)
    except LaunchError as exc:
        assert str(exc)
        return
    assert isinstance(out, str) and "$(var" not in out


def launch_actions():
    """Launch-file actions: mostly the right shape with fuzzed values, sometimes anything at all."""
    text = SUBSTITUTIONS | st.text(max_size=6) | st.sampled_from(["true", "false", "1", "jepa_pilot", "a.yaml",
                                                                   "x.py", "/", "\x00"])
    value = text | YAML_VALUES
    entry = st.fixed_dictionaries({}, optional={"name": value, "value": value, "from": value, "to": value})
    arg = st.fixed_dictionaries({"name": value}, optional={"default": value, "description": value, "if": value})
    let = st.fixed_dictionaries({"name": value, "value": value}, optional={"unless": value})
    node = st.fixed_dictionaries({"pkg": value, "exec": value}, optional={
        "name": value, "namespace": value, "param": st.lists(entry, max_size=2) | value,
        "remap": st.lists(entry, max_size=2) | value, "args": value, "ros_args": value, "output": value,
        "respawn": value, "respawn_delay": value, "if": value, 1: value, "zz": value})
    include = st.fixed_dictionaries({"file": value}, optional={"arg": st.lists(entry, max_size=2) | value})
    leaf = st.one_of(*(body.map(lambda b, k=k: {k: b}) for k, body in
                       (("arg", arg), ("let", let), ("node", node), ("include", include))), YAML_VALUES)
    return st.recursive(leaf, lambda inner: st.fixed_dictionaries(
        {"children": st.lists(inner, max_size=3) | value}, optional={"if": value}).map(lambda b: {"group": b}),
        max_leaves=6)


@pytest.mark.unit
@fuzz(250)
@given(actions=st.lists(launch_actions(), max_size=4), arguments=st.dictionaries(st.sampled_from(["a", "b"]),
       st.text(max_size=4), max_size=2), external=st.booleans(), top=st.sampled_from(["launch", "other"]))
def test_parse_launch_file_reads_or_raises_launch_error(tmp_path_factory, actions, arguments, external, top):
    folder = tmp_path_factory.mktemp("launch")
    path = folder / "a.yaml"
    path.write_text(yaml.safe_dump({top: actions}))
    try:
        nodes = parse_launch_file(path, arguments, resolve_external=external)
    except LaunchError as exc:
        assert str(exc)
        return
    for node in nodes:
        assert isinstance(node.package, str) and isinstance(node.executable, str)
        assert node.respawn_delay >= 0


@pytest.mark.unit
@fuzz(100)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_launch_file_text_reads_or_raises_launch_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("launch") / "a.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        parse_launch_file(path)
    except LaunchError:
        pass


@pytest.mark.unit
@pytest.mark.parametrize("body", [
    {"node": {"pkg": "p", "exec": "e", 1: "x", "zz": "y"}},      # keys of mixed types: sorted() raised TypeError
    {"include": {"file": "a\x00b.yaml"}},                          # a NUL in a path: ValueError from the OS layer
])
def test_launch_regressions(tmp_path, body):
    """Regressions found while writing the launch strategies above (by reading what they target): both raised
    exceptions other than LaunchError."""
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"launch": [body]}))
    with pytest.raises(LaunchError, match=str(path)):
        parse_launch_file(path)


# --- bag import (slow: real MCAP bags) -----------------------------------------------------------------
def bag_messages():
    """Frames of one 6x4 rgb8 stream at 10 Hz with commands, some of them broken in one way or another."""
    def mostly(usual, *odd):
        return st.sampled_from([usual] * 3 * len(odd) + list(odd))

    image = st.fixed_dictionaries({
        "encoding": mostly("rgb8", "bgr8", "mono8", "rgba8", "16UC1", ""),
        "width": mostly(6, 0, 1, 2**32 - 1), "height": mostly(4, 0, 1, 2**32 - 1),
        "step": mostly(18, 0, 3, 24, 2**32 - 1), "extra": mostly(0, -20, -1, 8),
        "sec": mostly(None, 0, 2, -1, 2**31 - 1)})
    command = st.fixed_dictionaries({"x": FLOATS, "y": st.floats(-1, 1) | FLOATS,
                                     "sec": mostly(None, 0, 2, -5), "nanosec": st.integers(0, 10**9 - 1)})
    return st.lists(st.tuples(image, command), min_size=0, max_size=14)


def write_fuzzed_bag(path: Path, messages, stamped: bool, compressed: bool) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    Image, Compressed = t["sensor_msgs/msg/Image"], t["sensor_msgs/msg/CompressedImage"]
    Header, Time = t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]
    TwistStamped, Twist, Vector3 = (t["geometry_msgs/msg/TwistStamped"], t["geometry_msgs/msg/Twist"],
                                    t["geometry_msgs/msg/Vector3"])
    import cv2

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        image_type = Compressed if compressed else Image
        camera = bag.add_connection("/camera/image_raw", image_type.__msgtype__, typestore=store)
        command_type = TwistStamped if stamped else Twist
        cmd_vel = bag.add_connection("/cmd_vel", command_type.__msgtype__, typestore=store)
        for k, (image, command) in enumerate(messages):
            log_ns = 10**9 + k * 10**8
            sec, nanosec = (1, k * 10**8) if image["sec"] is None else (image["sec"], k * 10**7)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="camera")
            size = max(0, min(image["step"] * image["height"], 4096) + image["extra"])
            data = np.arange(size, dtype=np.uint64).astype(np.uint8)
            if compressed:
                # A real PNG of the frame's size when its encoding is the usual one, else truncated or garbage.
                ok, png = cv2.imencode(".png", np.full((4, 6, 3), k, np.uint8))
                assert ok
                blob = png.reshape(-1) if image["encoding"] == "rgb8" else (png.reshape(-1)[:size] if k % 2 else data)
                msg = Compressed(header=header, format="png", data=blob)
            else:
                msg = Image(header=header, height=image["height"], width=image["width"], encoding=image["encoding"],
                            is_bigendian=0, step=image["step"], data=data)
            bag.write(camera, log_ns, store.serialize_cdr(msg, image_type.__msgtype__))
            twist = Twist(linear=Vector3(x=command["x"], y=command["y"], z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.0))
            if stamped:
                sec, nanosec = ((1, k * 10**8 + 10**7) if command["sec"] is None
                                else (command["sec"], command["nanosec"]))
                twist = TwistStamped(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="base_link"),
                                     twist=twist)
            bag.write(cmd_vel, log_ns + 10**7, store.serialize_cdr(twist, command_type.__msgtype__))


@pytest.mark.slow
@fuzz(60)
@given(messages=bag_messages(), stamped=st.booleans(), compressed=st.sampled_from([False, False, True]),
       clock=st.sampled_from(["auto", "header", "log"]), period=st.sampled_from([0.0, 0.0, 0.1, 0.35]))
def test_import_bag_imports_or_raises_bag_error(tmp_path_factory, messages, stamped, compressed, clock, period):
    from jepa_pilot.data.bag import BagError, import_bag
    from jepa_pilot.data.dataset import Dataset

    folder = tmp_path_factory.mktemp("fuzzbag")
    write_fuzzed_bag(folder / "bag", messages, stamped, compressed)
    config = BagImportConfig(min_steps=1, clock=clock, period=period)
    try:
        report = import_bag(folder / "bag", folder / "data", config, progress=False, log=lambda _: None)
    except BagError as exc:
        assert str(exc)
        event(f"BagError: {str(exc).split(': ')[-1][:30]}")
        return
    event(f"imported {min(report.episodes, 2)}+ episodes")
    assert report.frames_read == len(messages) and report.commands_read == len(messages)
    if report.episodes:
        data = Dataset(folder / "data")
        assert len(data) == report.episodes
        for episode in data:
            assert np.isfinite(episode.actions).all() and (np.abs(episode.actions) <= 1).all()
            assert (np.diff(episode.timestamps) > 0).all()
