"""The Active-learning tab's settings as parameters: the one place where user, URL and lesson values become
settings.

The widgets, the URL (:class:`cfgp.dashboard.view_state.ViewSync`) and the lesson all go through
:meth:`ALController.set_values`: numbers are clamped to the tab's limits and unknown strategies refused, each with a
message, and a change is refused while a run is under way (the run would be lost). :meth:`ALController.settings`
hands the values to :class:`cfgp.al.ALSettings`, which checks them for the core.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import param

from cfgp.al import STRATEGIES, ALSettings
from cfgp.quoting import quoted

LIVE = "live run"
REPLAY_PREFIX = "replay "
#: bounds of the settings, checked on the server whatever the browser sends
LIMITS = {"seed": (0, 2**32 - 1), "batch_size": (1, 100), "cycles": (1, 6000)}  # 6,000: the paper's scale
LABELS = {"strategy": "strategy", "seed": "seed", "batch_size": "batch size", "cycles": "cycles"}
SETTINGS = tuple(LABELS)
#: the settings a tab starts with and falls back to (the strategy is the core's default)
DEFAULTS = {"strategy": ALSettings().strategy, "seed": 0, "batch_size": 1, "cycles": 300}
LOCKED = "Reset to change the settings."
LIVE_LOCK = f"The {{label}} cannot change during a run: {LOCKED}"
REPLAY_LOCK = f"A replay shows its own settings; choose “{LIVE}” to change the {{label}}."


def check_setting(key: str, value) -> tuple[int | str, str | None]:
    """(value to use, message or None): out-of-range numbers are clamped, unknown strategies refused."""
    if key == "strategy":
        try:
            ALSettings(strategy=value)  # the one check of a strategy name
        except (TypeError, ValueError):
            fallback = DEFAULTS["strategy"]
            return fallback, (f"{quoted(value)} is not a strategy (one of {', '.join(sorted(STRATEGIES))}); "
                              f"{fallback} is used.")
        return value, None
    lo, hi = LIMITS[key]
    if value is None or isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) \
            or not np.isfinite(value):
        return lo, f"{LABELS[key]} must be a whole number from {lo:,} to {hi:,}; “{value}” is not, so {lo} is used."
    if value != int(value):
        return int(value), f"{LABELS[key]} must be a whole number; {value} was cut to {int(value)}."
    v = int(value)
    if v < lo or v > hi:
        c = min(max(v, lo), hi)
        return c, f"{LABELS[key]} must be from {lo:,} to {hi:,}; {v:,} was changed to {c:,}."
    return v, None


class ALController(param.Parameterized):
    """The tab's settings and run choice. The view binds its widgets to these parameters; nothing else sets them
    except through :meth:`set_values` (checked) or :meth:`show_run_settings` (a replay's own, recorded settings)."""

    strategy = param.Selector(default=DEFAULTS["strategy"], objects=sorted(STRATEGIES), doc="acquisition strategy")
    seed = param.Integer(default=DEFAULTS["seed"], doc="seed of the pool subsample and of random picks")
    batch_size = param.Integer(default=DEFAULTS["batch_size"], doc="materials labelled per cycle")
    cycles = param.Integer(default=DEFAULTS["cycles"], doc="most cycles a live run takes")
    run = param.Selector(default=LIVE, objects=[LIVE], doc=f"“{LIVE}” or “{REPLAY_PREFIX}<committed run>”")
    replay_cycle = param.Integer(default=0, bounds=(0, None), doc="the cycle a replay shows")
    #: why a change is refused now ("" while the settings may change; ``{label}`` names the setting); set by the
    #: tab as runs start and stop (LIVE_LOCK, REPLAY_LOCK)
    settings_lock = param.String(default="", doc="message shown when a setting is refused")
    run_lock = param.String(default="", doc="message shown when a change of run is refused")

    def __init__(self, replays: Mapping[str, object] = (), **params):
        super().__init__(**params)
        self.param.run.objects = [LIVE] + [REPLAY_PREFIX + stem for stem in replays]

    @property
    def replay_stem(self) -> str | None:
        """The committed run chosen for replay, or None for a live run."""
        return self.run[len(REPLAY_PREFIX):] if self.run.startswith(REPLAY_PREFIX) else None

    def set_values(self, values: Mapping[str, object]) -> list[str]:
        """Set settings from user, URL or lesson values: clamped or refused with a message each (returned)."""
        messages, update = [], {}
        for key, value in values.items():
            if key not in SETTINGS:
                raise KeyError(key)
            if value == getattr(self, key):
                continue
            if self.settings_lock:
                messages.append(self.settings_lock.format(label=LABELS[key]))
                continue
            v, problem = check_setting(key, value)
            if problem:
                messages.append(problem)
            update[key] = v
        if update:
            self.param.update(**update)
        return messages

    def choose_run(self, run: str) -> str | None:
        """Choose a live run or a replay; a message if refused (a live run under way, or no such run)."""
        if run == self.run:
            return None
        if self.run_lock:
            return self.run_lock
        if run not in self.param.run.objects:
            return f"There is no committed run {str(run)[:60]!r}; a live run is shown."
        self.run = run
        return None

    def show_run_settings(self, settings: Mapping[str, object]) -> None:
        """A replay shows its own recorded settings (those that are valid for this tab), whatever the lock."""
        update = {}
        for key in SETTINGS:
            if key in settings:
                v, problem = check_setting(key, settings[key])
                if problem is None:
                    update[key] = v
        self.param.update(**update)

    def settings(self) -> ALSettings:
        """The settings of a live run (checked once more by the core's ALSettings)."""
        return ALSettings(strategy=self.strategy, cycles=self.cycles, batch_size=self.batch_size, seed=self.seed)
