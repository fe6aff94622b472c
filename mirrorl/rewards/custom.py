"""User-defined reward functions, plugged in by dotted path (``rl.reward_fn``).

The signature is the one TRL's reward functions have, so they carry over unchanged::

    def my_reward(prompts: list[str], completions: list[str], **columns) -> list[float]: ...

``columns`` holds one list per problem field: ``answer``, ``id``, ``level`` and ``kind``. The returned
floats replace the built-in verifier's 0/1 reward during RL (held-out accuracy still uses the verifier).
"""

from __future__ import annotations

import importlib
import math
from typing import Callable

from mirrorl.config import ConfigError
from mirrorl.tasks.problem import Problem


def load_reward_fn(path: str) -> Callable:
    """Import the reward function ``package.module:function`` (or ``package.module.function``).

    Raises: ConfigError naming `path` when the module cannot be imported or has no such callable.
    """
    return load_callable(path, "rl.reward_fn")


def load_callable(path: str, key: str) -> Callable:
    """Import ``package.module:function`` (or ``package.module.function``) named by the config key `key`.

    Raises: ConfigError naming `key` and `path` when the module cannot be imported or has no such callable.
    """
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{key}: {path!r} is not a dotted path like 'my_module:my_function'")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except ImportError as err:
        raise ConfigError(f"{key}: cannot import {module_name!r}: {err}") from None
    except AttributeError:
        raise ConfigError(f"{key}: module {module_name!r} has no {attr!r}") from None
    if not callable(fn):
        raise ConfigError(f"{key}: {path!r} is not callable")
    return fn


def custom_rewards(fn: Callable, problems: list[Problem], completions: list[str]) -> list[float]:
    """Call `fn` on a batch the TRL way and check what comes back.

    Raises: ValueError when `fn` returns something other than one finite number per completion.
    """
    rewards = fn(prompts=[p.prompt for p in problems], completions=completions,
                 answer=[p.answer for p in problems], id=[p.id for p in problems],
                 level=[p.level for p in problems], kind=[p.kind for p in problems])
    rewards = list(rewards) if rewards is not None else []
    if len(rewards) != len(completions):
        raise ValueError(f"rl.reward_fn returned {len(rewards)} rewards for {len(completions)} completions")
    if not all(isinstance(r, (int, float)) and math.isfinite(r) for r in rewards):
        raise ValueError(f"rl.reward_fn must return finite numbers, got {rewards[:5]!r}...")
    return [float(r) for r in rewards]
