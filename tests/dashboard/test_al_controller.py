"""The Active-learning tab's settings as parameters (no browser, no run): one check for widgets, URL and lesson,
clamping with a message, refusals while a run is under way, a replay's own settings."""

import pytest

from cfgp.al import ALSettings
from cfgp.dashboard.al_controller import (DEFAULTS, LIVE, LIVE_LOCK, REPLAY_LOCK, REPLAY_PREFIX, ALController,
                                          check_setting)


def test_check_setting_clamps_and_refuses():
    assert check_setting("batch_size", 10) == (10, None)
    v, msg = check_setting("batch_size", 1000)
    assert v == 100 and "batch size must be from 1 to 100" in msg
    v, msg = check_setting("cycles", 0)
    assert v == 1 and "cycles" in msg
    v, msg = check_setting("seed", -5)
    assert v == 0 and "seed" in msg
    v, msg = check_setting("seed", None)
    assert v == 0 and "whole number" in msg
    v, msg = check_setting("seed", 2.5)
    assert v == 2 and "cut to 2" in msg
    v, msg = check_setting("strategy", "nonsense")
    assert v == ALSettings().strategy == DEFAULTS["strategy"] and "“nonsense” is not a strategy" in msg


def test_values_are_clamped_once_and_reach_alsettings():
    c = ALController()
    assert c.settings() == ALSettings(strategy=DEFAULTS["strategy"], cycles=DEFAULTS["cycles"],
                                      batch_size=DEFAULTS["batch_size"], seed=DEFAULTS["seed"])
    messages = c.set_values({"batch_size": 1000, "seed": 7, "strategy": "random"})
    assert messages == ["batch size must be from 1 to 100; 1,000 was changed to 100."]
    assert (c.batch_size, c.seed, c.strategy) == (100, 7, "random")
    s = c.settings()
    assert (s.batch_size, s.seed, s.strategy) == (100, 7, "random")
    assert c.set_values({"strategy": "magic"})[0].startswith("“magic” is not a strategy")
    assert c.strategy == DEFAULTS["strategy"]
    with pytest.raises(KeyError):
        c.set_values({"colour": 1})


def test_a_lock_refuses_changes_and_keeps_the_values():
    c = ALController({"entropy-b1-s0": None})
    seen = []
    c.param.watch(lambda e: seen.append(e.name), ["seed", "run"])
    c.settings_lock = LIVE_LOCK
    c.run_lock = "A live run is under way: Reset to change the settings."
    assert c.set_values({"seed": 9}) == ["The seed cannot change during a run: Reset to change the settings."]
    assert c.set_values({"seed": 0}) == []  # the value it has: nothing to refuse
    assert c.choose_run(REPLAY_PREFIX + "entropy-b1-s0") == c.run_lock
    assert c.seed == 0 and c.run == LIVE and seen == []
    c.settings_lock = c.run_lock = ""
    assert c.choose_run(REPLAY_PREFIX + "entropy-b1-s0") is None and c.replay_stem == "entropy-b1-s0"
    assert "no committed run" in c.choose_run(REPLAY_PREFIX + "missing")
    assert seen == ["run"]


def test_a_replay_shows_its_own_valid_settings_whatever_the_lock():
    c = ALController()
    c.settings_lock = REPLAY_LOCK
    assert c.set_values({"batch_size": 3}) == ["A replay shows its own settings; choose “live run” to change the "
                                               "batch size."]
    c.show_run_settings({"strategy": "batch-diverse", "seed": 3, "batch_size": 10, "cycles": 400,
                         "pool_size": 7195})
    assert (c.strategy, c.seed, c.batch_size, c.cycles) == ("batch-diverse", 3, 10, 400)
    c.show_run_settings({"batch_size": 10_000, "strategy": "gone"})  # not valid here: left as they are
    assert (c.strategy, c.batch_size) == ("batch-diverse", 10)
