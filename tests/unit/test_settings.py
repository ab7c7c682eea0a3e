from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bloop.platform import services
from bloop.platform.content.search.index import TantivyIndex
from bloop.platform.kit.settings import (
    RuntimeSettings,
    Settings,
    SettingsError,
    names,
    unknown_names,
)


def test_defaults_run_embedded_with_no_configuration() -> None:
    s = Settings()
    assert s.runtime.store == "embedded"
    assert s.mode("kafka") == "embedded"
    assert s.http.port == 8000


def test_one_store_can_be_switched_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_REDIS_ADAPTER", "real")
    s = Settings()
    assert s.mode("redis") == "real"
    assert s.mode("mongo") == "embedded"


@pytest.mark.parametrize(("var", "value"), [
    ("BLOOP_HTTP_PORT", "eighty"),
    ("BLOOP_HTTP_PORT", "70000"),
    ("BLOOP_STORE", "cloud"),
    ("BLOOP_KAFKA_MAX_ATTEMPTS", "0"),
    ("BLOOP_LOG_JSON", "perhaps"),
    ("BLOOP_OIDC_STATE_TTL_S", "1"),
    ("BLOOP_AI_OPENAI_BASE_URL", "ftp://models.example"),
    ("BLOOP_AI_CONTENT_URL", "http://content\x1f.internal"),
    ("BLOOP_AUTH_JWKS_URL", "https://keys example/jwks.json"),
    ("BLOOP_INFLUX_URL", "http://:8086"),
    ("BLOOP_DATA_DIR", ""),
    ("BLOOP_DATA_DIR", "  "),
    ("BLOOP_HTTP_CORS_ORIGINS", "https://app.example/lessons"),
    ("BLOOP_HTTP_CORS_ORIGINS", "https://app.example,app.example"),
    # uvicorn took these for names no peer has, and trusted no proxy without a word.
    ("BLOOP_HTTP_FORWARDED_ALLOW_IPS", "ingress.internal"),
    ("BLOOP_HTTP_FORWARDED_ALLOW_IPS", "10.0.0.1/8"),
    ("BLOOP_HTTP_FORWARDED_ALLOW_IPS", "10.0.0.0/33"),
    ("BLOOP_HTTP_FORWARDED_ALLOW_IPS", "*,10.0.0.0/8"),  # uvicorn's `*` only stands alone
    ("BLOOP_AI_LINK_SECRET", ""),  # a template's empty value: links broken between processes
    ("BLOOP_AI_LINK_SECRET", "short"),
    # The stores' clients, built once the process starts, refused these with a traceback.
    ("BLOOP_REDIS_URL", "notaurl"),
    ("BLOOP_REDIS_URL", "http://127.0.0.1:6379"),
    ("BLOOP_REDIS_URL", "redis://localhost:notaport"),
    ("BLOOP_NEO4J_URL", "bolt://localhost:99999"),
    ("BLOOP_NEO4J_URL", "notaurl"),
    ("BLOOP_NEO4J_URL", "bolt://"),
    ("BLOOP_MONGO_URL", "127.0.0.1:27017"),
    ("BLOOP_KAFKA_BOOTSTRAP", "kafka"),
    ("BLOOP_KAFKA_BOOTSTRAP", "127.0.0.1:9092,:9093"),
    ("BLOOP_KAFKA_SESSION_TIMEOUT_MS", "1000"),  # under the brokers' least: never joins
    ("BLOOP_KAFKA_HEARTBEAT_INTERVAL_MS", "0"),
    ("BLOOP_KAFKA_HEARTBEAT_INTERVAL_MS", "4000"),  # a third of the session or more
])
def test_an_invalid_setting_names_itself(monkeypatch: pytest.MonkeyPatch, var: str,
                                         value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        Settings()
    message = str(err.value)
    assert message.startswith(f"invalid setting {var}"), message  # was BLOOP_LOG_BLOOP_LOG_JSON
    assert "\n" not in message


def test_a_kafka_heartbeat_is_checked_against_the_session(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_KAFKA_SESSION_TIMEOUT_MS", "6000")
    with pytest.raises(SettingsError) as err:
        Settings()  # the heartbeat's default, 3 s, is half of it
    assert str(err.value) == (
        "invalid setting BLOOP_KAFKA_HEARTBEAT_INTERVAL_MS=3000: Value error, must be below a "
        "third of BLOOP_KAFKA_SESSION_TIMEOUT_MS (6000): under 2000")
    monkeypatch.setenv("BLOOP_KAFKA_HEARTBEAT_INTERVAL_MS", "1999")
    kafka = Settings().kafka
    assert (kafka.session_timeout_ms, kafka.heartbeat_interval_ms) == (6000, 1999)


@pytest.mark.parametrize(("var", "value"), [
    ("BLOOP_REDIS_URL", "rediss://:pass@cache.internal:6380/1"),
    ("BLOOP_REDIS_URL", "unix:///run/redis.sock"),
    ("BLOOP_NEO4J_URL", "neo4j+s://graph.example"),
    ("BLOOP_NEO4J_URL", "bolt+ssc://127.0.0.1:7687"),
    ("BLOOP_MONGO_URL", "mongodb+srv://bloop:pass@cluster.example/bloop"),
    ("BLOOP_MONGO_URL", "mongodb://a.internal:27017,b.internal:27017/?replicaSet=rs"),
    ("BLOOP_KAFKA_BOOTSTRAP", "kafka-0:9092, kafka-1:9092,[::1]:9093"),
])
def test_a_store_server_address_its_client_takes_is_accepted(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    Settings()


@pytest.mark.parametrize(("value", "proxies"), [
    (None, ["127.0.0.1", "::1"]),  # uvicorn's default
    ("10.0.0.0/8, 192.168.0.0/16,::1, fc00::/7", ["10.0.0.0/8", "192.168.0.0/16", "::1",
                                                  "fc00::/7"]),
    ("*", ["*"]),
    ("", []),
])
def test_the_proxies_whose_forwarded_addresses_are_believed(
        monkeypatch: pytest.MonkeyPatch, value: str | None, proxies: list[str]) -> None:
    if value is not None:
        monkeypatch.setenv("BLOOP_HTTP_FORWARDED_ALLOW_IPS", value)
    assert Settings().http.forwarded_allow_ips == proxies


@pytest.mark.parametrize(("var", "value"), [
    ("BLOOP_AI_LINK_SECRET", "short-secret"),
    ("BLOOP_MEDIA_LINK_SECRET", "short-secret"),
    ("BLOOP_REDIS_URL", "http://bloop:short-secret@cache.internal"),
])
def test_an_invalid_setting_does_not_show_a_secret(monkeypatch: pytest.MonkeyPatch, var: str,
                                                   value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        read_all_settings()
    assert str(err.value).startswith(f"invalid setting {var}"), err.value
    assert "short-secret" not in str(err.value)


def test_serve_refuses_to_start_on_an_invalid_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bloop.cli", "serve"], capture_output=True, text=True,
        env={"BLOOP_HTTP_PORT": "eighty", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bloop: invalid setting BLOOP_HTTP_PORT=")


@pytest.mark.parametrize(("var", "value"), [
    ("BLOOP_MEDIA_IMAGE_MAX_BYTES", "ten"),
    ("BLOOP_UPLOAD_MAX_FILES", "0"),
    ("BLOOP_SEARCH_WRITER_HEAP_MB", "1"),
    ("BLOOP_SEARCH_DIRECTORY", ""),
    ("BLOOP_TTS_PROVIDER", "nope"),
    ("BLOOP_TTS_AZURE_ENDPOINT", "https://speech example"),
    ("BLOOP_MEDIA_LINK_SECRET", ""),
])
def test_a_services_own_invalid_setting_names_itself(monkeypatch: pytest.MonkeyPatch, var: str,
                                                     value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        services.check_settings(services.select(None))
    assert var in str(err.value)
    assert "\n" not in str(err.value)


def read_all_settings() -> None:
    Settings()
    services.check_settings(services.select(None))


async def test_a_directory_setting_refuses_a_file_or_a_directory_of_other_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x")
    for var, value, says in [
        ("BLOOP_DATA_DIR", a_file, "names a file, not a directory"),
        ("BLOOP_SEARCH_DIRECTORY", a_file, "names a file, not a directory"),
        ("BLOOP_SEARCH_DIRECTORY", notes, "holds files but no search index"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(var, str(value))
            with pytest.raises(SettingsError) as err:
                read_all_settings()
        assert str(err.value).startswith(f"invalid setting {var}={str(value)!r}: "), err.value
        assert says in str(err.value)

    index_dir, empty = tmp_path / "index", tmp_path / "empty"
    empty.mkdir()
    await TantivyIndex(index_dir).close()
    for value in (index_dir, empty, tmp_path / "new" / "search"):
        monkeypatch.setenv("BLOOP_SEARCH_DIRECTORY", str(value))
        read_all_settings()
    assert (notes / "todo.txt").read_text() == "x"


def test_a_service_not_run_is_not_held_to_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOOP_MEDIA_IMAGE_MAX_BYTES", "ten")
    services.check_settings(services.select(["identity", "learning"]))


def test_serve_refuses_to_start_on_a_services_invalid_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bloop.cli", "serve", "content"], capture_output=True, text=True,
        env={"BLOOP_MEDIA_IMAGE_MAX_BYTES": "ten", "BLOOP_DATA_DIR": str(tmp_path / "data"),
             "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "bloop: invalid setting BLOOP_MEDIA_IMAGE_MAX_BYTES='ten': Input should be a valid "
        "integer, unable to parse string as an integer"], result.stderr


def bloop(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bloop.cli", *args], capture_output=True, text=True,
        env={"BLOOP_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
             "HOME": str(tmp_path), **env}, timeout=60, check=False)


async def test_commands_refuse_what_they_cannot_start_on_in_one_line(tmp_path: Path) -> None:
    """A port out of range was taken (70000 listened on 4464, 0 fell back to the setting), a
    data dir that cannot be made and a search index held by a running server ended in
    tracebacks."""
    for port in ("70000", "0"):
        result = bloop(tmp_path, "serve", "--port", port)
        assert result.returncode == 2
        assert "--port" in result.stderr
    result = bloop(tmp_path, "tenant", "list", BLOOP_DATA_DIR="/proc/no-such-dir/data")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bloop: the data dir /proc/no-such-dir/data (BLOOP_DATA_DIR) cannot be made: "
        "No such file or directory"], result.stderr
    held = TantivyIndex(tmp_path / "data" / "search")
    try:
        result = bloop(tmp_path, "worker", "content")
    finally:
        await held.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"bloop: another process serves content from {tmp_path / 'data' / 'search'} (its "
        "search index takes one process); give this one its own BLOOP_SEARCH_DIRECTORY, or "
        "run it without content"], result.stderr


async def test_seed_runs_beside_a_server_holding_the_search_index(tmp_path: Path) -> None:
    """It was refused as a second process on the index, which seeding does not need: the
    server's search consumer indexes what it seeds."""
    held = TantivyIndex(tmp_path / "data" / "search")
    try:
        result = bloop(tmp_path, "seed")
    finally:
        await held.close()
    assert (result.returncode, result.stdout) == (0, "demo tenant ready\n"), result.stderr
    listed = bloop(tmp_path, "tenant", "list")
    assert listed.stdout.splitlines() == ["demo\tBloop Demo School"], listed.stderr


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_data_dir_that_cannot_be_used_stops_start_up_in_one_line(tmp_path: Path) -> None:
    """A data dir that exists but cannot be written, and a store's file that is not a SQLite
    database, ended in tracebacks (PermissionError from the search index, sqlite3's "unable to
    open database file" or "file is not a database")."""
    for command in (["serve", "--port", "1"], ["tenant", "list"], ["seed"]):
        said = one_line(bloop(tmp_path, *command, BLOOP_DATA_DIR="/proc"))
        assert said.startswith("bloop: the data dir /proc (BLOOP_DATA_DIR) cannot be written: ")
    data = tmp_path / "data"
    data.mkdir()
    (data / "identity.sqlite3").write_text("not a database, whatever its name says")
    assert one_line(bloop(tmp_path, "tenant", "list")) == (
        f"bloop: the store file {data / 'identity.sqlite3'} (under BLOOP_DATA_DIR) is not a "
        "SQLite database; move it away, or restore it from a backup")


def test_a_services_settings_are_read_as_the_others_before_start_up(tmp_path: Path) -> None:
    """The search index's settings were read bare: a pydantic dump of many lines naming
    "SearchSettings directory"."""
    assert one_line(bloop(tmp_path, "worker", "content",
                          BLOOP_SEARCH_DIRECTORY="/etc/hostname")) == (
        "bloop: invalid setting BLOOP_SEARCH_DIRECTORY='/etc/hostname': Value error, names a "
        "file, not a directory")


def test_an_address_that_cannot_be_listened_on_stops_start_up_in_one_line(
        tmp_path: Path) -> None:
    """A port in use ended in "[Errno 98] address already in use" once the whole start-up had
    run (exit 3), naming no setting; so did a host that does not resolve."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        said = one_line(bloop(tmp_path, "serve", "identity", BLOOP_HTTP_PORT=str(port)))
    assert said == (f"bloop: cannot listen on 127.0.0.1:{port} (BLOOP_HTTP_HOST, "
                    "BLOOP_HTTP_PORT or --host, --port): Address already in use")
    assert not (tmp_path / "data" / "identity.sqlite3").exists(), "nothing started"
    said = one_line(bloop(tmp_path, "worker", "identity", BLOOP_HTTP_HOST="999.1.1.1"))
    assert said.startswith("bloop: cannot listen on 999.1.1.1:8000 (BLOOP_HTTP_HOST, "
                           "BLOOP_HTTP_PORT or --host, --port): the host does not resolve")


def test_without_httptools_serve_and_worker_refuse_to_start_in_one_line(tmp_path: Path) -> None:
    """uvicorn parsed with h11 instead, with none of `kit.http_protocol`'s limits, and said
    nothing."""
    shadow = tmp_path / "shadow" / "httptools"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('httptools is broken here')\n")
    with socket.socket() as taken:  # nothing is served, even when the check is missed
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for command in (["serve", "identity"], ["worker", "identity"]):
            said = one_line(bloop(tmp_path, *command, "--port", port,
                                  PYTHONPATH=str(shadow.parent)))
            assert said.startswith("bloop: cannot serve without httptools (httptools is "
                                   "broken here): uvicorn would parse with h11, without the "
                                   "header timeout (BLOOP_HTTP_HEADER_TIMEOUT_S)"), said
    assert not (tmp_path / "data" / "identity.sqlite3").exists(), "nothing started"


def test_routes_without_identity_need_its_published_keys(tmp_path: Path) -> None:
    from bloop.platform.app import create_app
    from bloop.platform.kit.settings import AuthSettings, RuntimeSettings

    runtime = RuntimeSettings(data_dir=tmp_path)
    for chosen in (["content"], ["learning", "ai"]):
        with pytest.raises(SettingsError, match=r"^missing setting BLOOP_AUTH_JWKS_URL: "):
            create_app(Settings(runtime=runtime), chosen)
    keys = AuthSettings(jwks_url="http://identity.internal/.well-known/jwks.json")
    create_app(Settings(runtime=runtime, auth=keys), ["content"])
    create_app(Settings(runtime=runtime), ["identity", "content"])
    create_app(Settings(runtime=runtime), ["content"], http_routes=False)


ROOT = Path(__file__).resolve().parents[2]


def _app(tmp_path: Path) -> None:
    from bloop.platform.app import create_app

    create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
               services=["identity"])


def test_a_misspelt_setting_is_named_at_start_up_with_the_one_meant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """BLOOP_NEO4J_PASS=… ran with the default password, and nothing said so."""
    monkeypatch.setenv("BLOOP_NEO4J_PASS", "s3cret")
    monkeypatch.setenv("BLOOP_ZZZZ", "1")
    with caplog.at_level(logging.WARNING, "bloop.app"):
        _app(tmp_path)
    [warned] = [r for r in caplog.records if "unknown settings" in r.getMessage()]
    assert warned.getMessage() == ("unknown settings, left aside: BLOOP_NEO4J_PASS (did you mean "
                                   "BLOOP_NEO4J_PASSWORD?), BLOOP_ZZZZ")
    assert "s3cret" not in warned.getMessage()


@pytest.mark.parametrize("var", ["BLOOP_LOG_JSON", "BLOOP_TTS_VOICE", "BLOOP_MEDIA_LINK_TTL_S",
                                 "BLOOP_UPLOAD_MAX_FILES", "BLOOP_SEARCH_DIRECTORY",
                                 "BLOOP_KAFKA_PORT", "BLOOP_INFRA_CACHE", "bloop_http_port"])
def test_the_names_bloop_reads_are_known(var: str) -> None:
    assert unknown_names(services.settings_groups(), {var: "1"}) == {}


def test_kubernetes_service_links_of_a_release_named_bloop_are_not_unknown_settings() -> None:
    """Each pod of a Helm release `bloop` (services `bloop-<name>`) is given variables for every
    service of its namespace, which warned of a dozen unknown settings at each start."""
    links: dict[str, str] = {}
    for service in ("IDENTITY", "CONTENT", "LEARNING", "AI"):
        links |= {f"BLOOP_{service}_SERVICE_HOST": "10.0.0.11",
                  f"BLOOP_{service}_SERVICE_PORT": "80",
                  f"BLOOP_{service}_SERVICE_PORT_HTTP": "80",
                  f"BLOOP_{service}_PORT": "tcp://10.0.0.11:80",
                  f"BLOOP_{service}_PORT_80_TCP": "tcp://10.0.0.11:80",
                  f"BLOOP_{service}_PORT_80_TCP_ADDR": "10.0.0.11",
                  f"BLOOP_{service}_PORT_80_TCP_PORT": "80",
                  f"BLOOP_{service}_PORT_80_TCP_PROTO": "tcp"}
    assert unknown_names(services.settings_groups(), links) == {}
    # a misspelt port is still told of, and a setting's own value is read as it is
    misspelt = {"BLOOP_KAFAK_PORT": "9092", "BLOOP_HTTP_PORT": "tcp://10.0.0.11:80"}
    assert unknown_names(services.settings_groups(), misspelt) == {
        "BLOOP_KAFAK_PORT": "BLOOP_KAFKA_PORT"}


def test_every_bloop_variable_named_beside_the_code_is_known() -> None:
    """The scripts of infra/, the chart, the image and the Makefile set or read these: a
    process started beside them would warn of names that are in use."""
    files = [*(ROOT / "infra").rglob("*.sh"), *(ROOT / "infra").rglob("*.go"),
             *(ROOT / "helm").rglob("*.yaml"), ROOT / "Dockerfile", ROOT / "Makefile"]
    named = {m for f in files if f.is_file()
             for m in re.findall(r"\bBLOOP_[A-Z0-9_]*[A-Z0-9]\b", f.read_text())}
    assert "BLOOP_KAFKA_PORT" in named
    assert unknown_names(services.settings_groups(), dict.fromkeys(named, "")) == {}


@pytest.mark.parametrize(("store", "var", "value", "development"), [
    ("neo4j", "BLOOP_NEO4J_PASSWORD", "production-pass", "bloop-neo4j-pass"),
    ("influx", "BLOOP_INFLUX_TOKEN", "production-token", "bloop:bloop")])
async def test_a_real_store_with_the_development_credential_is_warned_of(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        store: str, var: str, value: str, development: str) -> None:
    """Unset or set to it, the credential is the development one (the warning said "unset" of
    a variable set to it), for a server on another machine: infra/'s own, on this machine, has
    it (the notebooks on the real servers printed the warning)."""
    from bloop.platform.kit.wiring import Platform

    monkeypatch.setenv(f"BLOOP_{store.upper()}_ADAPTER", "real")
    remote = {"neo4j": "bolt://neo4j.school.internal:7687",
              "influx": "http://influx.school.internal:8086"}[store]
    for url, local in ((remote, False), ("", True), (remote.replace(
            remote.split("//")[1].split(":")[0], "localhost"), True)):
        if url:
            monkeypatch.setenv(f"BLOOP_{store.upper()}_URL", url)
        else:
            monkeypatch.delenv(f"BLOOP_{store.upper()}_URL", raising=False)
        for chosen in (None, development, value):
            if chosen is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, chosen)
            caplog.clear()
            platform = Platform(Settings(runtime=RuntimeSettings(data_dir=tmp_path,
                                                                 seed_demo=False)))
            with caplog.at_level(logging.WARNING, "bloop.wiring"):
                getattr(platform, f"require_{store}")()
            await platform.close()
            warned = [r.getMessage() for r in caplog.records if var in r.getMessage()]
            assert warned == ([] if chosen == value or local else [
                f"{var} is the built-in development value: {store} is given the credential of "
                "infra/'s local server; set the real server's"]), (url, warned)
            assert all(value not in m and development not in m for m in warned)


def readme_settings() -> list[re.Pattern[str]]:
    """The variables README's *Settings* table names in its rows' first cells: a name in full,
    `_SUFFIX` for another of the row's group, `<STORE>` for any word."""
    text = (ROOT / "README.md").read_text()
    table = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    prefixes = sorted({str(g.model_config.get("env_prefix", "")).upper()
                       for g in services.settings_groups()}, key=len, reverse=True)
    documented = []
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        prefix = "BLOOP_"
        for token in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if token.startswith("BLOOP_"):
                prefix = next(p for p in prefixes if token.startswith(p))
            documented.append(token if token.startswith("BLOOP_") else prefix + token[1:])
    return [re.compile("".join("[A-Z0-9_]+" if re.fullmatch(r"<\w+>", part) else re.escape(part)
                               for part in re.split(r"(<\w+>)", name)) + "$")
            for name in documented]


def test_every_setting_is_documented_in_the_readme() -> None:
    """Forty-odd settings (the text-to-speech keys, the token's issuer and audience, the AI
    worker's group) were read but not documented."""
    documented = readme_settings()
    known = [name for group in services.settings_groups() for name in names(group)]
    assert [n for n in known if not any(p.match(n) for p in documented)] == []
    assert [p.pattern for p in documented if not any(p.match(n) for n in known)] == []
