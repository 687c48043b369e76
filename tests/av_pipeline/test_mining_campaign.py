"""Campaign files: the shipped ones load, the schema is a valid JSON schema, bad files are refused naming the key."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from av_pipeline.errors import ConfigError
from av_pipeline.mining import Campaign, bundled_campaign, load_campaign, registry
from av_pipeline.mining.campaign import _CAMPAIGN_DIR, campaign_schema


@pytest.mark.parametrize("name", sorted(p.stem for p in _CAMPAIGN_DIR.glob("*.yaml")))
def test_shipped_campaigns_load_and_validate(name):
    campaign = bundled_campaign(name)
    assert campaign.name == name and campaign.trigger_params
    jsonschema.validate(yaml.safe_load((_CAMPAIGN_DIR / f"{name}.yaml").read_text()), campaign_schema())
    assert set(campaign.trigger_params) <= set(registry.names())


def test_at_least_default_and_vru_campaigns_ship():
    assert {"default", "vru"} <= {p.stem for p in _CAMPAIGN_DIR.glob("*.yaml")}
    assert set(bundled_campaign("vru").slices.classes) == {"pedestrian", "cyclist"}


def test_schema_is_valid_draft_2020_12_and_lists_every_trigger():
    schema = campaign_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]["triggers"]["properties"]) == set(registry.names())


def test_parameters_and_defaults():
    campaign = Campaign.from_dict({"name": "x", "triggers": {"ghost": {"max_points": 1}, "track_flicker": None}, "budget": {"frames": 7}})
    assert campaign.trigger_params["ghost"].max_points == 1
    assert campaign.trigger_params["track_flicker"] == registry.get("track_flicker").defaults()
    assert campaign.budget.frame_limit(1000) == 7
    assert Campaign.from_dict({"name": "x", "triggers": {"ghost": {}}, "budget": {"frames_fraction": 0.1, "frames": 50}}).budget.frame_limit(200) == 20


@pytest.mark.parametrize(
    "document, message",
    [
        ({"name": "x", "triggers": {"ghosts": {}}}, r"triggers\.ghosts: unknown trigger; known triggers: \[.*'ghost'"),
        ({"name": "x", "triggers": {"ghost": {"max_points": "three"}}}, r"triggers\.ghost.*max_points"),
        ({"name": "x", "triggers": {"ghost": {"max_pointz": 3}}}, r"triggers\.ghost"),
        ({"name": "x", "triggers": {"ghost": {}}, "budget": {"frames": -5}}, r"budget\.frames: -5 is less than the minimum of 0"),
        ({"name": "x", "triggers": {"ghost": {}}, "budget": {"frames_fraction": 1.5}}, r"budget\.frames_fraction"),
        ({"name": "x", "triggers": {"missed_by_onboard": {"min_score": 2}}}, r"triggers\.missed_by_onboard.*min_score"),
        ({"name": "x", "triggers": {"missed_by_onboard": {"classes": ["car", "spaceship"]}}}, r"triggers\.missed_by_onboard.*classes"),
        ({"name": "x", "triggers": {}}, r"triggers: .*(non-empty|fewer than 1|should be non-empty)"),
        ({"triggers": {"ghost": {}}}, r"\(top level\): 'name' is a required property"),
        ({"name": "x", "triggers": {"ghost": {}}, "slices": {"range_bins_m": [0, 40, 20]}}, r"slices\.range_bins_m: expected increasing"),
        ({"name": "x", "triggers": {"ghost": {}}, "cases": {"key_frames_per_case": 0}}, r"cases\.key_frames_per_case"),
        (["not", "a", "mapping"], r"expected a mapping"),
    ],
)
def test_bad_campaigns_are_refused_naming_the_key(document, message):
    with pytest.raises(ConfigError, match=message):
        Campaign.from_dict(document, source="c.yaml")


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntriggers: {ghost: [\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_campaign(path)
    with pytest.raises(ConfigError, match="cannot read the campaign"):
        load_campaign(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"no shipped campaign 'nope'; shipped: \[.*'default'"):
        load_campaign("nope")


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hi']\ntriggers: {ghost: {}}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaign(path)


def test_to_dict_spells_out_every_parameter():
    d = bundled_campaign().to_dict()
    assert d["triggers"]["ghost"]["max_points"] == 3 and d["budget"]["frames_fraction"] == pytest.approx(0.1)
