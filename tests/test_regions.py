"""Region, workspace and endpoint resolution, case by case (MODEL_FAMILIES.md §2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync._wire.regions import is_legacy_host, resolve_endpoints
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

LEGACY = {
    "cn-beijing": "dashscope.aliyuncs.com",
    "ap-southeast-1": "dashscope-intl.aliyuncs.com",
    "cn-hongkong": "cn-hongkong.dashscope.aliyuncs.com",
    "us-east-1": "dashscope-intl.aliyuncs.com",
    "eu-central-1": "dashscope-intl.aliyuncs.com",
    "ap-northeast-1": "dashscope-intl.aliyuncs.com",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with no workspace or region in the environment."""
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)
    monkeypatch.delenv("DASHSCOPE_REGION", raising=False)
    yield


class TestRegions:
    """``ds.REGIONS`` and the region argument."""

    def test_six_regions(self) -> None:
        """REGIONS lists the six region ids of the official SDK, Beijing first."""
        assert tuple(LEGACY) == ds.REGIONS
        assert ds.DEFAULT_REGION == "cn-beijing"

    def test_default_region(self) -> None:
        """With no region anywhere the client is in cn-beijing on the legacy host."""
        client = ds.Client("k")
        assert client.region == "cn-beijing"
        assert client.workspace is None
        assert client.realtime_url == ds.DEFAULT_REALTIME_URL
        assert client.http_base_url == ds.DEFAULT_HTTP_BASE_URL

    @pytest.mark.parametrize(("region", "host"), list(LEGACY.items()))
    def test_legacy_host_per_region(self, region: str, host: str) -> None:
        """Without a workspace each region resolves to its legacy host (three fall back to intl)."""
        client = ds.Client("k", region=region)
        assert client.realtime_url == f"wss://{host}/api-ws/v1/realtime"
        assert client.http_base_url == f"https://{host}/api/v1"

    def test_singapore_matches_intl_constants(self) -> None:
        """ap-southeast-1 without a workspace is exactly the DEFAULT_*_INTL constants."""
        client = ds.Client("k", region="ap-southeast-1")
        assert client.realtime_url == ds.DEFAULT_REALTIME_URL_INTL
        assert client.http_base_url == ds.DEFAULT_HTTP_BASE_URL_INTL

    @pytest.mark.parametrize("region", ["cn-shanghai", "CN-BEIJING", "", "intl", " cn-beijing"])
    def test_unknown_region(self, region: str) -> None:
        """Any region outside REGIONS is a ConfigError that lists the valid ones."""
        with pytest.raises(ds.ConfigError, match="ap-southeast-1"):
            ds.Client("k", region=region)

    def test_region_not_a_string(self) -> None:
        """A non-string region is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="region"):
            ds.Client("k", region=1)  # type: ignore[arg-type]

    def test_region_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """DASHSCOPE_REGION picks the region when none is given."""
        monkeypatch.setenv("DASHSCOPE_REGION", "ap-southeast-1")
        client = ds.Client("k")
        assert client.region == "ap-southeast-1"
        assert client.realtime_url == ds.DEFAULT_REALTIME_URL_INTL

    def test_region_argument_beats_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An explicit region wins over DASHSCOPE_REGION."""
        monkeypatch.setenv("DASHSCOPE_REGION", "ap-southeast-1")
        assert ds.Client("k", region="cn-hongkong").region == "cn-hongkong"

    def test_bad_region_in_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad DASHSCOPE_REGION is a ConfigError naming the variable."""
        monkeypatch.setenv("DASHSCOPE_REGION", "mars-1")
        with pytest.raises(ds.ConfigError, match="DASHSCOPE_REGION"):
            ds.Client("k")

    def test_empty_region_env_is_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty DASHSCOPE_REGION counts as not set."""
        monkeypatch.setenv("DASHSCOPE_REGION", "")
        assert ds.Client("k").region == "cn-beijing"


class TestWorkspace:
    """The workspace argument, DASHSCOPE_WORKSPACE and the workspace host."""

    @pytest.mark.parametrize("region", list(LEGACY))
    def test_workspace_host_per_region(self, region: str) -> None:
        """With a workspace every region uses {ws}.{region}.maas.aliyuncs.com, WS and HTTP."""
        client = ds.Client("k", workspace="ws1", region=region)
        host = f"ws1.{region}.maas.aliyuncs.com"
        assert client.realtime_url == f"wss://{host}/api-ws/v1/realtime"
        assert client.http_base_url == f"https://{host}/api/v1"
        assert client.request_headers()["X-DashScope-WorkSpace"] == "ws1"

    def test_workspace_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """DASHSCOPE_WORKSPACE picks the workspace host and the header."""
        monkeypatch.setenv("DASHSCOPE_WORKSPACE", "llm-abc_1")
        monkeypatch.setenv("DASHSCOPE_REGION", "ap-southeast-1")
        client = ds.Client("k")
        assert client.workspace == "llm-abc_1"
        assert client.realtime_url == (
            "wss://llm-abc_1.ap-southeast-1.maas.aliyuncs.com/api-ws/v1/realtime"
        )
        assert client.request_headers()["X-DashScope-WorkSpace"] == "llm-abc_1"

    def test_workspace_argument_beats_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An explicit workspace wins over DASHSCOPE_WORKSPACE."""
        monkeypatch.setenv("DASHSCOPE_WORKSPACE", "fromenv")
        client = ds.Client("k", workspace="fromarg")
        assert client.workspace == "fromarg"
        assert client.realtime_url.startswith("wss://fromarg.cn-beijing.")

    def test_empty_workspace_env_is_unset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty DASHSCOPE_WORKSPACE counts as not set: the legacy host."""
        monkeypatch.setenv("DASHSCOPE_WORKSPACE", "  ")
        client = ds.Client("k")
        assert client.workspace is None
        assert client.realtime_url == ds.DEFAULT_REALTIME_URL

    @pytest.mark.parametrize(
        "workspace",
        ["0", "a", "A-b_c-9", "x" * 64],
    )
    def test_valid_workspace_ids(self, workspace: str) -> None:
        """Letters, digits, '_' and '-', starting alphanumeric, up to 64 characters, are ids."""
        assert ds.Client("k", workspace=workspace).workspace == workspace

    @pytest.mark.parametrize(
        "workspace",
        [
            "",
            "-ws",
            "_ws",
            "x" * 65,
            "ws.evil.example.com",
            "evil.com/",
            "ws@evil.com",
            "ws:443",
            "ws#",
            "ws\r\nX-Other: 1",
            "my ws",
            "wś",
        ],
    )
    def test_invalid_workspace_ids(self, workspace: str) -> None:
        """Anything that could change the host name is a ConfigError before any use."""
        with pytest.raises(ds.ConfigError, match="workspace"):
            ds.Client("k", workspace=workspace)

    def test_invalid_workspace_in_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A malformed DASHSCOPE_WORKSPACE is a ConfigError naming the variable."""
        monkeypatch.setenv("DASHSCOPE_WORKSPACE", "evil.example.com#")
        with pytest.raises(ds.ConfigError, match="DASHSCOPE_WORKSPACE"):
            ds.Client("k")

    def test_workspace_not_a_string(self) -> None:
        """A non-string workspace is a ConfigError."""
        with pytest.raises(ds.ConfigError, match="workspace"):
            ds.Client("k", workspace=42)  # type: ignore[arg-type]


class TestBaseUrl:
    """An explicit base_url and the HTTP base derived from it."""

    def test_base_url_wins_over_workspace(self) -> None:
        """An explicit base_url is used as given even with a workspace (the header still goes)."""
        client = ds.Client("k", workspace="ws1", base_url="wss://gw.example.com/rt")
        assert client.realtime_url == "wss://gw.example.com/rt"
        assert client.base_url == client.realtime_url
        assert client.request_headers()["X-DashScope-WorkSpace"] == "ws1"

    def test_default_constants_still_work(self) -> None:
        """Passing the DEFAULT_REALTIME_URL* constants keeps working as before."""
        beijing = ds.Client("k", base_url=ds.DEFAULT_REALTIME_URL)
        intl = ds.Client("k", base_url=ds.DEFAULT_REALTIME_URL_INTL)
        assert beijing.http_base_url == ds.DEFAULT_HTTP_BASE_URL
        assert intl.http_base_url == ds.DEFAULT_HTTP_BASE_URL_INTL

    @pytest.mark.parametrize(
        ("base_url", "http"),
        [
            ("wss://gw.example.com/api-ws/v1/realtime", "https://gw.example.com/api/v1"),
            ("ws://127.0.0.1:8765/api-ws/v1/realtime", "http://127.0.0.1:8765/api/v1"),
            ("ws://[::1]:9000/x?y=1", "http://[::1]:9000/api/v1"),
            ("wss://user:pw@gw.example.com:8443/rt", "https://gw.example.com:8443/api/v1"),
        ],
    )
    def test_http_base_derived_from_base_url_host(self, base_url: str, http: str) -> None:
        """For any other base_url the HTTP base is that URL's own host (ws->http, wss->https), /api/v1."""
        assert ds.Client("k", base_url=base_url).http_base_url == http

    def test_http_base_url_argument_wins(self) -> None:
        """An explicit http_base_url beats every derivation."""
        client = ds.Client(
            "k", workspace="ws1", base_url="ws://127.0.0.1:1/", http_base_url="https://h.example/"
        )
        assert client.http_base_url == "https://h.example/api/v1"

    @pytest.mark.parametrize(
        ("given", "shown"),
        [
            (
                "https://h.example",
                "https://h.example/api/v1",
            ),  # a bare host, as earlier versions showed
            ("https://h.example/api/v1", "https://h.example/api/v1"),
            ("https://h.example/api/v1/", "https://h.example/api/v1"),
            ("https://h.example/gw", "https://h.example/gw/api/v1"),
            ("https://h.example/gw/api/v1", "https://h.example/gw/api/v1"),
        ],
    )
    def test_http_base_url_ends_in_the_api_path(self, given: str, shown: str) -> None:
        """A given http_base_url gets /api/v1 appended when missing, never twice."""
        assert ds.Client("k", http_base_url=given).http_base_url == shown

    @pytest.mark.parametrize("url", ["https://h.example/?a=1", "https://h.example/api/v1#x"])
    def test_http_base_url_with_a_query_is_refused(self, url: str) -> None:
        """An http_base_url with a query or fragment is a ConfigError: paths would land in it."""
        with pytest.raises(ds.ConfigError, match="query or fragment"):
            ds.Client("k", http_base_url=url)

    def test_resolution_is_pure(self) -> None:
        """resolve_endpoints reads only the mapping it is given as the environment."""
        endpoints = resolve_endpoints(
            workspace=None,
            region=None,
            base_url=None,
            http_base_url=None,
            environ={"DASHSCOPE_WORKSPACE": "w", "DASHSCOPE_REGION": "cn-hongkong"},
        )
        assert endpoints.realtime_url == "wss://w.cn-hongkong.maas.aliyuncs.com/api-ws/v1/realtime"
        assert endpoints.region == "cn-hongkong"

    def test_is_legacy_host(self) -> None:
        """Only the shared DashScope hosts count as legacy hosts."""
        assert is_legacy_host(ds.DEFAULT_REALTIME_URL)
        assert is_legacy_host("wss://DASHSCOPE-INTL.aliyuncs.com/api-ws/v1/realtime")
        assert not is_legacy_host("wss://w.cn-beijing.maas.aliyuncs.com/api-ws/v1/realtime")
        assert not is_legacy_host("ws://127.0.0.1:1/")


def test_tokens_go_to_the_local_server(server: LocalRealtimeServer) -> None:
    """A client built for the local server asks that server, not DashScope, for temporary keys."""
    with ds.Client(server.api_key, base_url=server.url) as client:
        assert client.http_base_url == server.http_base_url
        key = client.tokens.create(expire_in_seconds=60)
    assert key.token


@pytest.mark.both_modes
def test_connect_uses_resolved_url(server: LocalRealtimeServer) -> None:
    """connect() opens the resolved realtime URL with the model in the query."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
        assert session.id
    assert server.connections[-1].model == ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
