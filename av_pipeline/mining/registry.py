"""The trigger registry: every trigger with its name, typed parameters and the docs a user reads.

A trigger is a plain function ``(log: MiningLog, params) -> list[Event]`` registered with
:func:`trigger`; its parameters are a frozen dataclass whose fields carry a ``doc`` in their
metadata (see :func:`param`). Campaigns (:mod:`av_pipeline.mining.campaign`) look triggers up
here, the campaign JSON schema is generated from the parameter types, and docs/mining.md lists
the same names and defaults.

>>> from av_pipeline.mining import registry
>>> spec = registry.get("missed_by_onboard")
>>> spec.name, "shadow" in spec.needs
('missed_by_onboard', True)
>>> spec.make_params({"min_score": 0.6}).min_score
0.6
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from av_pipeline.errors import ConfigError

#: What a trigger may need from a log; a log lacking one skips the trigger (and says so).
NEEDS = ("shadow", "onboard", "camera_boxes", "rig", "planned_path", "poses")


def param(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A documented trigger parameter (a dataclass field).

    Args:
        default: default value (tuples for lists).
        doc: one line for docs/mining.md and the campaign schema's ``description``.
        minimum, maximum: inclusive numeric bounds checked by the campaign schema.
        choices: allowed values for strings or for the items of a tuple of strings.
    """
    return dataclasses.field(default=default, metadata={"doc": doc, "minimum": minimum, "maximum": maximum, "choices": choices})


@dataclass(frozen=True)
class TriggerSpec:
    """A registered trigger.

    Attributes:
        name: registry name (used in campaigns, events and cases).
        function: ``(MiningLog, params) -> list[Event]``.
        params_type: the frozen dataclass of its parameters.
        needs: what the log must carry (subset of :data:`NEEDS`).
        family: the section it belongs to in the docs (``"shadow vs onboard"``, ``"temporal"``,
            ``"camera vs LiDAR"``, ``"active learning"``, ``"ego behaviour"``).
    """

    name: str
    function: Callable[..., list]
    params_type: type
    needs: frozenset[str]
    family: str

    @property
    def doc(self) -> str:
        """The trigger function's docstring (what it finds, how it scores)."""
        return inspect.getdoc(self.function) or ""

    @property
    def summary(self) -> str:
        """First line of :attr:`doc`."""
        return self.doc.splitlines()[0] if self.doc else ""

    def defaults(self) -> Any:
        """The parameters with every default."""
        return self.params_type()

    def make_params(self, overrides: Mapping[str, Any] | None = None, *, where: str = "") -> Any:
        """The parameters with ``overrides`` applied, type- and range-checked.

        Raises:
            ConfigError: an unknown key, a wrong type or a value out of range, naming the key.
        """
        where = where or f"triggers.{self.name}"
        fields = {f.name: f for f in dataclasses.fields(self.params_type)}
        values: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            if key not in fields:
                raise ConfigError(f"{where}.{key}: unknown parameter; expected one of {sorted(fields)}")
            values[key] = _coerce(value, fields[key], self.params_type, f"{where}.{key}")
        return self.params_type(**values)

    def param_docs(self) -> list[tuple[str, Any, str]]:
        """``(name, default, doc)`` per parameter."""
        return [(f.name, f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(self.params_type)]


def _field_type(field: dataclasses.Field, owner: type) -> Any:
    return typing.get_type_hints(owner)[field.name]


def _coerce(value: Any, field: dataclasses.Field, owner: type, where: str) -> Any:
    kind = _field_type(field, owner)
    meta = field.metadata
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
            raise ConfigError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        value = kind(value)
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise ConfigError(f"{where}: expected >= {meta['minimum']}, got {value}")
        if meta.get("maximum") is not None and value > meta["maximum"]:
            raise ConfigError(f"{where}: expected <= {meta['maximum']}, got {value}")
        return value
    if kind is str:
        if not isinstance(value, str) or (meta.get("choices") and value not in meta["choices"]):
            raise ConfigError(f"{where}: expected one of {list(meta.get('choices') or ['a string'])}, got {value!r}")
        return value
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        bad = [v for v in value if meta.get("choices") and v not in meta["choices"]]
        if bad:
            raise ConfigError(f"{where}: unknown values {bad}; expected some of {list(meta['choices'])}")
        return tuple(value)
    raise TypeError(f"{owner.__name__}.{field.name}: unsupported parameter type {kind}")  # pragma: no cover - programming error


def param_schema(params_type: type) -> dict[str, Any]:
    """JSON schema (draft 2020-12) of a parameter dataclass (used by the campaign schema)."""
    properties: dict[str, Any] = {}
    hints = typing.get_type_hints(params_type)
    for field in dataclasses.fields(params_type):
        kind, meta = hints[field.name], field.metadata
        if kind is bool:
            prop: dict[str, Any] = {"type": "boolean"}
        elif kind is int:
            prop = {"type": "integer"}
        elif kind is float:
            prop = {"type": "number"}
        elif kind is str:
            prop = {"type": "string"}
            if meta.get("choices"):
                prop["enum"] = list(meta["choices"])
        else:
            prop = {"type": "array", "items": {"type": "string"}}
            if meta.get("choices"):
                prop["items"]["enum"] = list(meta["choices"])
        for bound in ("minimum", "maximum"):
            if meta.get(bound) is not None and kind in (int, float):
                prop[bound] = meta[bound]
        default = field.default
        prop["default"] = list(default) if isinstance(default, tuple) else default
        prop["description"] = meta.get("doc", "")
        properties[field.name] = prop
    return {"type": "object", "properties": properties, "additionalProperties": False}


_REGISTRY: dict[str, TriggerSpec] = {}


def trigger(name: str, params_type: type, *, needs: tuple[str, ...], family: str) -> Callable[[Callable], Callable]:
    """Register a trigger function under ``name`` (decorator)."""
    unknown = set(needs) - set(NEEDS)
    if unknown:  # pragma: no cover - programming error
        raise ValueError(f"trigger {name}: unknown needs {sorted(unknown)}")

    def register(function: Callable) -> Callable:
        if name in _REGISTRY:  # pragma: no cover - programming error
            raise ValueError(f"trigger {name!r} registered twice")
        _REGISTRY[name] = TriggerSpec(name, function, params_type, frozenset(needs), family)
        return function

    return register


def _load() -> None:
    # the trigger modules register themselves on import
    from av_pipeline.mining.triggers import objects, temporal, camera, uncertain, ego  # noqa: F401, I001 - registration order is the docs order


def get(name: str) -> TriggerSpec:
    """The trigger registered as ``name``.

    Raises:
        ConfigError: no such trigger (the message lists the known ones).
    """
    _load()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown trigger {name!r}; known triggers: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def names() -> list[str]:
    """Registered trigger names, in registration order."""
    _load()
    return list(_REGISTRY)


def specs() -> list[TriggerSpec]:
    """All registered triggers, in registration order."""
    _load()
    return list(_REGISTRY.values())


__all__ = ["NEEDS", "TriggerSpec", "get", "names", "param", "param_schema", "specs", "trigger"]
