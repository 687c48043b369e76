"""Shadow-mode edge-case mining: where the shadow model (the pre-labeller) disagrees with the
vehicle's perception, with the camera, with itself over time, and with what the driver did.

- :func:`mining_frame`: a frame's evidence (point counts for shadow and onboard boxes);
- :func:`mine_log`: a campaign's triggers over one log, and its candidate :class:`Case` s;
- :func:`select`: cases of all logs under the campaign's budget;
- :class:`Campaign` (YAML, schema-checked), :func:`load_campaign`, :func:`bundled_campaign`;
- :mod:`~av_pipeline.mining.registry`: the triggers and their parameters;
- :func:`match_frame`: shadow/onboard assignment with nuScenes-style errors;
- :func:`score_cases`: cases against a synthetic log's planted anomalies.

Command line: ``avp mine``; Beam: :mod:`beam_jobs.mine`; guide: docs/mining.md.
"""

from __future__ import annotations

from av_pipeline.mining.answer_key import MiningScore, score_cases
from av_pipeline.mining.api import LogMining, count_supported_points, mine_log, mining_frame, select
from av_pipeline.mining.campaign import Budget, Campaign, CaseConfig, SliceConfig, bundled_campaign, load_campaign
from av_pipeline.mining.matching import FrameMatch, MatchConfig, match_frame
from av_pipeline.mining.records import Case, Event, MiningFrame, ObjectRef

__all__ = [
    "Budget",
    "Campaign",
    "Case",
    "CaseConfig",
    "Event",
    "FrameMatch",
    "LogMining",
    "MatchConfig",
    "MiningFrame",
    "MiningScore",
    "ObjectRef",
    "SliceConfig",
    "bundled_campaign",
    "count_supported_points",
    "load_campaign",
    "match_frame",
    "mine_log",
    "mining_frame",
    "score_cases",
    "select",
]
