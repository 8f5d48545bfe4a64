"""Regions, workspaces and the one place the endpoints are resolved.

Pure functions, no I/O: `resolve_endpoints` turns what the user gave (and
the environment) into the realtime WebSocket URL and the HTTP API base URL,
once, when a `Client` is built.

Resolution order for the realtime URL (MODEL_FAMILIES.md §2.4, as the
official SDK 2.0.2 does it):

1. an explicit ``base_url``;
2. with a workspace: ``wss://{workspace}.{region}.maas.aliyuncs.com/api-ws/v1/realtime``;
3. else the region's legacy host.

The HTTP base follows the same order (the workspace host or the region's
legacy host, over https, with the API's ``/api/v1`` path). For any other
``base_url`` (a gateway, the local server) it is derived from that URL's own
scheme, host and port, so that ``tokens.create()`` never sends the key to a
host the user did not choose. An HTTP base given without the ``/api/v1``
path (a bare host, the form earlier versions showed) gets it appended, so
every URL that worked before still reaches the same endpoints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigError

__all__ = [
    "API_PATH",
    "DEFAULT_REGION",
    "REGIONS",
    "REGION_ENV",
    "WORKSPACE_ENV",
    "Endpoints",
    "check_region",
    "check_workspace",
    "is_legacy_host",
    "resolve_endpoints",
]

#: The environment variable the workspace id is read from when none is given.
WORKSPACE_ENV: Final = "DASHSCOPE_WORKSPACE"
#: The environment variable the region is read from when none is given.
REGION_ENV: Final = "DASHSCOPE_REGION"
#: The region used when none is given or set in the environment.
DEFAULT_REGION: Final = "cn-beijing"

#: Region id -> legacy (shared, workspace-less) host, as the official SDK 2.0.2
#: lists them. Three regions have no legacy host of their own and fall back to
#: the international one.
_LEGACY_HOSTS: Final[Mapping[str, str]] = {
    "cn-beijing": "dashscope.aliyuncs.com",
    "ap-southeast-1": "dashscope-intl.aliyuncs.com",
    "cn-hongkong": "cn-hongkong.dashscope.aliyuncs.com",
    "us-east-1": "dashscope-intl.aliyuncs.com",
    "eu-central-1": "dashscope-intl.aliyuncs.com",
    "ap-northeast-1": "dashscope-intl.aliyuncs.com",
}

#: The six region ids the service knows (``Client(region=...)``).
REGIONS: Final[tuple[str, ...]] = tuple(_LEGACY_HOSTS)

_REALTIME_PATH: Final = "/api-ws/v1/realtime"
#: The path of DashScope's HTTP API under a host; ``http_base_url`` ends in it.
API_PATH: Final = "/api/v1"

# As the official SDK's 1.x client checks it (env.py:validate_workspace_id): the
# id becomes part of a host name, so nothing else may get through.
_WORKSPACE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class Endpoints:
    """Where a client connects: the resolved URLs and what they came from."""

    __slots__ = ("http_base_url", "realtime_url", "region", "workspace")

    def __init__(
        self, realtime_url: str, http_base_url: str, region: str, workspace: str | None
    ) -> None:
        self.realtime_url = realtime_url
        self.http_base_url = http_base_url
        self.region = region
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"<Endpoints {self.realtime_url} {self.http_base_url}>"


def check_region(region: object) -> str:
    """Return ``region`` if it is one of `REGIONS`, else raise `ConfigError`."""
    if not isinstance(region, str) or region not in _LEGACY_HOSTS:
        raise ConfigError(f"region must be one of {', '.join(REGIONS)}; got {region!r}")
    return region


def check_workspace(workspace: object) -> str:
    """Return a valid workspace id, else raise `ConfigError`.

    Letters, digits, ``_`` and ``-``, starting with a letter or digit, at most
    64 characters: the id becomes part of a host name, so no value can point
    the key at another host.
    """
    if not isinstance(workspace, str) or not _WORKSPACE_ID.fullmatch(workspace):
        shown = repr(workspace) if isinstance(workspace, str) and len(workspace) <= 80 else None
        raise ConfigError(
            "workspace must be a workspace id: letters, digits, '_' and '-', starting with "
            "a letter or digit, at most 64 characters"
            + (f"; got {shown}" if shown else f"; got a {type(workspace).__name__}")
        )
    return workspace


def is_legacy_host(url: str) -> bool:
    """Is ``url`` on one of the shared, workspace-less DashScope hosts?"""
    return (urlsplit(url).hostname or "").lower() in _LEGACY_HOSTS.values()


def _derived_http_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    # netloc keeps the port (and brackets of an IPv6 host); userinfo is dropped.
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((scheme, netloc, API_PATH, "", ""))


def _api_base(url: str) -> str:
    """``url`` ending in the API path: appended when missing, never doubled.

    Raises:
        ConfigError: The URL has a query or a fragment, which paths appended
            to it would land inside.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigError(f"http_base_url must not have a query or fragment, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urlunsplit(parts._replace(path=path))


def resolve_endpoints(
    *,
    workspace: str | None,
    region: str | None,
    base_url: str | None,
    http_base_url: str | None,
    environ: Mapping[str, str] | None = None,
) -> Endpoints:
    """Resolve the realtime and HTTP endpoints once; see the module docstring.

    ``workspace`` defaults to ``DASHSCOPE_WORKSPACE``, ``region`` to
    ``DASHSCOPE_REGION``, then `DEFAULT_REGION`. ``base_url`` must already be
    checked as a ws/wss URL, ``http_base_url`` as an http/https URL.

    Raises:
        ConfigError: An unknown region or a malformed workspace id (from an
            argument or from the environment; the message says which).
    """
    env = os.environ if environ is None else environ
    if workspace is None:
        workspace = env.get(WORKSPACE_ENV, "").strip() or None
        if workspace is not None:
            try:
                check_workspace(workspace)
            except ConfigError as exc:
                raise ConfigError(f"{WORKSPACE_ENV}: {exc}") from None
    else:
        check_workspace(workspace)
    if region is None:
        region = env.get(REGION_ENV, "").strip() or DEFAULT_REGION
        try:
            check_region(region)
        except ConfigError as exc:
            raise ConfigError(f"{REGION_ENV}: {exc}") from None
    else:
        check_region(region)
    if base_url is not None:
        realtime_url = base_url
        derived = _derived_http_base(base_url)
    else:
        if workspace is not None:
            host = f"{workspace}.{region}.maas.aliyuncs.com"
        else:
            host = _LEGACY_HOSTS[region]
        realtime_url = f"wss://{host}{_REALTIME_PATH}"
        derived = f"https://{host}{API_PATH}"
    return Endpoints(
        realtime_url,
        derived if http_base_url is None else _api_base(http_base_url),
        region,
        workspace,
    )
