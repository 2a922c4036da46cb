"""Read ROS 2 YAML launch files into the node commands they describe.

This is the engine behind ``jepa-pilot up``. The ROS 2 wheels on PyPI ship
neither ``launch`` nor ``ros2 launch``, so this module understands the part of
the YAML launch format a robotics package uses and starts the same nodes with
the same parameters as ``ros2 launch`` would. It never imports rclpy or launch:
it only builds command lines and spawns processes.

Supported, in a top-level ``launch:`` list:

* ``arg: {name, default?, description?}`` (``name:=value`` on the command line),
* ``let: {name, value}``,
* ``node: {pkg, exec, name?, namespace?, output?, param?, remap?, ros_args?, args?}``,
* ``include: {file, arg?: [{name, value}]}`` of another YAML launch file
  (a Python or XML launch file, such as ros_gz_sim's ``gz_sim.launch.py``, is
  an error here, or only recorded with ``resolve_external=False``),
* ``group: {scoped?, children}`` and ``push-ros-namespace: {namespace}``,
* ``if`` / ``unless`` on every action,
* substitutions ``$(var N)``, ``$(env N [DEFAULT])``, ``$(optenv N [DEFAULT])``,
  ``$(find-pkg-share PKG)`` and ``$(dirname)``.

With ``resolve_external=False`` (for checking launch files on a machine
without the other packages they use) ``$(find-pkg-share PKG)`` of a package
that is not installed stays as written, and includes of non-YAML launch files
are recorded as :class:`ExternalInclude` instead of read; nodes are never
resolved to executables while parsing.

Included files and scoped groups see the variables of their parent; what they
set does not leak back. A relative ``include`` path is taken relative to the
including file. Parameter values written as strings are typed by YAML after
substitution, as launch_ros does (``value: "0.5"`` becomes a float).
"""
from __future__ import annotations

import importlib
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import yaml

from jepa_pilot.common.paths import package_share

PACKAGE = "jepa_pilot"
"""The ROS package this checkout is; its nodes run as ``python -m`` modules."""

ParamValue = Union[bool, int, float, str, list]
"""A ROS parameter value: a scalar or a non-empty list of one scalar type."""

_SCALAR_TYPES = (bool, int, float, str)
_POLL_S = 0.05


class LaunchError(Exception):
    """A launch file, parameter file or node is unusable; the message says where and why."""

    def __init__(self, message: str, located: bool = False) -> None:
        super().__init__(message)
        self.located = located

    def at(self, where: str) -> LaunchError:
        """This error prefixed with ``where`` (once: an already located error is kept)."""
        if self.located:
            return self
        return LaunchError(f"{where}: {self}", located=True)


# --------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------


def _ament_prefixes() -> list[Path]:
    """The install prefixes listed in AMENT_PREFIX_PATH, in order."""
    return [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]


def _prefixes_text() -> str:
    """AMENT_PREFIX_PATH as shown in error messages."""
    return os.environ.get("AMENT_PREFIX_PATH") or "unset"


def find_package_share(package: str) -> Path:
    """``$(find-pkg-share package)`` (the source checkout is the fallback for jepa_pilot)."""
    try:
        return package_share(package)
    except FileNotFoundError as exc:
        raise LaunchError(str(exc)) from None


def find_executable(package: str, executable: str) -> Path:
    """``<prefix>/lib/<package>/<executable>`` of the first prefix that has it."""
    for prefix in _ament_prefixes():
        candidate = prefix / "lib" / package / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise LaunchError(
        f"executable '{executable}' of package '{package}' not found: no executable "
        f"lib/{package}/{executable} in any AMENT_PREFIX_PATH entry ({_prefixes_text()})"
    )


def _jepa_pilot_nodes() -> Mapping[str, Any]:
    """``jepa_pilot.nodes.NODES`` (executable name -> module), or empty if not there."""
    try:
        module = importlib.import_module(f"{PACKAGE}.nodes")
    except ImportError:
        return {}
    nodes = getattr(module, "NODES", {})
    return nodes if isinstance(nodes, Mapping) else {}


# --------------------------------------------------------------------------
# Parameter values and parameter files
# --------------------------------------------------------------------------

_PLAIN_STRING = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
# Words rcl (C strtod / its bool table) or YAML 1.1 would read as non-strings.
_TYPED_WORDS = {
    "y", "n", "yes", "no", "on", "off", "true", "false", "null",
    "nan", "inf", "infinity",
}


def _format_float(value: float) -> str:
    """A float that rcl and YAML 1.1 both read back as this float."""
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:  # 1e-05 -> 1.0e-05 (YAML 1.1 needs the dot)
        text = text.replace("e", ".0e", 1)
    return text


def _format_string(value: str) -> str:
    """A string, single-quoted when it would otherwise read as another type."""
    plain = (
        _PLAIN_STRING.fullmatch(value) is not None
        and value.lower() not in _TYPED_WORDS
        and yaml.safe_load(value) == value
    )
    return value if plain else "'" + value.replace("'", "''") + "'"


def _check_list(values: Sequence[Any]) -> None:
    """Raise unless ``values`` is a non-empty list of one scalar type (ROS arrays)."""
    if not values:
        raise LaunchError("an empty list has no ROS parameter type; give at least one item")
    first = type(values[0])
    if first not in _SCALAR_TYPES or any(type(v) is not first for v in values):
        raise LaunchError(
            f"list {list(values)!r} mixes types or holds non-scalars; a ROS array "
            "holds only bools, only ints, only floats or only strings (write 1.0, not 1)"
        )


def format_param_value(value: ParamValue) -> str:
    """``value`` as YAML text for ``-p name:=TEXT`` that ROS reads back with its type.

    Booleans become ``true``/``false``, floats always look like floats, strings
    that would read as something else (``'true'``, ``'0.5'``, ``''``) are
    single-quoted, and lists become ``[a, b]``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, str):
        return _format_string(value)
    if isinstance(value, (list, tuple)):
        _check_list(value)
        return "[" + ", ".join(format_param_value(v) for v in value) + "]"
    raise LaunchError(
        f"unsupported parameter value {value!r} ({type(value).__name__}); "
        "use a bool, int, float, string or a list of one of them"
    )


def _check_param_sections(sections: Mapping[Any, Any], path: Path, trail: str) -> None:
    """Check ``name: {ros__parameters: {...}}`` sections, allowing namespace nesting."""
    for key, body in sections.items():
        where = f"{trail}{key}"
        if not isinstance(body, dict) or not body:
            raise LaunchError(
                f"parameter file {path}: section '{where}' must be a mapping "
                f"'{key}: {{ros__parameters: {{...}}}}'"
            )
        if "ros__parameters" in body:
            if not isinstance(body["ros__parameters"], dict):
                raise LaunchError(
                    f"parameter file {path}: '{where}.ros__parameters' must be a mapping "
                    "of parameter names to values"
                )
            extra = sorted(str(k) for k in body if k != "ros__parameters")
            if extra:
                raise LaunchError(
                    f"parameter file {path}: section '{where}' has {extra} next to "
                    "'ros__parameters'; put parameters under 'ros__parameters'"
                )
        elif all(isinstance(v, dict) for v in body.values()):
            _check_param_sections(body, path, f"{where}/")
        else:
            raise LaunchError(
                f"parameter file {path}: section '{where}' has no 'ros__parameters' "
                f"(expected '{key}: {{ros__parameters: {{...}}}}')"
            )


def validate_param_file(path: Path) -> None:
    """Raise unless ``path`` is a ROS parameter file: ``node_or_/**: {ros__parameters: {...}}``."""
    if not path.is_file():
        raise LaunchError(f"parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise LaunchError(f"parameter file {path} cannot be read as YAML: {err}") from None
    if not isinstance(data, dict) or not data:
        raise LaunchError(
            f"parameter file {path} must be a mapping 'node_name: {{ros__parameters: "
            "{...}}' (or '/**:' for every node)"
        )
    _check_param_sections(data, path, "")


# --------------------------------------------------------------------------
# Node specs and their command lines
# --------------------------------------------------------------------------


@dataclass
class NodeSpec:
    """One node to start: what ``ros2 launch`` would run for a ``node`` action."""

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

    def _where(self) -> str:
        """How messages refer to this node."""
        return self.origin or f"node '{self.label}'"

    def program(self) -> list[str]:
        """The argv prefix that runs the executable.

        ``jepa_pilot`` nodes listed in ``jepa_pilot.nodes.NODES`` run as
        ``python -m <module>`` (``jepa_pilot.nodes.<exec>``) with this
        interpreter; anything else is ``<prefix>/lib/<pkg>/<exec>`` from
        AMENT_PREFIX_PATH.
        """
        if self.package == PACKAGE:
            module = _jepa_pilot_nodes().get(self.executable)
            if module is not None:
                return [sys.executable, "-m", str(module)]
        try:
            return [str(find_executable(self.package, self.executable))]
        except LaunchError as err:
            if self.package == PACKAGE:
                err = LaunchError(f"{err}, and '{self.executable}' is not in {PACKAGE}.nodes.NODES")
            raise err.at(self._where()) from None

    def ros_arguments(self) -> list[str]:
        """``--ros-args`` and what follows: name, namespace, parameters, remaps."""
        out: list[str] = []
        if self.name:
            out += ["-r", f"__node:={self.name}"]
        if self.namespace:
            out += ["-r", f"__ns:={self.namespace}"]
        for path in self.param_files:
            out += ["--params-file", str(path)]
        for key, value in self.params.items():
            out += ["-p", f"{key}:={format_param_value(value)}"]
        for source, target in self.remaps:
            out += ["-r", f"{source}:={target}"]
        out += self.ros_args
        return ["--ros-args", *out] if out else []

    def command(self) -> list[str]:
        """The full argv that starts this node."""
        return [*self.program(), *self.args, *self.ros_arguments()]

    def validate(self) -> None:
        """Raise a located LaunchError unless this node can start as described.

        Checks that the executable resolves, every parameter file exists and
        is shaped ``node_or_/**: {ros__parameters: {...}}``, and every inline
        parameter value has a ROS type.
        """
        try:
            for path in self.param_files:
                validate_param_file(path)
            for key, value in self.params.items():
                try:
                    format_param_value(value)
                except LaunchError as err:
                    raise LaunchError(f"parameter '{key}': {err}") from None
        except LaunchError as err:
            raise err.at(self._where()) from None
        self.program()


@dataclass
class ArgDecl:
    """A launch argument as declared in a launch file (defaults unexpanded)."""

    name: str
    default: str | None
    description: str = ""


@dataclass
class ExternalInclude:
    """An include of a launch file this reader cannot run (Python or XML), kept as written."""

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


def parse_launch_arguments(items: Sequence[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}``; anything else is an error."""
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
            raise LaunchError(f"launch arguments are written name:=value, got '{item}'")
        result[name] = value
    return result


# --------------------------------------------------------------------------
# Substitutions
# --------------------------------------------------------------------------


@dataclass
class _Scope:
    """What substitutions and actions see: the current file, variables, namespace."""

    file: Path
    variables: dict[str, str]
    namespace: str = ""
    resolve_external: bool = True
    """False: leave ``$(find-pkg-share PKG)`` of a missing package unexpanded."""

    def child(self, file: Path | None = None) -> _Scope:
        """A copy whose changes do not leak back into this scope."""
        return _Scope(file or self.file, dict(self.variables), self.namespace, self.resolve_external)


def _subst_var(args: list[str], scope: _Scope) -> str:
    """``$(var NAME)``: a launch argument or ``let`` variable."""
    _arity("var", args, 1, 1)
    if args[0] not in scope.variables:
        known = ", ".join(sorted(scope.variables)) or "none"
        raise LaunchError(f"$(var {args[0]}): undefined (declare it with 'arg' or 'let'; defined: {known})")
    return scope.variables[args[0]]


def _subst_env(args: list[str], scope: _Scope) -> str:
    """``$(env NAME [DEFAULT])``: an environment variable, which must exist without DEFAULT."""
    _arity("env", args, 1, 2)
    value = os.environ.get(args[0], args[1] if len(args) == 2 else None)
    if value is None:
        raise LaunchError(f"$(env {args[0]}): environment variable '{args[0]}' is not set and has no default")
    return value


def _subst_optenv(args: list[str], scope: _Scope) -> str:
    """``$(optenv NAME [DEFAULT])``: an environment variable, or DEFAULT, or ''."""
    _arity("optenv", args, 1, 2)
    return os.environ.get(args[0], args[1] if len(args) == 2 else "")


def _subst_find_pkg_share(args: list[str], scope: _Scope) -> str:
    """``$(find-pkg-share PKG)``: the package's share directory."""
    _arity("find-pkg-share", args, 1, 1)
    try:
        return str(find_package_share(args[0]))
    except LaunchError:
        if scope.resolve_external:
            raise
        return f"$(find-pkg-share {args[0]})"  # recorded as written: the package is not installed here


def _subst_dirname(args: list[str], scope: _Scope) -> str:
    """``$(dirname)``: the directory of the current launch file."""
    _arity("dirname", args, 0, 0)
    return str(scope.file.parent)


_SUBSTITUTIONS: dict[str, Callable[[list[str], _Scope], str]] = {
    "var": _subst_var,
    "env": _subst_env,
    "optenv": _subst_optenv,
    "find-pkg-share": _subst_find_pkg_share,
    "dirname": _subst_dirname,
}


_SUBSTITUTION_NAME = re.compile(r"[A-Za-z][\w-]*")


def _arity(name: str, args: list[str], low: int, high: int) -> None:
    """Raise unless a substitution got between ``low`` and ``high`` arguments."""
    if not low <= len(args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise LaunchError(f"$({name} ...) takes {wanted} argument(s), got {len(args)}")


def _expand_until(text: str, pos: int, scope: _Scope, in_argument: bool) -> tuple[str, int]:
    """Expand ``text`` from ``pos``; inside an argument stop at whitespace or ``)``."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if text.startswith("$(", pos):
            value, pos = _expand_substitution(text, pos + 2, scope)
            out.append(value)
        elif in_argument and (char.isspace() or char == ")"):
            break
        elif in_argument and char in "'\"":
            end = text.find(char, pos + 1)
            if end < 0:
                raise LaunchError(f"unterminated quote in {text!r}")
            out.append(expand(text[pos + 1:end], scope))
            pos = end + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos


def _expand_substitution(text: str, pos: int, scope: _Scope) -> tuple[str, int]:
    """Evaluate the substitution whose name starts at ``pos`` (after ``$(``)."""
    match = _SUBSTITUTION_NAME.match(text, pos)
    if match is None:
        raise LaunchError(f"malformed substitution in {text!r}: expected a name after '$('")
    name, pos = match.group(), match.end()
    args: list[str] = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            raise LaunchError(f"unterminated substitution '$({name} ...' in {text!r}")
        if text[pos] == ")":
            break
        arg, pos = _expand_until(text, pos, scope, in_argument=True)
        args.append(arg)
    handler = _SUBSTITUTIONS.get(name)
    if handler is None:
        supported = ", ".join(f"$({n})" for n in _SUBSTITUTIONS)
        raise LaunchError(f"unsupported substitution $({name}) in {text!r} (supported: {supported})")
    return handler(args, scope), pos + 1


def expand(text: str, scope: _Scope) -> str:
    """``text`` with every ``$(...)`` substitution evaluated in ``scope``."""
    return _expand_until(text, 0, scope, in_argument=False)[0]


# --------------------------------------------------------------------------
# Launch file parsing
# --------------------------------------------------------------------------

_ARG_KEYS = {"name", "default", "description"}
_LET_KEYS = {"name", "value"}
_NODE_KEYS = {"pkg", "exec", "name", "namespace", "output", "param", "remap", "ros_args", "args"}
_INCLUDE_KEYS = {"file", "arg"}
_GROUP_KEYS = {"scoped", "children"}
_PUSH_NS_KEYS = {"namespace"}
_CONDITION_KEYS = {"if", "unless"}


def _scalar_text(value: Any, what: str) -> str:
    """A YAML scalar as launch text (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise LaunchError(f"{what} must be a string or number, got {value!r}")


def _check_keys(body: Any, allowed: set[str], required: set[str], kind: str) -> dict:
    """``body`` as a mapping with only ``allowed`` keys and all ``required`` ones."""
    if not isinstance(body, dict):
        raise LaunchError(f"'{kind}' must be a mapping, got {body!r}")
    unknown = sorted(set(body) - allowed - _CONDITION_KEYS)
    if unknown:
        supported = ", ".join(sorted(allowed | _CONDITION_KEYS))
        raise LaunchError(f"unsupported key(s) {unknown} in '{kind}' (supported: {supported})")
    missing = sorted(required - set(body))
    if missing:
        raise LaunchError(f"'{kind}' needs key(s) {missing}")
    return body


def _condition_holds(body: Any, scope: _Scope) -> bool:
    """Evaluate the ``if`` / ``unless`` attributes of an action (true when absent)."""
    if not isinstance(body, dict):
        return True
    if "if" in body and "unless" in body:
        raise LaunchError("give either 'if' or 'unless', not both")
    for key, wanted in (("if", True), ("unless", False)):
        if key in body:
            text = expand(_scalar_text(body[key], f"'{key}'"), scope).strip().lower()
            if text not in ("true", "false", "1", "0"):
                raise LaunchError(f"'{key}' must be true, false, 1 or 0 after substitution, got {text!r}")
            return (text in ("true", "1")) == wanted
    return True


def _join_namespace(base: str, namespace: str) -> str:
    """``namespace`` under ``base`` (an absolute one replaces it), normalised to ``/a/b`` or ``''``."""
    combined = namespace if namespace.startswith("/") else f"{base}/{namespace}"
    parts = [p for p in combined.split("/") if p]
    return "/" + "/".join(parts) if parts else ""


def _typed_param(value: Any, scope: _Scope) -> ParamValue:
    """A ``param`` value: strings are substituted, then typed by YAML as launch_ros does."""
    if isinstance(value, str):
        text = expand(value, scope)
        try:
            typed = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        if typed is None:
            return text
        if not isinstance(typed, (*_SCALAR_TYPES, list)):
            raise LaunchError(f"parameter value {text!r} reads as a {type(typed).__name__}, not a ROS type")
        return typed
    if isinstance(value, _SCALAR_TYPES):
        return value
    if isinstance(value, list):
        return [_typed_param(item, scope) for item in value]
    raise LaunchError(
        f"parameter value {value!r} is not supported (nested parameter mappings are not; "
        "use dotted names like 'a.b')"
    )


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


def _action_kind(action: Any) -> tuple[str, Any]:
    """The ``(kind, body)`` of a one-key action mapping like ``{node: {...}}``."""
    if not isinstance(action, dict) or len(action) != 1:
        raise LaunchError(f"an action is a mapping with one key such as 'node:', got {action!r}")
    kind, body = next(iter(action.items()))
    return str(kind), body


def _describe(kind: str, body: Any) -> str:
    """``node 'planner'``, ``arg 'robot'``, ``include 'x.launch.yaml'``... for messages."""
    if isinstance(body, dict):
        for key in ("name", "exec", "file", "namespace"):
            if isinstance(body.get(key), str):
                return f"{kind} '{body[key]}'"
    return kind


def declared_args(path: Path) -> list[ArgDecl]:
    """The ``arg`` actions at the top level of a launch file, defaults unexpanded."""
    result = []
    for index, action in enumerate(_load_actions(path), 1):
        try:
            kind, body = _action_kind(action)
            if kind == "arg":
                body = _check_keys(body, _ARG_KEYS, {"name"}, "arg")
                default = body.get("default")
                result.append(ArgDecl(
                    name=str(body["name"]),
                    default=None if default is None else _scalar_text(default, "'default'"),
                    description=str(body.get("description", "")),
                ))
        except LaunchError as err:
            raise err.at(f"{path}: action {index}") from None
    return result


class _LaunchReader:
    """Walks a launch file tree and collects the nodes it starts."""

    def __init__(self, resolve_external: bool = True) -> None:
        self.resolve_external = resolve_external
        self.nodes: list[NodeSpec] = []
        self.external_includes: list[ExternalInclude] = []
        self.declared: dict[str, ArgDecl] = {}
        self._stack: list[Path] = []
        # Each handler gets (body, scope, location of the action in its file).
        self._handlers: dict[str, Callable[[Any, _Scope, str], None]] = {
            "arg": self._arg,
            "let": self._let,
            "node": self._node,
            "include": self._include,
            "group": self._group,
            "push-ros-namespace": self._push_namespace,
            "push_ros_namespace": self._push_namespace,
        }

    def read_file(self, path: Path, scope: _Scope) -> None:
        """Run the actions of ``path`` in ``scope``."""
        if path.resolve() in self._stack:
            cycle = " -> ".join(str(p) for p in [*self._stack, path.resolve()])
            raise LaunchError(f"include cycle: {cycle}", located=True)
        self._stack.append(path.resolve())
        try:
            self._run_actions(_load_actions(path), scope, "")
        finally:
            self._stack.pop()

    def _run_actions(self, actions: Any, scope: _Scope, trail: str) -> None:
        """Run a list of actions; errors are located at ``file: trail action N (kind)``."""
        if not isinstance(actions, list):
            raise LaunchError(f"{scope.file}: {trail or 'launch'}: expected a list of actions", located=True)
        for index, action in enumerate(actions, 1):
            location = f"{trail}action {index}"
            try:
                kind, body = _action_kind(action)
                location = f"{location} ({_describe(kind, body)})"
                handler = self._handlers.get(kind)
                if handler is None:
                    raise LaunchError(
                        f"unsupported action '{kind}' (supported: {', '.join(self._handlers)})"
                    )
                if _condition_holds(body, scope):
                    handler(body, scope, location)
            except LaunchError as err:
                raise err.at(f"{scope.file}: {location}") from None

    def _arg(self, body: Any, scope: _Scope, location: str) -> None:
        """``arg``: keep a value given from outside, else use the default, else fail."""
        body = _check_keys(body, _ARG_KEYS, {"name"}, "arg")
        name = str(body["name"])
        default = None if body.get("default") is None else _scalar_text(body["default"], "'default'")
        description = str(body.get("description", ""))
        self.declared.setdefault(name, ArgDecl(name, default, description))
        if name in scope.variables:
            return
        if default is None:
            hint = f" ({description})" if description else ""
            raise LaunchError(f"required launch argument '{name}'{hint} was not given; pass {name}:=VALUE")
        scope.variables[name] = expand(default, scope)

    def _let(self, body: Any, scope: _Scope, location: str) -> None:
        """``let``: set a variable in the current scope."""
        body = _check_keys(body, _LET_KEYS, _LET_KEYS, "let")
        scope.variables[str(body["name"])] = expand(_scalar_text(body["value"], "'value'"), scope)

    def _node(self, body: Any, scope: _Scope, location: str) -> None:
        """``node``: one NodeSpec."""
        body = _check_keys(body, _NODE_KEYS, {"pkg", "exec"}, "node")

        def text(key: str, default: str = "") -> str:
            return expand(_scalar_text(body[key], f"'{key}'"), scope) if key in body else default

        spec = NodeSpec(
            package=text("pkg"),
            executable=text("exec"),
            name=text("name") or None,
            namespace=_join_namespace(scope.namespace, text("namespace")),
            output=text("output", "screen"),
            ros_args=_split_words(text("ros_args"), "ros_args"),
            args=_split_words(text("args"), "args"),
            origin=f"{scope.file}: {location}",
        )
        for entry in _list_of_mappings(body.get("param", []), "param"):
            self._node_param(entry, spec, scope)
        for entry in _list_of_mappings(body.get("remap", []), "remap"):
            entry = _check_keys(entry, {"from", "to"}, {"from", "to"}, "remap")
            spec.remaps.append((
                expand(_scalar_text(entry["from"], "'from'"), scope),
                expand(_scalar_text(entry["to"], "'to'"), scope),
            ))
        self.nodes.append(spec)

    @staticmethod
    def _node_param(entry: dict, spec: NodeSpec, scope: _Scope) -> None:
        """One ``param`` entry: ``{from: FILE}`` or ``{name, value}``."""
        if "from" in entry:
            entry = _check_keys(entry, {"from"}, {"from"}, "param")
            spec.param_files.append(Path(expand(_scalar_text(entry["from"], "'from'"), scope)))
            return
        entry = _check_keys(entry, {"name", "value"}, {"name", "value"}, "param")
        name = expand(_scalar_text(entry["name"], "'name'"), scope)
        value = _typed_param(entry["value"], scope)
        try:
            format_param_value(value)
        except LaunchError as err:
            raise LaunchError(f"parameter '{name}': {err}") from None
        spec.params[name] = value

    def _include(self, body: Any, scope: _Scope, location: str) -> None:
        """``include``: run another launch file with the given args in a child scope."""
        body = _check_keys(body, _INCLUDE_KEYS, {"file"}, "include")
        raw = _scalar_text(body["file"], "'file'")
        kind = _launch_file_kind(raw)
        if kind not in (None, "YAML") and self.resolve_external:
            raise LaunchError(_NOT_YAML.format(file=raw, kind=kind))
        text = expand(raw, scope)
        kind = kind or _launch_file_kind(text)
        arguments = {}
        for entry in _list_of_mappings(body.get("arg", []), "arg"):
            entry = _check_keys(entry, {"name", "value"}, {"name", "value"}, "include arg")
            arguments[str(entry["name"])] = expand(_scalar_text(entry["value"], "'value'"), scope)
        if kind not in (None, "YAML"):
            if self.resolve_external:
                raise LaunchError(_NOT_YAML.format(file=text, kind=kind))
            self.external_includes.append(ExternalInclude(text, arguments, f"{scope.file}: {location}"))
            return
        path = Path(text)
        if not path.is_absolute():
            path = scope.file.parent / path
        child = scope.child(file=path)
        child.variables.update(arguments)
        try:
            self.read_file(path, child)
        except LaunchError as err:
            if err.located:
                raise LaunchError(f"{err}\n  included from {scope.file}: {location}", located=True) from None
            raise

    def _group(self, body: Any, scope: _Scope, location: str) -> None:
        """``group``: children in a child scope unless ``scoped: false``."""
        body = _check_keys(body, _GROUP_KEYS, {"children"}, "group")
        scoped = expand(_scalar_text(body.get("scoped", True), "'scoped'"), scope).strip().lower()
        if scoped not in ("true", "false", "1", "0"):
            raise LaunchError(f"'scoped' must be true or false, got {scoped!r}")
        inner = scope.child() if scoped in ("true", "1") else scope
        self._run_actions(body["children"], inner, f"{location} > ")

    def _push_namespace(self, body: Any, scope: _Scope, location: str) -> None:
        """``push-ros-namespace``: later nodes in this scope go under the namespace."""
        body = _check_keys(body, _PUSH_NS_KEYS, _PUSH_NS_KEYS, "push-ros-namespace")
        namespace = expand(_scalar_text(body["namespace"], "'namespace'"), scope)
        scope.namespace = _join_namespace(scope.namespace, namespace)


_NOT_YAML = (
    "includes {file}, a {kind} launch file: jepa-pilot up runs only YAML launch files "
    "and the nodes they name, so this launch file needs real `ros2 launch`"
)


def _launch_file_kind(text: str) -> str | None:
    """``"YAML"``, ``"Python"`` or ``"XML"`` by the file name's suffix; None if it is not known yet."""
    name = text.strip().rstrip("'\"")
    if name.endswith(")"):  # ends in a substitution: known only after expansion
        return None
    if name.endswith((".yaml", ".yml")):
        return "YAML"
    if name.endswith(".py"):
        return "Python"
    if name.endswith((".xml", ".launch")):
        return "XML"
    return None


def _split_words(text: str, key: str) -> list[str]:
    """A command-line string such as ``ros_args`` split into words, as a shell would."""
    try:
        return shlex.split(text)
    except ValueError as err:
        raise LaunchError(f"'{key}' cannot be split into words ({err}): {text!r}") from None


def _list_of_mappings(value: Any, key: str) -> list[dict]:
    """A ``param`` / ``remap`` / ``arg`` list, each entry a mapping."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise LaunchError(f"'{key}' must be a list of mappings, got {value!r}")
    return value


def parse_launch_file(path: Path | str, arguments: Mapping[str, str] | None = None, *,
                      resolve_external: bool = True) -> list[NodeSpec]:
    """The nodes a YAML launch file starts, given ``name:=value`` launch arguments.

    Raises LaunchError, naming the file and action, for any problem: a missing
    required argument, an argument no launch file declares, an unsupported
    action, key or substitution, an undefined variable, a missing package, an
    include of a non-YAML launch file (see :func:`read_launch_file` for
    ``resolve_external``).
    """
    return read_launch_file(path, arguments, resolve_external=resolve_external).nodes


def read_launch_file(path: Path | str, arguments: Mapping[str, str] | None = None, *,
                     resolve_external: bool = True) -> LaunchPlan:
    """The nodes a YAML launch file starts and the non-YAML launch files it includes.

    With ``resolve_external=True`` (what ``jepa-pilot up`` runs) an include of
    a Python or XML launch file and ``$(find-pkg-share PKG)`` of a missing
    package are errors. With ``resolve_external=False`` (checking a launch file
    meant for real ``ros2 launch``, e.g. one that starts Gazebo) they are
    recorded as written: the includes in ``external_includes``, the
    substitution unexpanded.
    """
    path = Path(path).absolute()
    arguments = dict(arguments or {})
    reader = _LaunchReader(resolve_external)
    reader.read_file(path, _Scope(path, dict(arguments), resolve_external=resolve_external))
    unknown = sorted(set(arguments) - set(reader.declared))
    if unknown:
        declared = ", ".join(sorted(reader.declared)) or "none"
        raise LaunchError(
            f"{path}: unknown launch argument(s) {', '.join(unknown)} given on the command line "
            f"(declared: {declared})"
        )
    return LaunchPlan(reader.nodes, reader.external_includes)
