"""Config: runs recorded with retired keys (data.trim before issue 14, the one-tier review
priority before issue 13) still open, with today's meaning."""
from __future__ import annotations

import dataclasses

import pytest

from WeakSegLib.config import apply_overrides, get_profile, profile_from_dict


def test_a_run_with_the_retired_trim_key_still_opens() -> None:
    recorded = dataclasses.asdict(get_profile("fast"))
    del recorded["data"]["trim_fraction"], recorded["data"]["brain_mask"]
    recorded["data"]["trim"] = 30
    profile = profile_from_dict(recorded)
    assert profile.data.trim_fraction == 0.1 and profile.data.brain_mask == "auto"
    recorded["data"]["tirm"] = 3                       # a real typo is still an error
    with pytest.raises(ValueError, match="unknown keys"):
        profile_from_dict(recorded)


def test_brain_mask_and_trim_are_config_overrides() -> None:
    profile = apply_overrides(get_profile("fast"), ["data.brain_mask=on",
                                                    "data.trim_fraction=0.2"])
    assert profile.data.brain_mask == "on" and profile.data.trim_fraction == 0.2
    with pytest.raises(ValueError, match="no field 'trim'"):
        apply_overrides(get_profile("fast"), ["data.trim=30"])


def test_a_run_with_the_one_tier_review_priority_takes_todays_review_threshold() -> None:
    recorded = dataclasses.asdict(get_profile("fast"))
    del recorded["inference"]["review_flag_fraction"]
    recorded["inference"].update(review_extent_offset=0.5, review_threshold=0.21)
    inference = profile_from_dict(recorded).inference
    today = get_profile("fast").inference
    assert inference.review_threshold == today.review_threshold == 0.5
    assert inference.review_flag_fraction == today.review_flag_fraction
    recorded = dataclasses.asdict(get_profile("fast"))
    recorded["inference"]["review_threshold"] = 0.7      # a run of today keeps its own
    assert profile_from_dict(recorded).inference.review_threshold == 0.7
