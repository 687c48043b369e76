"""Events to cases: windows, scoring, near-duplicates, key frames, budget and diversity."""

from __future__ import annotations

import pickle

import pytest

from av_pipeline.mining import Budget, CaseConfig
from av_pipeline.mining.cases import build_cases, select_cases
from av_pipeline.mining.records import Event, ObjectRef

T0, PERIOD = 1_000_000_000_000, 100_000_000


def event(trigger, first, last, score=0.8, track=1, label="car", log="log", peak=None, world=(0.0, 0.0, 0.0)):
    obj = ObjectRef("onboard", track, label, first, (10.0, 0.0, 0.0), world, score, 50)
    return Event(trigger, log, first, last, T0 + first * PERIOD, T0 + last * PERIOD, first if peak is None else peak, score, label, 10.0, (obj,), f"{trigger} on {track}")


def test_events_about_one_object_form_one_window_and_score_as_noisy_or():
    events = [
        event("ghost", 10, 12, 0.5, track=1, world=(0, 0, 0)),
        event("class_flip", 12, 14, 0.5, track=1, world=(0.5, 0, 0)),
        event("ghost", 40, 41, 0.9, track=3, world=(90, 0, 0)),
    ]
    cases = build_cases(events, CaseConfig(rarity=0.0))
    assert [(c.first_frame, c.last_frame) for c in cases] == [(40, 41), (10, 14)]
    assert cases[1].score == pytest.approx(1 - 0.5 * 0.5)
    assert cases[1].triggers == ("ghost", "class_flip") and cases[1].case_id == f"log@{T0 + 10 * PERIOD}"
    assert cases[1].reasons == ("ghost on 1", "class_flip on 1")


def test_simultaneous_events_about_different_objects_are_different_cases():
    events = [event("ghost", 10, 12, 0.5, track=1, world=(0, 0, 0)), event("class_flip", 12, 14, 0.5, track=2, world=(50, 0, 0))]
    cases = build_cases(events, CaseConfig(rarity=0.0))
    assert sorted((c.first_frame, c.last_frame) for c in cases) == [(10, 12), (12, 14)]
    assert all(c.score == pytest.approx(0.5) for c in cases)
    # two cases starting in the same frame keep distinct ids (outputs and scoring key on them)
    same_start = [event("ghost", 10, 12, 0.6, track=1, world=(0, 0, 0)), event("class_flip", 10, 11, 0.5, track=2, world=(50, 0, 0))]
    ids = sorted(c.case_id for c in build_cases(same_start, CaseConfig(rarity=0.0)))
    assert ids == [f"log@{T0 + 10 * PERIOD}", f"log@{T0 + 10 * PERIOD}-2"]


def test_window_length_is_capped_and_long_events_keep_their_length():
    chain = [event("ghost", k, k + 1, track=k, world=(10.0 * k, 0, 0)) for k in range(0, 60, 2)]
    cases = build_cases(chain, CaseConfig(max_window_s=1.0, rarity=0.0))
    assert max(c.last_frame - c.first_frame + 1 for c in cases) <= 10
    assert sum(len(c.events) for c in cases) == len(chain)
    (long_case,) = build_cases([event("planner_deviation", 0, 80)], CaseConfig(max_window_s=1.0))
    assert (long_case.first_frame, long_case.last_frame) == (0, 80)


def test_near_duplicates_same_track_or_same_place_are_merged():
    same_track = [event("ghost", 0, 2, track=7, world=(0, 0, 0)), event("track_jump", 8, 9, track=7, world=(30, 0, 0))]
    assert len(build_cases(same_track, CaseConfig(merge_gap_s=0.1, duplicate_gap_s=1.0))) == 1
    same_place = [event("ghost", 0, 2, track=7, world=(0, 0, 0)), event("ghost", 8, 9, track=8, world=(1.0, 0.5, 0))]
    assert len(build_cases(same_place, CaseConfig(merge_gap_s=0.1, duplicate_gap_s=1.0))) == 1
    elsewhere = [event("ghost", 0, 2, track=7, world=(0, 0, 0)), event("ghost", 8, 9, track=8, world=(20, 0, 0))]
    assert len(build_cases(elsewhere, CaseConfig(merge_gap_s=0.1, duplicate_gap_s=1.0))) == 2


def test_rarity_favours_rare_triggers():
    events = [event("track_flicker", 20 * k, 20 * k + 1, 0.8, track=k, world=(100.0 * k, 0, 0)) for k in range(9)] + [event("ghost", 300, 301, 0.8, track=99, world=(5000, 0, 0))]
    cases = build_cases(events, CaseConfig(rarity=0.5))
    assert cases[0].triggers == ("ghost",) and cases[0].score > cases[1].score


def test_key_frames_are_the_peaks_of_the_strongest_events():
    events = [event("ghost", 10, 14, 0.9, peak=12), event("class_flip", 11, 13, 0.5, track=2, peak=13)]
    (case,) = build_cases(events, CaseConfig(key_frames_per_case=2, rarity=0.0))
    assert case.key_frames == (12, 13)
    assert case.key_timestamps_ns == (T0 + 12 * PERIOD, T0 + 13 * PERIOD)


def test_budget_in_frames_cases_and_fraction():
    events = [event("ghost", 30 * k, 30 * k + 2, 0.5 + 0.01 * k, track=k, world=(100.0 * k, 0, 0)) for k in range(20)]
    cases = build_cases(events, CaseConfig(rarity=0.0))
    assert len(select_cases(cases, Budget(frames=5), CaseConfig(), 600)) == 5
    assert len(select_cases(cases, Budget(cases=3), CaseConfig(), 600)) == 3
    picked = select_cases(cases, Budget(frames_fraction=0.01), CaseConfig(), 600)
    assert len(picked) == 6 and [c.rank for c in picked] == list(range(6))
    assert select_cases(cases, Budget(frames=0), CaseConfig(), 600) == []
    # unlimited budget: everything above the score floor
    assert len(select_cases(cases, Budget(), CaseConfig(min_case_score=0.6), 600)) == 10


def test_diversity_interleaves_triggers():
    ghosts = [event("ghost", 30 * k, 30 * k + 2, 0.95, track=k, world=(100.0 * k, 0, 0)) for k in range(5)]
    flips = [event("class_flip", 30 * k + 1000, 30 * k + 1002, 0.9, track=100 + k, world=(100.0 * k, 500, 0)) for k in range(5)]
    cases = build_cases(ghosts + flips, CaseConfig(rarity=0.0))
    plain = select_cases(cases, Budget(cases=4), CaseConfig(diversity=1.0), 2000)
    diverse = select_cases(cases, Budget(cases=4), CaseConfig(diversity=0.8), 2000)
    assert [c.triggers[0] for c in plain] == ["ghost"] * 4
    assert [c.triggers[0] for c in diverse] == ["ghost", "class_flip", "ghost", "class_flip"]


def test_cases_of_several_logs_are_refused_and_records_pickle():
    with pytest.raises(ValueError, match="events of several logs"):
        build_cases([event("ghost", 0, 1, log="a"), event("ghost", 0, 1, log="b")], CaseConfig())
    (case,) = build_cases([event("ghost", 0, 1)], CaseConfig())
    assert pickle.loads(pickle.dumps(case)) == case
    assert case.to_dict()["events"][0]["objects"][0]["track_id"] == 1
