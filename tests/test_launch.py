"""`jepa-pilot up` engine: YAML launch parsing, node commands, parameter files, process supervision."""
from __future__ import annotations

import argparse
import io
import os
import shlex
import signal
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from jepa_pilot.cli import launch, up
from jepa_pilot.cli.supervisor import Launcher
from jepa_pilot.common.paths import source_root
from jepa_pilot.cli.launch import (
    LaunchError,
    NodeSpec,
    params_file_text,
    parse_launch_file,
    read_launch_file,
)

pytestmark = pytest.mark.unit

FAKE_PKG = "fakepkg"


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (creating folders) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An install prefix with share/fakepkg and lib/fakepkg, the only AMENT_PREFIX_PATH entry."""
    root = tmp_path / "install"
    (root / "share" / FAKE_PKG / "config").mkdir(parents=True)
    (root / "lib" / FAKE_PKG).mkdir(parents=True)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(root))
    return root


def add_executable(prefix: Path, name: str, body: str) -> None:
    """Install a /bin/sh script as ``lib/fakepkg/<name>``."""
    path = write(prefix / "lib" / FAKE_PKG / name, "#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)


def node(name: str, *args: Path) -> NodeSpec:
    """A fakepkg node whose executable has the same name, with file arguments."""
    return NodeSpec(package=FAKE_PKG, executable=name, name=name, args=[str(a) for a in args])


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# ---------------------------------------------------------------- arguments


ARGS_LAUNCH = """\
launch:
- arg: {name: robot, default: go2, description: robot profile}
- arg: {name: rate, description: control rate in Hz}
- node:
    pkg: fakepkg
    exec: talker
    name: talker
    param:
    - {name: robot, value: "$(var robot)"}
    - {name: rate, value: "$(var rate)"}
"""


def test_arg_default_and_override(tmp_path):
    path = write(tmp_path / "a.launch.yaml", ARGS_LAUNCH)
    [spec] = parse_launch_file(path, {"rate": "10"})
    assert spec.params == {"robot": "go2", "rate": 10}
    [spec] = parse_launch_file(path, {"rate": "0.5", "robot": "reacher"})
    assert spec.params == {"robot": "reacher", "rate": 0.5}


def test_missing_required_arg_names_file_and_action(tmp_path):
    path = write(tmp_path / "a.launch.yaml", ARGS_LAUNCH)
    with pytest.raises(LaunchError) as err:
        parse_launch_file(path, {})
    message = str(err.value)
    assert str(path) in message and "action 2 (arg 'rate')" in message
    assert "rate:=VALUE" in message and "control rate in Hz" in message


def test_unknown_override_lists_declared_args(tmp_path):
    path = write(tmp_path / "a.launch.yaml", ARGS_LAUNCH)
    with pytest.raises(LaunchError, match=r"unknown launch argument\(s\) robto .*declared: rate, robot"):
        parse_launch_file(path, {"rate": "1", "robto": "x"})


def test_parse_launch_arguments():
    assert launch.parse_launch_arguments(["a:=1", "b:=x:=y", "c:="]) == {"a": "1", "b": "x:=y", "c": ""}
    with pytest.raises(LaunchError, match="name:=value"):
        launch.parse_launch_arguments(["a=1"])


# ------------------------------------------------------------ substitutions


def test_substitutions_var_env_find_pkg_share(tmp_path, prefix, monkeypatch):
    monkeypatch.setenv("JP_TEST_FRAME", "base_link")
    monkeypatch.delenv("JP_TEST_UNSET", raising=False)
    path = write(tmp_path / "s.launch.yaml", """\
        launch:
        - let: {name: cfg, value: "$(find-pkg-share fakepkg)/config/x.yaml"}
        - node:
            pkg: fakepkg
            exec: talker
            namespace: "$(env JP_TEST_UNSET robot1)"
            param:
            - {from: "$(var cfg)"}
            - {name: frame, value: "$(env JP_TEST_FRAME)"}
            - {name: here, value: "$(dirname)"}
            - {name: two, value: "x$(env JP_TEST_FRAME)y$(var cfg)"}
        """)
    [spec] = parse_launch_file(path)
    share = prefix / "share" / FAKE_PKG
    assert spec.param_files == [share / "config" / "x.yaml"]
    assert spec.namespace == "/robot1"
    assert spec.params == {"frame": "base_link", "here": str(tmp_path),
                           "two": f"xbase_linky{share / 'config' / 'x.yaml'}"}


def test_substitution_errors_name_the_file(tmp_path, prefix, monkeypatch):
    monkeypatch.delenv("JP_TEST_UNSET", raising=False)
    cases = {
        "$(eval 1 + 1)": "unsupported substitution \\$\\(eval\\)",
        "$(optenv X)": "unsupported substitution \\$\\(optenv\\).*supported: \\$\\(var\\), \\$\\(env\\)",
        "$(var $(env HOME))": "unterminated or nested substitution",
        "$(var nope)": "\\$\\(var nope\\): undefined",
        "$(env JP_TEST_UNSET)": "'JP_TEST_UNSET' is not set",
        "$(find-pkg-share no_such_pkg)": "package 'no_such_pkg' not found",
        "$(var x": "unterminated or nested substitution",
        "$(env)": "takes 1 or 2 argument",
    }
    for text, pattern in cases.items():
        path = write(tmp_path / "bad.launch.yaml", f"""\
            launch:
            - node: {{pkg: fakepkg, exec: talker, name: "{text}"}}
            """)
        with pytest.raises(LaunchError, match=pattern) as err:
            parse_launch_file(path)
        assert str(err.value).startswith(f"{path}: action 1 (node ")


def test_find_pkg_share_falls_back_to_checkout(monkeypatch):
    root = Path(launch.__file__).resolve().parents[1]
    if not (root / "package.xml").is_file():
        pytest.skip("jepa_pilot is installed here, not a source checkout")
    monkeypatch.setenv("AMENT_PREFIX_PATH", "")
    assert launch.find_package_share("jepa_pilot") == root
    with pytest.raises(LaunchError, match="package 'other' not found"):
        launch.find_package_share("other")


# ------------------------------------------------------- include and groups


def test_include_with_args_and_scoping(tmp_path):
    write(tmp_path / "sub" / "child.launch.yaml", """\
        launch:
        - arg: {name: who, default: nobody}
        - let: {name: inherited, value: "leaked"}
        - node: {pkg: fakepkg, exec: talker, name: "$(var who)", namespace: "$(var ns)"}
        """)
    path = write(tmp_path / "parent.launch.yaml", """\
        launch:
        - let: {name: ns, value: robot}
        - let: {name: inherited, value: parent}
        - include:
            file: "sub/child.launch.yaml"
            arg: [{name: who, value: "$(var ns)_talker"}]
        - include: {file: "$(dirname)/sub/child.launch.yaml"}
        - node: {pkg: fakepkg, exec: listener, name: "$(var inherited)"}
        """)
    specs = parse_launch_file(path)
    assert [(s.name, s.namespace) for s in specs] == [
        ("robot_talker", "/robot"), ("nobody", "/robot"), ("parent", "")]


def test_error_in_included_file_names_both_files(tmp_path):
    child = write(tmp_path / "child.launch.yaml", "launch:\n- node: {pkg: fakepkg}\n")
    parent = write(tmp_path / "parent.launch.yaml", "launch:\n- include: {file: child.launch.yaml}\n")
    with pytest.raises(LaunchError) as err:
        parse_launch_file(parent)
    message = str(err.value)
    assert message.startswith(f"{child}: action 1 (node): 'node' needs key(s) ['exec']")
    assert f"included from {parent}: action 1 (include 'child.launch.yaml')" in message


def test_include_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.launch.yaml", "launch:\n- include: {file: sub/../b.launch.yaml}\n")
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "b.launch.yaml", "launch:\n- include: {file: a.launch.yaml}\n")
    with pytest.raises(LaunchError, match="include cycle: .*b.launch.yaml -> .*a.launch.yaml -> .*b.launch.yaml"):
        parse_launch_file(path)


def test_if_unless_and_groups(tmp_path):
    path = write(tmp_path / "c.launch.yaml", """\
        launch:
        - arg: {name: extra, default: "false"}
        - node: {pkg: fakepkg, exec: a, if: "$(var extra)"}
        - node: {pkg: fakepkg, exec: b, unless: "$(var extra)"}
        - node: {pkg: fakepkg, exec: c, if: "1"}
        - group:
            children:
            - let: {name: extra, value: "true"}
            - node: {pkg: fakepkg, exec: d, namespace: left/, if: "$(var extra)"}
            - node: {pkg: fakepkg, exec: e, namespace: /abs}
        - node: {pkg: fakepkg, exec: f, if: "$(var extra)"}
        - group:
            if: "$(var extra)"
            children: [{node: {pkg: fakepkg, exec: g}}]
        """)
    specs = parse_launch_file(path)
    assert [(s.executable, s.namespace) for s in specs] == [
        ("b", ""), ("c", ""), ("d", "/left"), ("e", "/abs")]  # the group's let stays in the group
    enabled = parse_launch_file(path, {"extra": "True"})
    assert [s.executable for s in enabled] == ["a", "c", "d", "e", "f", "g"]
    with pytest.raises(LaunchError, match=r"action 2 \(node 'a'\): 'if' must be true, false, 1 or 0"):
        parse_launch_file(path, {"extra": "maybe"})


@pytest.mark.parametrize("action", [
    "executable: {cmd: ls}", "push-ros-namespace: {namespace: arm}", "set_env: {name: A, value: b}",
    "timer: {period: 1.0, children: []}",
])
def test_unsupported_actions_are_refused_naming_file_action_and_subset(tmp_path, action):
    path = write(tmp_path / "u.launch.yaml", f"launch:\n- arg: {{name: a, default: x}}\n- {action}\n")
    kind = action.split(":")[0]
    with pytest.raises(LaunchError) as err:
        parse_launch_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: action 2 ({kind}")
    assert f"unsupported action '{kind}'" in message and launch.SUPPORTED in message
    assert "ros2 launch" in message


def test_unsupported_key(tmp_path):
    path = write(tmp_path / "u.launch.yaml", "launch:\n- group: {scoped: false, children: []}\n")
    with pytest.raises(LaunchError, match=r"unsupported key\(s\) \['scoped'\] in 'group' \(supported: children"):
        parse_launch_file(path)
    path = write(tmp_path / "u.launch.yaml", "launch:\n- node: {pkg: p, exec: e, on_exit: shutdown}\n")
    with pytest.raises(LaunchError, match=r"unsupported key\(s\) \['on_exit'\] in 'node'"):
        parse_launch_file(path)
    path = write(tmp_path / "u.launch.yaml", "nodes: []\n")
    with pytest.raises(LaunchError, match="must be a mapping with a 'launch:' list"):
        parse_launch_file(path)


@pytest.mark.parametrize("entry, pattern", [
    ("param: [{from: a.yaml, name: x}]", r"'param' entry .*: write \{from: FILE\} or \{name: N, value: V\}"),
    ("param: [{name: x}]", r"'param' entry .*: write \{from: FILE\}"),
    ("remap: [{from: /a}]", r"'remap' entry .*: write \{from: TOPIC, to: TOPIC\}"),
    ("param: {name: x, value: 1}", r"'param' must be a list of mappings"),
    ("args: \"'unclosed\"", r"'args' cannot be split into words"),
])
def test_malformed_node_entries_are_refused(tmp_path, entry, pattern):
    path = write(tmp_path / "e.launch.yaml", f"launch:\n- node: {{pkg: p, exec: e, {entry}}}\n")
    with pytest.raises(LaunchError, match=pattern) as err:
        parse_launch_file(path)
    assert str(err.value).startswith(f"{path}: action 1 (node 'e'): ")


# ------------------------------------------- launch files for real ros2 launch


EXTERNAL = """\
    launch:
    - arg: {name: world, default: empty.sdf}
    - include:
        file: "$(find-pkg-share not_installed_pkg)/launch/sim.launch.py"
        arg: [{name: gz_args, value: "-r $(var world)"}]
    - node:
        pkg: other_pkg
        exec: bridge
        param: [{name: config_file, value: "$(find-pkg-share other_pkg)/bridge.yaml"}]
    """


def test_non_yaml_include_needs_real_ros2_launch(tmp_path, prefix):
    path = write(tmp_path / "x.launch.yaml", "launch:\n- include: {file: other.launch.py}\n")
    with pytest.raises(LaunchError, match=r"action 1 \(include 'other.launch.py'\): includes other.launch.py, "
                                          r"a Python launch file: .*needs real `ros2 launch`"):
        parse_launch_file(path)
    path = write(tmp_path / "x.launch.yaml", EXTERNAL)
    with pytest.raises(LaunchError, match=r"includes \$\(find-pkg-share not_installed_pkg\)/launch/sim.launch.py"):
        parse_launch_file(path)


def test_resolve_external_false_records_what_it_cannot_resolve(tmp_path, prefix):
    path = write(tmp_path / "x.launch.yaml", EXTERNAL)
    plan = read_launch_file(path, {"world": "two_rooms.sdf"}, resolve_external=False)
    [include] = plan.external_includes
    assert include.file == "$(find-pkg-share not_installed_pkg)/launch/sim.launch.py"
    assert include.package == "not_installed_pkg" and include.arguments == {"gz_args": "-r two_rooms.sdf"}
    assert include.origin.startswith(f"{path}: action 2 (include")
    [node] = plan.nodes  # recorded, not resolved to an executable
    assert (node.package, node.executable) == ("other_pkg", "bridge")
    assert node.params == {"config_file": "$(find-pkg-share other_pkg)/bridge.yaml"}
    assert parse_launch_file(path, resolve_external=False) == plan.nodes
    # Installed packages still resolve, and YAML includes are still read.
    write(tmp_path / "child.launch.yaml",
          "launch:\n- node: {pkg: fakepkg, exec: talker, name: $(find-pkg-share fakepkg)}\n")
    path = write(tmp_path / "y.launch.yaml", "launch:\n- include: {file: child.launch.yaml}\n")
    [node] = read_launch_file(path, resolve_external=False).nodes
    assert node.name == str(prefix / "share" / FAKE_PKG)
    # Resolving (jepa-pilot up) fails on a missing package, as before.
    path = write(tmp_path / "z.launch.yaml", "launch:\n- node: {pkg: p, exec: e, name: $(find-pkg-share nope)}\n")
    with pytest.raises(LaunchError, match="package 'nope' not found"):
        parse_launch_file(path)
    assert parse_launch_file(path, resolve_external=False)[0].name == "$(find-pkg-share nope)"


# ------------------------------------------------------------------ commands


PARAM_VALUES = {
    "flag": True, "n": 3, "gain": 0.5, "whole": 2.0, "tiny": 1e-05, "big": float("inf"),
    # strings rcl would read as bools or floats if they were written plain
    "s_true": "true", "s_half": "0.5", "s_y": "y", "s_n": "n", "s_inf": "inf", "s_exp": "1e5", "s_empty": "",
    "quote": "it's: x", "frame": "base_link", "topic": "/camera/image_raw", "accent": "caf\u00e9",
    "floats": [1.0, 2.5], "strings": ["a", "true"], "ints": [1, 2], "bools": [True, False],
}


def test_params_file_is_the_ros_params_shape_and_keeps_types():
    data = yaml.safe_load(params_file_text(PARAM_VALUES))
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]
    loaded = data["/**"]["ros__parameters"]
    assert loaded == PARAM_VALUES
    assert all(type(loaded[k]) is type(v) for k, v in PARAM_VALUES.items())


@pytest.mark.parametrize("value", [[], [1, 2.0], [[1]], {"a": 1}, None])
def test_param_values_without_ros_type_are_rejected(value):
    with pytest.raises(LaunchError, match="parameter 'x': value .* has no ROS parameter type"):
        params_file_text({"x": value})


def test_launch_file_types_strings_like_launch_ros(tmp_path):
    path = write(tmp_path / "t.launch.yaml", """\
        launch:
        - node:
            pkg: fakepkg
            exec: talker
            param:
            - {name: flag, value: "true"}
            - {name: gain, value: "0.5"}
            - {name: n, value: 7}
            - {name: names, value: [a, "b"]}
            - {name: frame, value: map}
        """)
    [spec] = parse_launch_file(path)
    assert spec.params == {"flag": True, "gain": 0.5, "n": 7, "names": ["a", "b"], "frame": "map"}
    path.write_text(path.read_text().replace('"b"', '"2"'))
    with pytest.raises(LaunchError, match=r"action 1 \(node 'talker'\): parameter 'names': value \['a', 2\]"):
        parse_launch_file(path)


def test_command_is_what_launch_ros_runs(tmp_path, prefix):
    add_executable(prefix, "talker", "exit 0\n")
    spec = NodeSpec(
        package=FAKE_PKG, executable="talker", name="talk", namespace="/robot",
        param_files=[tmp_path / "p.yaml"], params={"mode": "true", "gain": 0.5},
        remaps=[("/in", "/camera/image_raw")], ros_args=["--log-level", "debug"], args=["--fast"],
    )
    inline = spec.write_params_file(tmp_path / "inline.yaml")
    assert spec.command(inline) == [
        str(prefix / "lib" / FAKE_PKG / "talker"), "--fast", "--ros-args",
        "-r", "__node:=talk", "-r", "__ns:=/robot",
        "--params-file", str(tmp_path / "p.yaml"), "--params-file", str(inline),  # inline values win
        "-r", "/in:=/camera/image_raw", "--log-level", "debug",
    ]
    assert yaml.safe_load(inline.read_text()) == {"/**": {"ros__parameters": {"mode": "true", "gain": 0.5}}}
    with pytest.raises(ValueError, match="inline parameters"):
        spec.command()
    bare = NodeSpec(package=FAKE_PKG, executable="talker")
    assert bare.command() == [str(prefix / "lib" / FAKE_PKG / "talker")]


def test_jepa_pilot_nodes_are_the_installed_executables(tmp_path, prefix, monkeypatch):
    """Like launch_ros: <prefix>/lib/jepa_pilot/<exec> of the first AMENT_PREFIX_PATH entry that has it."""
    other = tmp_path / "other_prefix"
    for root in (other, prefix):
        script = write(root / "lib" / "jepa_pilot" / "sim_node", "#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join([str(prefix), str(other)]))
    spec = NodeSpec(package="jepa_pilot", executable="sim_node", name="sim")
    assert spec.command() == [str(prefix / "lib" / "jepa_pilot" / "sim_node"), "--ros-args", "-r", "__node:=sim"]
    (prefix / "lib" / "jepa_pilot" / "sim_node").chmod(0o644)  # what a broken symlink install left
    with pytest.raises(LaunchError, match=r"sim_node is not executable \(mode 0o644\); rebuild"):
        spec.command()
    missing = NodeSpec(package="jepa_pilot", executable="not_a_node", origin="x.launch.yaml: action 3")
    with pytest.raises(LaunchError, match=r"^x.launch.yaml: action 3: executable 'not_a_node' of package "
                                          r"'jepa_pilot' not found: .*make build"):
        missing.command()


def test_missing_executable_is_a_located_error(prefix):
    spec = NodeSpec(package=FAKE_PKG, executable="ghost", origin="x.launch.yaml: action 3 (node 'ghost')")
    with pytest.raises(LaunchError, match=r"^x.launch.yaml: action 3 \(node 'ghost'\): executable 'ghost'"):
        spec.validate()


@pytest.mark.parametrize("content, pattern", [
    ("talker:\n  foo: 1\n", r"section 'talker' has no 'ros__parameters'"),
    ("- a\n- b\n", r"expected 'node_name: \{ros__parameters: \{...\}\}' \(or '/\*\*:' for every node\)"),
    ("talker:\n  ros__parameters: [1, 2]\n", r"section 'talker' must hold only 'ros__parameters', a mapping"),
    ("talker: {ros__parameters: {a: 1}, rate: 2}\n", r"section 'talker' must hold only 'ros__parameters'"),
    ("robot:\n  talker:\n    rate: 2\n", r"section 'robot/talker' has no 'ros__parameters'"),
    ("talker: [unclosed\n", "cannot be read as YAML"),
])
def test_malformed_param_file_is_rejected(tmp_path, prefix, content, pattern):
    add_executable(prefix, "talker", "exit 0\n")
    params = write(tmp_path / "params.yaml", content)
    spec = NodeSpec(FAKE_PKG, "talker", param_files=[params], origin="t.launch.yaml: action 1")
    with pytest.raises(LaunchError, match=pattern) as err:
        spec.validate()
    assert str(err.value).startswith(f"t.launch.yaml: action 1: parameter file {params}")


def test_valid_param_files(tmp_path, prefix):
    add_executable(prefix, "talker", "exit 0\n")
    files = [
        write(tmp_path / "a.yaml", "talker:\n  ros__parameters:\n    rate: 10.0\n"),
        write(tmp_path / "b.yaml", "/**:\n  ros__parameters: {use_sim_time: true}\n"),
        write(tmp_path / "c.yaml", "robot:\n  talker:\n    ros__parameters: {a: 1}\n"),
    ]
    NodeSpec(package=FAKE_PKG, executable="talker", param_files=files).validate()
    missing = NodeSpec(package=FAKE_PKG, executable="talker", param_files=[tmp_path / "none.yaml"])
    with pytest.raises(LaunchError, match="none.yaml does not exist"):
        missing.validate()


# --------------------------------------------------------------- supervision

TRAP_SIGINT = """\
trap 'echo SIGINT > "$1"; exit 0' INT
touch "$2"
while :; do sleep 0.05; done
"""


def test_output_lines_are_prefixed(prefix):
    add_executable(prefix, "talker", "echo hello\necho oops >&2\n")
    out = io.StringIO()
    assert Launcher([node("talker")], stream=out).run() == 0
    lines = out.getvalue().splitlines()
    assert "[talker] hello" in lines and "[talker] oops" in lines
    assert "[launch] talker exited with code 0" in lines


def test_inline_params_reach_the_node_in_a_file_removed_at_stop(prefix):
    add_executable(prefix, "talker", """\
        while [ $# -gt 0 ]; do
          if [ "$1" = --params-file ]; then echo "file $2"; cat "$2"; fi
          shift
        done
        """)
    out = io.StringIO()
    spec = NodeSpec(FAKE_PKG, "talker", name="talker", params={"rate": 2.5, "frame": "true"})
    assert Launcher([spec], stream=out).run() == 0
    lines = out.getvalue().splitlines()
    assert "[talker]     rate: 2.5" in lines and "[talker]     frame: 'true'" in lines
    [params_file] = [Path(line.split()[-1]) for line in lines if line.startswith("[talker] file ")]
    assert params_file.name == "talker.params.yaml" and not params_file.parent.exists()


def test_duration_stops_nodes_with_sigint(tmp_path, prefix):
    add_executable(prefix, "steady", TRAP_SIGINT)
    add_executable(prefix, "quitter", "echo done\n")
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    out = io.StringIO()
    launcher = Launcher([node("steady", marker, ready), node("quitter")], stream=out)
    assert launcher.run(duration=1.0) == 0
    assert marker.read_text().strip() == "SIGINT"  # kept running after quitter exited 0
    log = out.getvalue()
    assert "[launch] quitter exited with code 0" in log and "[launch] steady exited with code 0" in log
    assert not any(launcher.alive(name) for name in ("steady", "quitter"))


def test_node_ignoring_sigint_is_killed_after_grace(tmp_path, prefix):
    add_executable(prefix, "stubborn", "trap '' INT TERM\ntouch \"$1\"\nwhile :; do sleep 0.05; done\n")
    ready = tmp_path / "ready"
    out = io.StringIO()
    with Launcher([node("stubborn", ready)], grace=0.3, term_timeout=0.3, stream=out) as launcher:
        assert wait_for(ready.exists)
        assert launcher.alive()
    assert launcher.processes["stubborn"].returncode == -signal.SIGKILL
    log = out.getvalue()
    assert log.index("sending SIGINT") < log.index("sending SIGTERM") < log.index("sending SIGKILL")


def test_failing_node_stops_the_others(tmp_path, prefix):
    add_executable(prefix, "steady", TRAP_SIGINT)
    add_executable(prefix, "crasher", """\
        i=0
        while [ ! -e "$1" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
        exit 3
        """)
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    out = io.StringIO()
    launcher = Launcher([node("steady", marker, ready), node("crasher", ready)], stream=out)
    assert launcher.run(duration=20) == 3  # the duration only bounds a broken run
    assert marker.read_text().strip() == "SIGINT"
    assert "[launch] crasher exited with code 3" in out.getvalue()
    assert not launcher._running()


def test_node_killed_by_a_signal_ends_the_launch_with_128_plus_the_signal(tmp_path, prefix):
    add_executable(prefix, "steady", TRAP_SIGINT)
    add_executable(prefix, "victim", 'while [ ! -e "$1" ]; do sleep 0.02; done\nkill -KILL $$\n')
    marker, ready = tmp_path / "marker", tmp_path / "ready"
    out = io.StringIO()
    launcher = Launcher([node("steady", marker, ready), node("victim", ready)], stream=out)
    assert launcher.run(duration=20) == 128 + signal.SIGKILL
    assert marker.read_text().strip() == "SIGINT"
    log = out.getvalue()
    assert "[launch] victim killed by SIGKILL" in log and "[launch] victim failed; shutting down" in log


def test_context_manager_leaves_no_process(tmp_path, prefix):
    pid_file = tmp_path / "grandchild.pid"
    add_executable(prefix, "parent", 'sleep 60 &\necho $! > "$1.tmp" && mv "$1.tmp" "$1"\nwait\n')
    with Launcher([node("parent", pid_file)], grace=2.0, stream=io.StringIO()) as launcher:
        assert wait_for(pid_file.exists)
        grandchild = int(pid_file.read_text())
        assert launcher.alive("parent") and pid_running(grandchild)
    assert not launcher.alive("parent") and launcher.processes["parent"].returncode is not None
    assert wait_for(lambda: not pid_running(grandchild), timeout=5.0)


def test_start_failure_stops_started_nodes(tmp_path, prefix):
    add_executable(prefix, "steady", TRAP_SIGINT)
    launcher = Launcher([node("steady", tmp_path / "m", tmp_path / "r"), node("ghost")], stream=io.StringIO())
    with pytest.raises(LaunchError, match="cannot start node 'ghost'"):
        launcher.start()
    assert launcher.processes["steady"].poll() is not None


def test_duplicate_node_names_are_rejected():
    with pytest.raises(LaunchError, match="several nodes are named"):
        Launcher([node("a"), node("a")])
    named = Launcher([
        NodeSpec(FAKE_PKG, "x", name="cam", namespace="/l"), NodeSpec(FAKE_PKG, "x", name="cam", namespace="/r")])
    assert named.labels == ["l/cam", "r/cam"]


# -------------------------------------------------------------- jepa-pilot up


def up_args(*argv: str) -> argparse.Namespace:
    """Parse ``jepa-pilot up ARGV`` with only the up subcommand registered."""
    parser = argparse.ArgumentParser(prog="jepa-pilot")
    up.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["up", *argv])


@pytest.fixture
def profile(prefix: Path) -> Path:
    """A jepa_pilot share dir in the prefix with one profile, ``demo``."""
    add_executable(prefix, "talker", "exit 0\n")
    return write(prefix / "share" / "jepa_pilot" / "launch" / "demo.launch.yaml", """\
        launch:
        - arg: {name: word, default: hi, description: what to say}
        - node: {pkg: fakepkg, exec: talker, name: talker, param: [{name: word, value: "$(var word)"}]}
        """)


def test_up_dry_run_prints_commands(profile, prefix, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the kept parameter files go
    args = up_args("--dry-run", "demo", "word:=true")
    assert args.func(args) == 0
    [line] = capsys.readouterr().out.splitlines()
    *command, params_file = shlex.split(line)
    talker = str(prefix / "lib" / FAKE_PKG / "talker")
    assert command == [talker, "--ros-args", "-r", "__node:=talker", "--params-file"]
    assert Path(params_file).parent.parent == tmp_path
    assert yaml.safe_load(Path(params_file).read_text()) == {"/**": {"ros__parameters": {"word": True}}}


def test_up_list_and_errors(profile, capsys):
    args = up_args("--list")
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"demo  ({profile})" in out and "word:=hi  what to say" in out
    args = up_args("nope")
    assert args.func(args) == 2
    assert "unknown profile 'nope' (available: demo)" in capsys.readouterr().err
    args = up_args(str(profile), "wrod:=x")
    assert args.func(args) == 2
    assert "unknown launch argument(s) wrod" in capsys.readouterr().err


def test_up_runs_the_graph(profile, capsys):
    args = up_args(str(profile), "--duration", "5")
    assert args.func(args) == 0
    assert "[launch] talker exited with code 0" in capsys.readouterr().out


def test_up_refuses_launch_files_for_real_ros2_launch(tmp_path, prefix, capsys):
    args = up_args(str(write(tmp_path / "x.launch.yaml", EXTERNAL)))
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "x.launch.yaml needs real ros2 launch: it includes $(find-pkg-share not_installed_pkg)" in err
    gazebo = source_root() / "launch" / "gazebo.launch.yaml"
    args = up_args("--dry-run", str(gazebo), "robot:=two_rooms")
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "gazebo.launch.yaml needs real ros2 launch and Gazebo (ros_gz)" in err
    assert "ros2 launch jepa_pilot gazebo.launch.yaml" in err


def test_child_environment_keeps_dds_settings():
    assert up.child_environment({})["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    env = up.child_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_DOMAIN_ID": "7"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert "SUBNET (from the environment), ROS_DOMAIN_ID=7" in up.describe_dds(env, env)


def test_a_respawning_node_is_started_again_after_its_delay_and_ends_nothing(tmp_path, prefix):
    # Each start appends a line; the first two runs fail, the third stays up until SIGINT.
    add_executable(prefix, "flaky", """\
        echo run >> "$1"
        [ "$(wc -l < "$1")" -ge 3 ] || exit 3
        trap 'exit 0' INT
        while :; do sleep 0.05; done
        """)
    add_executable(prefix, "steady", TRAP_SIGINT)
    runs, marker, ready = tmp_path / "runs", tmp_path / "marker", tmp_path / "ready"
    flaky = NodeSpec(FAKE_PKG, "flaky", name="flaky", args=[str(runs)], respawn=True, respawn_delay=0.2)
    out = io.StringIO()
    launcher = Launcher([flaky, node("steady", marker, ready)], stream=out)
    threading.Timer(0.5, lambda: wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 3)
                    and launcher.request_stop("test done")).start()
    assert launcher.run(duration=30) == 0
    assert runs.read_text().split() == ["run", "run", "run"]
    log = out.getvalue()
    assert log.count("[launch] flaky will respawn in 0.2 s") == 2 and "failed; shutting down" not in log
    assert marker.read_text().strip() == "SIGINT"  # the rest of the graph kept running, then stopped cleanly


def test_respawn_is_read_from_the_launch_file(tmp_path, prefix):
    add_executable(prefix, "talker", "exit 0\n")
    path = write(tmp_path / "r.launch.yaml", f"""\
        launch:
        - node: {{pkg: {FAKE_PKG}, exec: talker, name: a, respawn: true, respawn_delay: 1.5}}
        - node: {{pkg: {FAKE_PKG}, exec: talker, name: b}}
        """)
    a, b = parse_launch_file(path)
    assert (a.respawn, a.respawn_delay, b.respawn, b.respawn_delay) == (True, 1.5, False, 0.0)
    for value in ("-1", ".inf", "soon"):
        bad = write(tmp_path / "bad.launch.yaml",
                    f"launch:\n- node: {{pkg: {FAKE_PKG}, exec: talker, respawn_delay: {value}}}\n")
        with pytest.raises(LaunchError, match="'respawn_delay' must be a finite number of seconds >= 0"):
            parse_launch_file(bad)
