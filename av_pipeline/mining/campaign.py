"""Mining campaigns: which triggers with which thresholds, which slices, how cases are formed,
and the labelling budget, in one YAML file checked against a JSON schema.

The schema (:func:`campaign_schema`) is generated from the trigger registry, so every
trigger's parameters are typed and ranged there; an error names the file and the key
(``triggers.ghost.max_points: expected an integer, got 'three'``). Shipped examples live in
``av_pipeline/data/campaigns/`` (:func:`bundled_campaign`). Format: docs/mining.md.

>>> campaign = Campaign.from_dict({"name": "demo", "triggers": {"ghost": {"max_points": 2}}, "budget": {"cases": 5}})
>>> campaign.trigger_params["ghost"].max_points, campaign.budget.cases
(2, 5)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from av_pipeline.errors import ConfigError
from av_pipeline.mining import registry
from av_pipeline.taxonomy import PRODUCT_CLASSES

_CAMPAIGN_DIR = Path(__file__).resolve().parent.parent / "data" / "campaigns"


@dataclass(frozen=True)
class SliceConfig:
    """Which events count.

    Attributes:
        classes: classes events may be about (ego events have no class and always count).
        range_bins_m: edges of the range bins used in reports; events beyond the last edge
            are dropped.
    """

    classes: tuple[str, ...] = tuple(PRODUCT_CLASSES)
    range_bins_m: tuple[float, ...] = (0.0, 20.0, 40.0, 70.0)


@dataclass(frozen=True)
class CaseConfig:
    """How events become cases (:mod:`av_pipeline.mining.cases`).

    Attributes:
        merge_gap_s: events less than this apart join one window.
        max_window_s: a window grows no longer than this (unless one event is longer).
        duplicate_gap_s: windows this close that share a track or a place are merged.
        duplicate_distance_m: "same place": object centres in ``world`` this close.
        key_frames_per_case: frames of a case that are labelled (count against the budget).
        min_case_score: cases scored below this are not selected.
        rarity: weight of trigger and class rarity in the score (0: none, 1: only rarity).
        diversity: each selected case with the same main trigger and class multiplies the
            next one's selection score by this (1: no diversity rule).
    """

    merge_gap_s: float = 0.3
    max_window_s: float = 2.0
    duplicate_gap_s: float = 1.0
    duplicate_distance_m: float = 2.0
    key_frames_per_case: int = 1
    min_case_score: float = 0.2
    rarity: float = 0.3
    diversity: float = 0.8


@dataclass(frozen=True)
class Budget:
    """Labelling budget: the first limit reached ends the selection (``None``: no limit).

    Attributes:
        frames: key frames to label.
        frames_fraction: key frames as a share of the frames mined.
        cases: cases.
    """

    frames: int | None = None
    frames_fraction: float | None = None
    cases: int | None = None

    def frame_limit(self, frames_mined: int) -> int | None:
        """The frame budget for ``frames_mined`` frames (the smaller of both frame limits)."""
        limits = [v for v in (self.frames, None if self.frames_fraction is None else int(self.frames_fraction * frames_mined)) if v is not None]
        return min(limits) if limits else None


@dataclass(frozen=True)
class Campaign:
    """A parsed, validated campaign.

    Attributes:
        name: campaign name (goes into outputs and reports).
        description: free text.
        trigger_params: trigger name -> its parameters (registry dataclass), in file order.
        slices, cases, budget: see their classes.
        source: the file it came from (``""`` for dicts).
    """

    name: str
    description: str = ""
    trigger_params: Mapping[str, Any] = field(default_factory=dict)
    slices: SliceConfig = field(default_factory=SliceConfig)
    cases: CaseConfig = field(default_factory=CaseConfig)
    budget: Budget = field(default_factory=Budget)
    source: str = ""

    @classmethod
    def from_dict(cls, document: Any, *, source: str = "") -> Campaign:
        """Validate and parse a campaign document (the YAML's content).

        Raises:
            ConfigError: naming ``source`` and the offending key.
        """
        where = source or "campaign"
        if not isinstance(document, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level, got {type(document).__name__}")
        triggers = document.get("triggers")
        if isinstance(triggers, dict):
            known = registry.names()
            for name in triggers:
                if name not in known:
                    raise ConfigError(f"{where}: triggers.{name}: unknown trigger; known triggers: {known}")
        errors = sorted(jsonschema.Draft202012Validator(campaign_schema()).iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
            raise ConfigError(f"{where}: {key}: {error.message}")
        params = {name: registry.get(name).make_params(values or {}, where=f"{where}: triggers.{name}") for name, values in triggers.items()}
        slices = document.get("slices", {})
        bins = tuple(float(v) for v in slices.get("range_bins_m", SliceConfig.range_bins_m))
        if any(b <= a for a, b in zip(bins, bins[1:])):
            raise ConfigError(f"{where}: slices.range_bins_m: expected increasing edges, got {list(bins)}")
        budget = Budget(**document.get("budget", {}))
        return cls(
            name=document["name"], description=document.get("description", ""), trigger_params=params,
            slices=SliceConfig(classes=tuple(slices.get("classes", SliceConfig.classes)), range_bins_m=bins),
            cases=CaseConfig(**document.get("cases", {})), budget=budget, source=source,
        )  # fmt: skip

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Campaign:
        """Load a campaign file (``yaml.safe_load``).

        Raises:
            ConfigError: unreadable file, YAML syntax error, or an invalid campaign (naming the key).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the campaign ({exc})") from exc
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(document, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with every parameter spelled out (written next to the cases)."""
        import dataclasses

        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
            return list(value) if isinstance(value, tuple) else value

        return {
            "name": self.name,
            "description": self.description,
            "triggers": {name: plain(p) for name, p in self.trigger_params.items()},
            "slices": plain(self.slices),
            "cases": plain(self.cases),
            "budget": plain(self.budget),
            "source": self.source,
        }


def campaign_schema() -> dict[str, Any]:
    """The campaign JSON schema (draft 2020-12), with one entry per registered trigger."""
    number = {"type": "number", "minimum": 0}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "av-pipeline mining campaign",
        "type": "object",
        "required": ["name", "triggers"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_.-]+$"},
            "description": {"type": "string"},
            "triggers": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    spec.name: {"anyOf": [{"type": "null"}, registry.param_schema(spec.params_type)], "description": spec.summary}
                    for spec in registry.specs()
                },
            },
            "slices": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "classes": {"type": "array", "minItems": 1, "items": {"enum": list(PRODUCT_CLASSES)}},
                    "range_bins_m": {"type": "array", "minItems": 2, "items": number},
                },
            },
            "cases": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "merge_gap_s": number,
                    "max_window_s": {"type": "number", "exclusiveMinimum": 0},
                    "duplicate_gap_s": number,
                    "duplicate_distance_m": number,
                    "key_frames_per_case": {"type": "integer", "minimum": 1},
                    "min_case_score": {"type": "number", "minimum": 0, "maximum": 1},
                    "rarity": {"type": "number", "minimum": 0, "maximum": 1},
                    "diversity": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                },
            },
            "budget": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "frames": {"type": "integer", "minimum": 0},
                    "frames_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                    "cases": {"type": "integer", "minimum": 0},
                },
            },
        },
    }


def bundled_campaign(name: str = "default") -> Campaign:
    """A shipped campaign by name (``default``, ``vru``, ``active_learning``).

    Raises:
        ConfigError: no such campaign (the message lists the shipped ones).
    """
    path = _CAMPAIGN_DIR / f"{name}.yaml"
    if not path.exists():
        shipped = sorted(p.stem for p in _CAMPAIGN_DIR.glob("*.yaml"))
        raise ConfigError(f"no shipped campaign {name!r}; shipped: {shipped}")
    return Campaign.from_yaml(path)


def load_campaign(name_or_path: str | os.PathLike) -> Campaign:
    """A campaign file path, or the name of a shipped campaign."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Campaign.from_yaml(path)
    return bundled_campaign(str(name_or_path))


__all__ = ["Budget", "Campaign", "CaseConfig", "SliceConfig", "bundled_campaign", "campaign_schema", "load_campaign"]
