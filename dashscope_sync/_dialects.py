"""Each family's wire dialect: what the session sends, shaped per `ModelFamily`.

Pure functions over the configuration records, no I/O. The family facts
themselves live in `_families`; this module applies them to `RealtimeConfig`.
"""

from __future__ import annotations

from ._config import RealtimeConfig
from ._errors import ConfigError
from ._families import ModelFamily, family_of, needs_workspace
from ._regions import WORKSPACE_ENV, is_legacy_host

__all__ = ["check_host", "family_for"]


def family_for(config: RealtimeConfig) -> ModelFamily:
    """The family a session speaks: ``config.family`` if forced, else from the model name."""
    return config.family if config.family is not None else family_of(config.model)


def check_host(config: RealtimeConfig, realtime_url: str) -> None:
    """Refuse, before any network traffic, a family that needs the workspace host on a legacy host.

    Raises:
        ConfigError: Says which family, and to set a workspace.
    """
    family = family_for(config)
    if needs_workspace(family) and is_legacy_host(realtime_url):
        raise ConfigError(
            f"{config.model} ({family!r}) is served only on the workspace host, not on the "
            f"shared host {realtime_url}: pass Client(workspace=...) or set {WORKSPACE_ENV} "
            "(and the region the workspace is in, region=... or DASHSCOPE_REGION)"
        )
