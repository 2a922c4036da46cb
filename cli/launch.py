"""Read ROS 2 YAML launch files into the node commands ``ros2 launch`` would run.

This is the reader behind ``jepa-pilot up``, for machines without
``ros2 launch`` (the ROS 2 wheels on PyPI ship neither ``launch`` nor the
``ros2`` command). It never imports rclpy or launch: it builds the command
lines launch_ros builds, and :mod:`jepa_pilot.cli.supervisor` starts them.

The subset of the YAML launch format it reads (anything else is refused with
the file, the action and this list):

* a top-level ``launch:`` list of actions;
* ``arg: {name, default?, description?}``, set from the command line as ``name:=value``;
* ``let: {name, value}``;
* ``node: {pkg, exec, name?, namespace?, param?, remap?, args?, ros_args?, output?}``,
  ``param`` entries ``{from: FILE}`` or ``{name, value}``, ``remap`` entries ``{from, to}``;
* ``include: {file, arg?: [{name, value}]}`` of a YAML launch file (a relative
  path is relative to the including file);
* ``group: {children}``, always scoped: variables set inside stay inside;
* ``if`` / ``unless`` on any action (``true``/``false``/``1``/``0`` after substitution);
* substitutions ``$(var NAME)``, ``$(env NAME [DEFAULT])``,
  ``$(find-pkg-share PKG)`` and ``$(dirname)``, not nested.

Each node runs as launch_ros runs it: ``<prefix>/lib/<pkg>/<exec> [args]
--ros-args -r __node:=NAME -r __ns:=NS --params-file FILE... -r FROM:=TO
[ros_args]``, the executable found through AMENT_PREFIX_PATH. Inline
``{name, value}`` parameters go into one more parameter file, written with
``yaml.safe_dump`` as ``/**: {ros__parameters: {...}}`` and passed last, so
they override the ``from`` files. String values are typed by YAML after
substitution, as launch_ros does (``value: "0.5"`` becomes a float).

With ``resolve_external=False`` (checking a launch file meant for real
``ros2 launch`` on a machine without the other packages it uses, e.g. the
Gazebo one) ``$(find-pkg-share PKG)`` of a missing package stays as written
and includes of Python or XML launch files are recorded as
:class:`ExternalInclude` instead of refused.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import yaml

from jepa_pilot.common.paths import package_share

PACKAGE = "jepa_pilot"
"""The ROS package this checkout is."""

ParamValue = Union[bool, int, float, str, list]
"""A ROS parameter value: a scalar or a non-empty list of one scalar type."""

_SCALARS = (bool, int, float, str)

SUPPORTED = (
    "actions arg, let, node, include (YAML launch files), group; 'if'/'unless' on any action; "
    "substitutions $(var), $(env), $(find-pkg-share), $(dirname)"
)
"""The supported subset in one line, for error messages."""


class LaunchError(Exception):
    """A launch file, parameter file or node is unusable; the message says where and why."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located

    def at(self, where: str) -> LaunchError:
        """This error prefixed with ``where`` (once: an already located error is kept)."""
        return self if self.located else LaunchError(f"{where}: {self}", located=True)


# ------------------------------------------------------------------ packages


def find_package_share(package: str) -> Path:
    """``$(find-pkg-share package)`` (the source checkout is the fallback for jepa_pilot)."""
    try:
        return package_share(package)
    except FileNotFoundError as exc:
        raise LaunchError(str(exc)) from None


def find_executable(package: str, executable: str) -> Path:
    """``<prefix>/lib/<package>/<executable>`` of the first AMENT_PREFIX_PATH entry that has it."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        candidate = prefix / "lib" / package / executable
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                mode = oct(candidate.stat().st_mode & 0o777)
                raise LaunchError(f"{candidate} is not executable (mode {mode}); rebuild the package")
            return candidate
    hint = " (build it: `make build`, then `source scripts/env.sh`)" if package == PACKAGE else ""
    raise LaunchError(
        f"executable '{executable}' of package '{package}' not found: no lib/{package}/{executable} "
        f"under AMENT_PREFIX_PATH ({os.environ.get('AMENT_PREFIX_PATH') or 'unset'}){hint}"
    )


# ---------------------------------------------------------- parameter values


def check_param_value(value: Any) -> None:
    """Raise unless ``value`` has a ROS parameter type (a scalar or a list of one scalar type)."""
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, list) and value and type(value[0]) in _SCALARS and all(
            type(v) is type(value[0]) for v in value):
        return
    raise LaunchError(
        f"value {value!r} has no ROS parameter type: use a bool, int, float or string, or a "
        "non-empty list of one of them (write 1.0, not 1, in a list of floats)"
    )


class _Quoted(str):
    """A string parameter value, written quoted.

    rcl reads a plain ``y``, ``inf`` or ``1e5`` as a bool or a float where
    PyYAML writes them unquoted; a quoted scalar is always a string to rcl.
    """


class _ParamsDumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper, plus quoted string values (:class:`_Quoted`)."""


_ParamsDumper.add_representer(
    _Quoted, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="'"))


def params_file_text(params: Mapping[str, ParamValue]) -> str:
    """A ROS parameter file giving every node that reads it ``params`` (``/**``, as launch_ros writes)."""
    for name, value in params.items():
        try:
            check_param_value(value)
        except LaunchError as err:
            raise LaunchError(f"parameter '{name}': {err}") from None
    quoted = {name: [_Quoted(v) if isinstance(v, str) else v for v in value] if isinstance(value, list)
              else _Quoted(value) if isinstance(value, str) else value for name, value in params.items()}
    return yaml.dump({"/**": {"ros__parameters": quoted}}, Dumper=_ParamsDumper,
                     default_flow_style=False, sort_keys=False, allow_unicode=True)


def _check_param_sections(sections: Any, path: Path, trail: str = "") -> None:
    """Check ``name: {ros__parameters: {...}}`` sections (namespaces may nest them)."""
    if not isinstance(sections, dict) or not sections:
        raise LaunchError(f"parameter file {path}: expected 'node_name: {{ros__parameters: {{...}}}}' "
                          f"(or '/**:' for every node){f' under {trail!r}' if trail else ''}")
    for key, body in sections.items():
        where = f"{trail}{key}"
        if isinstance(body, dict) and "ros__parameters" in body:
            if not isinstance(body["ros__parameters"], dict) or len(body) != 1:
                raise LaunchError(f"parameter file {path}: section '{where}' must hold only "
                                  "'ros__parameters', a mapping of parameter names to values")
        elif isinstance(body, dict) and body and all(isinstance(v, dict) for v in body.values()):
            _check_param_sections(body, path, f"{where}/")
        else:
            raise LaunchError(f"parameter file {path}: section '{where}' has no 'ros__parameters' "
                              f"(expected '{key}: {{ros__parameters: {{...}}}}')")


def validate_param_file(path: Path) -> None:
    """Raise unless ``path`` is a ROS parameter file: ``node_or_/**: {ros__parameters: {...}}``."""
    if not path.is_file():
        raise LaunchError(f"parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise LaunchError(f"parameter file {path} cannot be read as YAML: {err}") from None
    _check_param_sections(data, path)


# ------------------------------------------------------------ what it returns


@dataclass
class NodeSpec:
    """One node to start: what ``ros2 launch`` runs for a ``node`` action."""

    package: str
    executable: str
    name: str | None = None
    namespace: str = ""
    param_files: list[Path] = field(default_factory=list)
    params: dict[str, ParamValue] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    ros_args: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    output: str = "screen"
    """As in the launch file; ``jepa-pilot up`` prints every node's output either way."""
    respawn: bool = False
    """Start the node again whenever it exits (until the launch shuts down), as ros2 launch does."""
    respawn_delay: float = 0.0
    """Seconds to wait before a respawn."""
    origin: str = ""
    """Where the node was declared (launch file and action), for messages."""

    @property
    def label(self) -> str:
        """The node name, or the executable when the launch file gives none."""
        return self.name or self.executable

    @property
    def full_name(self) -> str:
        """The fully qualified node name, e.g. ``/robot/planner``."""
        return f"{self.namespace}/{self.label}"

    def program(self) -> Path:
        """The installed executable, ``<prefix>/lib/<package>/<executable>``."""
        try:
            return find_executable(self.package, self.executable)
        except LaunchError as err:
            raise err.at(self.origin or f"node '{self.label}'") from None

    def write_params_file(self, path: Path) -> Path:
        """Write :attr:`params` as a ROS parameter file at ``path`` (see :func:`params_file_text`)."""
        path.write_text(params_file_text(self.params))
        return path

    def command(self, params_file: Path | None = None) -> list[str]:
        """The argv launch_ros runs; ``params_file`` (from :meth:`write_params_file`) holds :attr:`params`."""
        if self.params and params_file is None:
            raise ValueError(f"node '{self.label}' has inline parameters: pass the file write_params_file wrote")
        ros: list[str] = []
        if self.name:
            ros += ["-r", f"__node:={self.name}"]
        if self.namespace:
            ros += ["-r", f"__ns:={self.namespace}"]
        for path in [*self.param_files, *([params_file] if self.params else [])]:
            ros += ["--params-file", str(path)]
        for source, target in self.remaps:
            ros += ["-r", f"{source}:={target}"]
        ros += self.ros_args
        return [str(self.program()), *self.args, *(["--ros-args", *ros] if ros else [])]

    def validate(self) -> None:
        """Raise a located LaunchError unless the executable, parameter files and values are usable."""
        try:
            for path in self.param_files:
                validate_param_file(path)
            params_file_text(self.params)
        except LaunchError as err:
            raise err.at(self.origin or f"node '{self.label}'") from None
        self.program()


@dataclass
class ArgDecl:
    """A launch argument as declared in a launch file (default unexpanded)."""

    name: str
    default: str | None
    description: str = ""


@dataclass
class ExternalInclude:
    """An include of a Python or XML launch file, recorded (``resolve_external=False``), not run."""

    file: str
    """The file after substitution (``$(find-pkg-share PKG)`` of a missing package stays)."""
    arguments: dict[str, str] = field(default_factory=dict)
    origin: str = ""

    @property
    def package(self) -> str | None:
        """PKG of a ``$(find-pkg-share PKG)/...`` file left unexpanded, else None."""
        match = re.match(r"\$\(find-pkg-share ([^)\s]+)\)", self.file)
        return match.group(1) if match else None


@dataclass
class LaunchPlan:
    """What a launch file starts: nodes, and includes of non-YAML launch files."""

    nodes: list[NodeSpec]
    external_includes: list[ExternalInclude] = field(default_factory=list)


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}``; anything else is an error."""
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
            raise LaunchError(f"launch arguments are written name:=value, got '{item}'")
        result[name] = value
    return result


# ------------------------------------------------------------- substitutions


@dataclass
class _Scope:
    """What substitutions see: the current file and the variables set so far."""

    file: Path
    variables: dict[str, str]
    resolve_external: bool = True

    def child(self, file: Path | None = None) -> _Scope:
        """A copy whose variables do not leak back into this scope."""
        return _Scope(file or self.file, dict(self.variables), self.resolve_external)


def _arity(name: str, args: list[str], low: int, high: int) -> None:
    """Raise unless a substitution got between ``low`` and ``high`` arguments."""
    if not low <= len(args) <= high:
        wanted = str(low) if low == high else f"{low} or {high}"
        raise LaunchError(f"$({name} ...) takes {wanted} argument(s), got {len(args)}")


def _subst_var(args: list[str], scope: _Scope) -> str:
    """``$(var NAME)``: a launch argument or ``let`` variable."""
    _arity("var", args, 1, 1)
    if args[0] not in scope.variables:
        known = ", ".join(sorted(scope.variables)) or "none"
        raise LaunchError(f"$(var {args[0]}): undefined (declare it with 'arg' or 'let'; defined: {known})")
    return scope.variables[args[0]]


def _subst_env(args: list[str], scope: _Scope) -> str:
    """``$(env NAME [DEFAULT])``: an environment variable, which must be set unless DEFAULT is given."""
    _arity("env", args, 1, 2)
    value = os.environ.get(args[0], args[1] if len(args) == 2 else None)
    if value is None:
        raise LaunchError(f"$(env {args[0]}): environment variable '{args[0]}' is not set and has no default")
    return value


def _subst_find_pkg_share(args: list[str], scope: _Scope) -> str:
    """``$(find-pkg-share PKG)``: the package's share directory."""
    _arity("find-pkg-share", args, 1, 1)
    try:
        return str(find_package_share(args[0]))
    except LaunchError:
        if scope.resolve_external:
            raise
        return f"$(find-pkg-share {args[0]})"  # kept as written: the package is not installed here


def _subst_dirname(args: list[str], scope: _Scope) -> str:
    """``$(dirname)``: the folder of the current launch file."""
    _arity("dirname", args, 0, 0)
    return str(scope.file.parent)


_SUBSTITUTIONS: dict[str, Callable[[list[str], _Scope], str]] = {
    "var": _subst_var, "env": _subst_env, "find-pkg-share": _subst_find_pkg_share, "dirname": _subst_dirname,
}
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")


def expand(text: str, scope: _Scope) -> str:
    """``text`` with every ``$(NAME ARG...)`` evaluated (arguments are plain words)."""
    if "$(" in _SUBSTITUTION.sub("", text):
        raise LaunchError(f"unterminated or nested substitution in {text!r} "
                          "(write $(NAME ARG ...) with plain words as arguments)")

    def substitute(match: re.Match) -> str:
        name, *args = match.group(1).split() or [""]
        if name not in _SUBSTITUTIONS:
            supported = ", ".join(f"$({n})" for n in _SUBSTITUTIONS)
            raise LaunchError(f"unsupported substitution $({name}) in {text!r} (supported: {supported})")
        return _SUBSTITUTIONS[name](args, scope)

    return _SUBSTITUTION.sub(substitute, text)


def _flag(text: str, key: str) -> bool:
    """A boolean launch value (after substitution), as launch reads it."""
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise LaunchError(f"'{key}' must be true or false, got {text!r}")
    return value in ("true", "1")


def _seconds(text: str, key: str) -> float:
    """A duration in seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise LaunchError(f"'{key}' must be a finite number of seconds >= 0, got {text!r}")
    return value


# ----------------------------------------------------------- launch actions

_KEYS = {
    "arg": ({"name", "default", "description"}, {"name"}),
    "let": ({"name", "value"}, {"name", "value"}),
    "node": ({"pkg", "exec", "name", "namespace", "param", "remap", "args", "ros_args", "output", "respawn",
              "respawn_delay"}, {"pkg", "exec"}),
    "include": ({"file", "arg"}, {"file"}),
    "group": ({"children"}, {"children"}),
}
"""Per action: (allowed keys, required keys); ``if`` and ``unless`` are allowed everywhere."""


def _text(value: Any, what: str) -> str:
    """A YAML scalar as launch text (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise LaunchError(f"{what} must be a string or number, got {value!r}")


def _checked(body: Any, kind: str) -> dict:
    """``body`` of a ``kind`` action (or entry) as a mapping with only allowed and all required keys."""
    allowed, required = _KEYS[kind]
    if not isinstance(body, dict):
        raise LaunchError(f"'{kind}' must be a mapping, got {body!r}")
    unknown = sorted(map(str, set(body) - allowed - {"if", "unless"}))  # YAML keys need not be strings
    if unknown:
        raise LaunchError(f"unsupported key(s) {unknown} in '{kind}' "
                          f"(supported: {', '.join(sorted(allowed | {'if', 'unless'}))})")
    missing = sorted(required - set(body))
    if missing:
        raise LaunchError(f"'{kind}' needs key(s) {missing}")
    return body


def _entries(body: dict, key: str) -> list[dict]:
    """``body[key]``: a list of mappings (``param``, ``remap`` or include ``arg`` entries)."""
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LaunchError(f"'{key}' must be a list of mappings, got {value!r}")
    return value


def _condition_holds(body: Any, scope: _Scope) -> bool:
    """Evaluate the ``if`` / ``unless`` of an action (true when it has neither)."""
    if not isinstance(body, dict):
        return True
    if "if" in body and "unless" in body:
        raise LaunchError("give either 'if' or 'unless', not both")
    for key, wanted in (("if", True), ("unless", False)):
        if key in body:
            value = expand(_text(body[key], f"'{key}'"), scope).strip().lower()
            if value not in ("true", "false", "1", "0"):
                raise LaunchError(f"'{key}' must be true, false, 1 or 0 after substitution, got {value!r}")
            return (value in ("true", "1")) == wanted
    return True


def _typed_param(value: Any, scope: _Scope) -> ParamValue:
    """A ``param`` value: strings are substituted, then typed by YAML as launch_ros does."""
    if isinstance(value, str):
        text = expand(value, scope)
        try:
            typed = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return text if typed is None or isinstance(typed, dict) else typed
    if isinstance(value, list):
        return [_typed_param(item, scope) for item in value]
    return value


def _launch_file_kind(text: str) -> str:
    """``"YAML"``, ``"Python"``, ``"XML"`` or ``""`` (not known yet) from a file name."""
    name = text.strip()
    if name.endswith((".yaml", ".yml")):
        return "YAML"
    if name.endswith(".py"):
        return "Python"
    if name.endswith((".xml", ".launch")):
        return "XML"
    return ""


def _refuse_non_yaml(file: str) -> None:
    """Raise if ``file`` names a Python or XML launch file, which only real ``ros2 launch`` runs."""
    kind = _launch_file_kind(file)
    if kind in ("Python", "XML"):
        raise LaunchError(f"includes {file}, a {kind} launch file: jepa-pilot up reads only YAML "
                          "launch files, so this launch file needs real `ros2 launch`")


def _words(text: str, key: str) -> list[str]:
    """``args`` / ``ros_args`` split into words as a shell would."""
    try:
        return shlex.split(text)
    except ValueError as err:
        raise LaunchError(f"'{key}' cannot be split into words ({err}): {text!r}") from None


def _load_actions(path: Path) -> list:
    """The ``launch:`` action list of a YAML launch file."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LaunchError(f"launch file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise LaunchError(f"launch file {path} cannot be read as YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("launch"), list):
        raise LaunchError(f"launch file {path} must be a mapping with a 'launch:' list of actions")
    return data["launch"]


def _action(action: Any) -> tuple[str, Any, str]:
    """``(kind, body, description)`` of a one-key action such as ``{node: {...}}``."""
    if not isinstance(action, dict) or len(action) != 1:
        raise LaunchError(f"an action is a mapping with one key such as 'node:', got {action!r}")
    kind, body = next(iter(action.items()))
    kind = str(kind)
    named = next((body[k] for k in ("name", "exec", "file") if isinstance(body, dict)
                  and isinstance(body.get(k), str)), None)
    return kind, body, f"{kind} '{named}'" if named else kind


def declared_args(path: Path) -> list[ArgDecl]:
    """The ``arg`` actions at the top level of a launch file, defaults unexpanded."""
    result = []
    for index, action in enumerate(_load_actions(path), 1):
        try:
            kind, body, _ = _action(action)
            if kind == "arg":
                body = _checked(body, "arg")
                default = None if body.get("default") is None else _text(body["default"], "'default'")
                result.append(ArgDecl(str(body["name"]), default, str(body.get("description", ""))))
        except LaunchError as err:
            raise err.at(f"{path}: action {index}") from None
    return result


class _LaunchReader:
    """Walks a launch file (and what it includes) and collects the nodes it starts."""

    def __init__(self, resolve_external: bool) -> None:
        self.resolve_external = resolve_external
        self.plan = LaunchPlan([])
        self.declared: set[str] = set()
        self._stack: list[Path] = []
        # Each handler gets (body, scope, where the action is).
        self._handlers: dict[str, Callable[[dict, _Scope, str], None]] = {
            "arg": self._arg, "let": self._let, "node": self._node, "include": self._include, "group": self._group,
        }

    def read_file(self, path: Path, scope: _Scope) -> None:
        """Run the actions of the launch file ``path`` in ``scope``."""
        if "\0" in str(path):  # the OS layer would raise ValueError
            raise LaunchError(f"launch file path {str(path)!r} contains a NUL character")
        if path.resolve() in self._stack:
            cycle = " -> ".join(str(p) for p in [*self._stack, path.resolve()])
            raise LaunchError(f"include cycle: {cycle}", located=True)
        self._stack.append(path.resolve())
        try:
            self._run(_load_actions(path), scope, "")
        finally:
            self._stack.pop()

    def _run(self, actions: Any, scope: _Scope, trail: str) -> None:
        """Run a list of actions; errors are located as ``FILE: [group >] action N (kind 'name')``."""
        if not isinstance(actions, list):
            raise LaunchError(f"{scope.file}: {trail or 'launch'}: expected a list of actions", located=True)
        for index, action in enumerate(actions, 1):
            location = f"{trail}action {index}"
            try:
                kind, body, described = _action(action)
                location = f"{location} ({described})"
                if kind not in self._handlers:
                    raise LaunchError(f"unsupported action '{kind}'; jepa-pilot up reads {SUPPORTED} "
                                      "(use real `ros2 launch` for the rest)")
                body = _checked(body, kind)
                if _condition_holds(body, scope):
                    self._handlers[kind](body, scope, location)
            except LaunchError as err:
                raise err.at(f"{scope.file}: {location}") from None

    def _arg(self, body: dict, scope: _Scope, location: str) -> None:
        """``arg``: keep a value given from outside, else use the default, else fail."""
        name = str(body["name"])
        self.declared.add(name)
        if name in scope.variables:
            return
        if body.get("default") is None:
            hint = f" ({body['description']})" if body.get("description") else ""
            raise LaunchError(f"required launch argument '{name}'{hint} was not given; pass {name}:=VALUE")
        scope.variables[name] = expand(_text(body["default"], "'default'"), scope)

    def _let(self, body: dict, scope: _Scope, location: str) -> None:
        """``let``: set a variable in the current scope."""
        scope.variables[str(body["name"])] = expand(_text(body["value"], "'value'"), scope)

    def _node(self, body: dict, scope: _Scope, location: str) -> None:
        """``node``: one NodeSpec."""
        def text(key: str) -> str:
            return expand(_text(body[key], f"'{key}'"), scope) if key in body else ""

        namespace = text("namespace").strip("/")
        spec = NodeSpec(
            package=text("pkg"), executable=text("exec"), name=text("name") or None,
            namespace=f"/{namespace}" if namespace else "", output=text("output") or "screen",
            args=_words(text("args"), "args"), ros_args=_words(text("ros_args"), "ros_args"),
            origin=f"{scope.file}: {location}", respawn=_flag(text("respawn") or "false", "respawn"),
            respawn_delay=_seconds(text("respawn_delay") or "0", "respawn_delay"),
        )
        for entry in _entries(body, "param"):
            if set(entry) == {"from"}:
                spec.param_files.append(Path(expand(_text(entry["from"], "'from'"), scope)))
            elif set(entry) == {"name", "value"}:
                name = expand(_text(entry["name"], "'name'"), scope)
                spec.params[name] = _typed_param(entry["value"], scope)
                try:
                    check_param_value(spec.params[name])
                except LaunchError as err:
                    raise LaunchError(f"parameter '{name}': {err}") from None
            else:
                raise LaunchError(f"'param' entry {entry!r}: write {{from: FILE}} or {{name: N, value: V}}")
        for entry in _entries(body, "remap"):
            if set(entry) != {"from", "to"}:
                raise LaunchError(f"'remap' entry {entry!r}: write {{from: TOPIC, to: TOPIC}}")
            spec.remaps.append((expand(_text(entry["from"], "'from'"), scope),
                                expand(_text(entry["to"], "'to'"), scope)))
        self.plan.nodes.append(spec)

    def _include(self, body: dict, scope: _Scope, location: str) -> None:
        """``include``: run another YAML launch file with the given args in a child scope."""
        raw = _text(body["file"], "'file'")
        if self.resolve_external:
            _refuse_non_yaml(raw)  # before expanding: the other package may well be missing here
        file = expand(raw, scope)
        arguments = {}
        for entry in _entries(body, "arg"):
            if set(entry) != {"name", "value"}:
                raise LaunchError(f"include 'arg' entry {entry!r}: write {{name: N, value: V}}")
            arguments[str(entry["name"])] = expand(_text(entry["value"], "'value'"), scope)
        if _launch_file_kind(raw) in ("Python", "XML") or _launch_file_kind(file) in ("Python", "XML"):
            if self.resolve_external:
                _refuse_non_yaml(file)
            self.plan.external_includes.append(ExternalInclude(file, arguments, f"{scope.file}: {location}"))
            return
        path = Path(file) if Path(file).is_absolute() else scope.file.parent / file
        child = scope.child(file=path)
        child.variables.update(arguments)
        try:
            self.read_file(path, child)
        except LaunchError as err:
            if not err.located:
                raise
            raise LaunchError(f"{err}\n  included from {scope.file}: {location}", located=True) from None

    def _group(self, body: dict, scope: _Scope, location: str) -> None:
        """``group``: its children in a child scope."""
        self._run(body["children"], scope.child(), f"{location} > ")


def parse_launch_file(path: Path | str, arguments: Mapping[str, str] | None = None, *,
                      resolve_external: bool = True) -> list[NodeSpec]:
    """The nodes a YAML launch file starts, given ``name:=value`` launch arguments.

    Raises LaunchError, naming the file and action, for any problem: a missing
    required argument, an argument no launch file declares, an unsupported
    action, key or substitution, an undefined variable, a missing package, an
    include of a non-YAML launch file (see :func:`read_launch_file`).
    """
    return read_launch_file(path, arguments, resolve_external=resolve_external).nodes


def read_launch_file(path: Path | str, arguments: Mapping[str, str] | None = None, *,
                     resolve_external: bool = True) -> LaunchPlan:
    """The nodes a YAML launch file starts and the non-YAML launch files it includes.

    With ``resolve_external=True`` (what ``jepa-pilot up`` runs) an include of
    a Python or XML launch file and ``$(find-pkg-share PKG)`` of a missing
    package are errors; with False they are recorded as written.
    """
    path = Path(path).absolute()
    arguments = dict(arguments or {})
    reader = _LaunchReader(resolve_external)
    reader.read_file(path, _Scope(path, dict(arguments), resolve_external))
    unknown = sorted(set(arguments) - reader.declared)
    if unknown:
        declared = ", ".join(sorted(reader.declared)) or "none"
        raise LaunchError(f"{path}: unknown launch argument(s) {', '.join(unknown)} given on the command line "
                          f"(declared: {declared})")
    return reader.plan
