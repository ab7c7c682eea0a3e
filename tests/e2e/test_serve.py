"""`bloop serve` and `bloop worker` as a newcomer runs them: real processes on embedded stores."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bloop.platform.demo import data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    def __init__(self, args: list[str], tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "stderr.log"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")}
        environ |= {"BLOOP_DATA_DIR": str(tmp / "data"), "BLOOP_HTTP_PORT": str(self.port),
                    **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "bloop.cli", *args], env=environ,
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("wb"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


def sign_in(base: str, person: data.Person) -> dict[str, str]:
    r = httpx.post(base + "/v1/auth/token", data={
        "grant_type": "password", "tenant": data.TENANT_ID, "username": person.email,
        "password": person.password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Process]:
    p = Process(["serve"], tmp_path)
    yield p
    if p.proc.poll() is None:
        p.stop()


def test_serve_runs_every_service_with_a_seeded_demo(served: Process) -> None:
    ready = httpx.get(served.base + "/readyz")
    assert ready.status_code == 200, ready.text
    assert all(c["state"] == "up" for c in ready.json()["checks"].values())
    assert httpx.get(served.base + "/v1/tenants/demo/courses").status_code == 401
    ada, grace = (sign_in(served.base, p) for p in data.PEOPLE)
    courses = httpx.get(served.base + "/v1/tenants/demo/courses", headers=grace).json()
    titles = [c["title"] for c in courses["items"]]
    assert "Thinking in Python" in titles
    users = httpx.get(served.base + "/v1/tenants/demo/users", headers=ada).json()
    assert len(users["items"]) == 2
    assert httpx.get(served.base + "/v1/tenants/demo/users", headers=grace).status_code == 403
    page = httpx.get(served.base + "/")
    assert page.status_code == 200
    assert "Thinking in Python" in page.text


def test_requests_are_logged_and_counted_with_their_request_id(served: Process) -> None:
    grace = sign_in(served.base, data.PEOPLE[1])
    r = httpx.get(served.base + "/v1/tenants/demo/courses",
                  headers={"X-Request-ID": "e2e-check-1", **grace})
    assert r.headers["x-request-id"] == "e2e-check-1"
    generated = httpx.get(served.base + "/healthz").headers["x-request-id"]
    assert len(generated) == 32
    published = ('bloop_events_published_total{topic="content.events",'
                 'type="bloop.content.course.published.v1"} 1.0')
    deadline = time.monotonic() + 10
    while published not in (metrics := httpx.get(served.base + "/metrics").text):
        assert time.monotonic() < deadline, "the seed's events were not published"
        time.sleep(0.2)
    labels = 'method="GET",route="/v1/tenants/{tenant}/courses",status="200"'
    assert f"bloop_http_requests_total{{{labels}}}" in metrics
    assert served.stop() == 0
    lines = served.log_lines()
    assert any(line.get("request_id") == "e2e-check-1" and line.get("status") == 200 for line in lines)


def test_bad_input_gets_problem_json(served: Process) -> None:
    r = httpx.post(served.base + "/v1/tenants", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_failed"
    big = httpx.post(served.base + "/v1/tenants", content=b"x" * 2_000_000,
                     headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert httpx.get(served.base + "/v1/nowhere").status_code == 404


def exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Sends `request` (headers only: the body it declares never comes) and reads the answer;
    True when the server then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            body += conn.recv(65536)
        conn.settimeout(1)  # well within the server's keep-alive timeout
        try:
            closed = conn.recv(1) == b""
        except TimeoutError:
            closed = False
        return head, closed


@pytest.mark.parametrize(("path", "auth"), [
    ("/v1/tenants/demo/media", True),  # limits its own bodies, by the kind of media
    ("/v1/tenants/demo/media", False),  # refused before the limit is even looked at
    ("/v1/tenants", False),  # the limit every other route has
])
def test_a_refusal_before_the_body_closes_the_connection(served: Process, path: str,
                                                         auth: bool) -> None:
    """A client that declared more than it sent gets its answer at once, and its connection is
    not kept to be misread: the server closes it rather than take what comes next for body."""
    token = sign_in(served.base, data.PEOPLE[0])["Authorization"] if auth else ""
    head, closed = exchange(served.port, (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: video/mp4\r\n"
        f"Content-Length: {10**13}\r\n" + (f"Authorization: {token}\r\n" if token else "")
        + "\r\n").encode())
    assert head.split(b" ")[1] == (b"413" if auth or path == "/v1/tenants" else b"401")
    assert b"\r\nconnection: close" in head.lower()
    assert closed
    assert httpx.get(served.base + "/healthz").status_code == 200


def test_a_client_that_leaves_mid_upload_is_no_error(served: Process) -> None:
    token = sign_in(served.base, data.PEOPLE[0])["Authorization"]
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall((f"POST /v1/tenants/demo/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: {token}\r\nContent-Type: image/png\r\n"
                      "Content-Length: 100000\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n")
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while "499" not in (metrics := httpx.get(served.base + "/metrics").text):
        assert time.monotonic() < deadline, "the request was not counted"
        time.sleep(0.1)
    assert 'route="/v1/tenants/{tenant}/media",status="499"' in metrics
    assert served.stop() == 0
    lines = served.log_lines()
    assert not [line for line in lines if line.get("level") == "ERROR"]
    assert any(line.get("msg") == "the client went away before its request was read"
               for line in lines)


def test_a_chunked_body_over_the_limit_is_refused_as_too_large(served: Process) -> None:
    """No Content-Length to refuse up front: the limit is met while the body is read."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as conn:
        conn.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # the server may close before all of it is sent
            for _ in range(20):
                conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
        answer = b""
        while b"}" not in answer and (part := conn.recv(65536)):
            answer += part
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413"
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body)["code"] == "payload_too_large"


def test_a_body_that_stops_coming_is_answered_408(tmp_path: Path) -> None:
    """uvicorn would wait for ever for a body that was declared and never sent."""
    served = Process(["serve"], tmp_path, env={"BLOOP_HTTP_BODY_IDLE_TIMEOUT_S": "1"})
    try:
        started = time.monotonic()
        head, closed = exchange(served.port, b"POST /v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        assert head.split(b" ")[1] == b"408"
        assert 1 <= time.monotonic() - started < 8
        assert closed
        assert httpx.get(served.base + "/healthz").status_code == 200
    finally:
        assert served.stop() == 0
    assert not [line for line in served.log_lines() if line.get("level") == "ERROR"]


def test_a_request_read_to_its_end_keeps_its_connection(served: Process) -> None:
    head, closed = exchange(served.port, b"POST /v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert head.split(b" ")[1] in (b"401", b"422")
    assert b"connection: close" not in head.lower()
    assert not closed


def test_behind_a_trusted_proxy_the_sign_in_throttle_counts_each_client_apart(
        tmp_path: Path) -> None:
    """Behind an ingress every client had the ingress's address: five wrong passwords from one
    of them locked the account for all the others."""
    ingress = "127.0.0.2"  # loopback on Linux, but not an address uvicorn trusts by default
    served = Process(["serve", "identity"], tmp_path,
                     env={"BLOOP_HTTP_FORWARDED_ALLOW_IPS": f"{ingress},10.0.0.0/8"})
    ada = data.PEOPLE[0]

    def sign_in_through_ingress(client: str, password: str) -> httpx.Response:
        with httpx.Client(transport=httpx.HTTPTransport(local_address=ingress)) as http:
            return http.post(served.base + "/v1/auth/token", headers={
                "X-Forwarded-For": client}, data={"grant_type": "password",
                                                  "tenant": data.TENANT_ID,
                                                  "username": ada.email, "password": password})

    try:
        for _ in range(5):
            assert sign_in_through_ingress("203.0.113.7", "wrong").status_code == 400
        r = sign_in_through_ingress("203.0.113.7", ada.password)
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
        # Naming another client does not help it: the ingress adds the address it saw.
        r = sign_in_through_ingress("198.51.100.9, 203.0.113.7", ada.password)
        assert (r.status_code, r.json()["code"]) == (429, "account_locked")
        assert sign_in_through_ingress("198.51.100.9", ada.password).status_code == 200
        assert sign_in_through_ingress("198.51.100.9, 10.1.2.3", ada.password).status_code == 200
    finally:
        assert served.stop() == 0
    locks = [line for line in served.log_lines() if line.get("client_ip") == "203.0.113.7"]
    assert locks, served.log.read_text()[-3000:]


def bloop(served: Process, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")}
    env |= {"BLOOP_DATA_DIR": str(served.log.parent / "data"),
            "BLOOP_HTTP_PORT": str(served.port)}
    return subprocess.run([sys.executable, "-m", "bloop.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def accept(served: Process, tenant: str, printed: str, email: str) -> dict[str, str]:
    """Accepts the invitation the command printed, as its command says, and signs in."""
    token = re.search(r"token \(shown only now\): (\S+)", printed)
    assert token is not None, printed
    assert f"{served.base}/v1/tenants/{tenant}/invitations/accept" in printed
    password = "a long and unguessable passphrase"
    r = httpx.post(f"{served.base}/v1/tenants/{tenant}/invitations/accept", json={
        "token": token.group(1), "display_name": "First Admin", "password": password})
    assert r.status_code == 201, r.text
    r = httpx.post(served.base + "/v1/auth/token", data={
        "grant_type": "password", "tenant": tenant, "username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_an_operator_opens_a_tenant_for_its_first_admin(served: Process) -> None:
    made = bloop(served, "tenant", "create", "acme", "--name", "Acme School",
                 "--admin", "Boss@Acme.org")
    assert made.returncode == 0, made.stderr
    boss = accept(served, "acme", made.stdout, "boss@acme.org")
    r = httpx.patch(served.base + "/v1/tenants/acme/settings", headers=boss,
                    json={"allowed_signup_domains": ["acme.org"]})
    assert r.status_code == 200, r.text
    assert httpx.get(served.base + "/v1/tenants/demo/users", headers=boss).status_code == 403

    again = bloop(served, "tenant", "create", "acme", "--name", "Acme", "--admin", "x@acme.org")
    assert (again.returncode, again.stderr) == (1, "bloop: the tenant 'acme' already exists; to "
                                                   "invite someone into it, run `bloop tenant "
                                                   "invite acme EMAIL`\n")
    for bad in (["Not A Slug", "--name", "x", "--admin", "a@b.org"],
                ["ok", "--name", "x", "--admin", "not-an-email"],
                ["ok", "--name", "x", "--admin", "a@b.org", "--role", "wizard"]):
        refused = bloop(served, "tenant", "create", *bad)
        assert refused.returncode == 2
        assert refused.stderr.startswith("bloop: invalid ")
        assert refused.stderr.count("\n") == 1
    assert bloop(served, "tenant", "invite", "nowhere", "a@b.org").stderr == (
        "bloop: no tenant 'nowhere'\n")

    ops = bloop(served, "tenant", "create", "ops", "--name", "Operations",
                "--admin", "root@ops.example", "--role", "platform_admin")
    assert ops.returncode == 0, ops.stderr
    assert bloop(served, "tenant", "list").stdout.splitlines() == [
        "acme\tAcme School", f"demo\t{data.TENANT_NAME}", "ops\tOperations"]
    root = accept(served, "ops", ops.stdout, "root@ops.example")
    r = httpx.post(served.base + "/v1/tenants", headers=root,
                   json={"id": "beta", "name": "Beta College"})
    assert r.status_code == 201, r.text


def test_a_store_that_is_down_ends_a_command_in_one_line(tmp_path: Path) -> None:
    # A port bound here and never listened on refuses every connection, and no other socket
    # can take it meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")}
        env |= {"BLOOP_DATA_DIR": str(tmp_path), "BLOOP_MONGO_ADAPTER": "real",
                "BLOOP_MONGO_URL": f"mongodb://127.0.0.1:{held.getsockname()[1]}"}
        for args in (["tenant", "create", "zeta", "--name", "Zeta", "--admin", "a@zeta.org"],
                     ["seed"]):
            result = subprocess.run([sys.executable, "-m", "bloop.cli", *args], env=env,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert result.returncode == 1, result.stderr
            assert result.stderr.splitlines()[-1].startswith("bloop: a store is down (")
            logged = [line for line in result.stderr.splitlines() if "Traceback" in line]
            assert logged == [], "\n".join(logged)  # whole, to show which record carried one


def test_a_worker_serves_only_ops_routes(tmp_path: Path) -> None:
    worker = Process(["worker", "content"], tmp_path)
    try:
        assert httpx.get(worker.base + "/readyz").status_code == 200
        assert httpx.get(worker.base + "/metrics").status_code == 200
        assert httpx.get(worker.base + "/v1/tenants/demo/courses").status_code == 404
    finally:
        assert worker.stop() == 0


def test_an_unknown_service_is_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bloop.cli", "serve", "nonesuch"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "BLOOP_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "bloop: unknown service 'nonesuch'; choose from identity, content, ai, learning")


def test_a_service_apart_from_identity_verifies_tokens_with_its_published_keys(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOOP_")}
    refused = subprocess.run([sys.executable, "-m", "bloop.cli", "serve", "content"],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={**env, "BLOOP_DATA_DIR": str(tmp_path / "refused")})
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("bloop: missing setting BLOOP_AUTH_JWKS_URL: ")
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    for part in ("identity", "content"):
        (tmp_path / part).mkdir()
    identity = Process(["serve", "identity"], tmp_path / "identity")
    try:
        content = Process(["serve", "content"], tmp_path / "content", env={
            "BLOOP_AUTH_JWKS_URL": identity.base + "/.well-known/jwks.json",
            "BLOOP_AUTH_API_KEYS_URL": identity.base + "/v1/auth/principal",
            "BLOOP_AUTH_IDENTITY_URL": identity.base, "BLOOP_AUTH_API_KEY_CACHE_S": "0"})
        try:
            ada = sign_in(identity.base, data.PEOPLE[0])
            r = httpx.get(content.base + "/v1/tenants/demo/courses", headers=ada)
            assert r.status_code == 200, r.text
            assert [c["id"] for c in r.json()["items"]] == [data.COURSE_ID]
            scheme, token = ada["Authorization"].split()
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            r = httpx.get(content.base + "/v1/tenants/demo/courses",
                          headers={"Authorization": f"{scheme} {forged}"})
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert httpx.post(content.base + "/v1/auth/token").status_code == 404

            made = bloop(identity, "tenant", "create", "acme", "--name", "Acme School",
                         "--admin", "boss@acme.org")
            assert made.returncode == 0, made.stderr
            boss = accept(identity, "acme", made.stdout, "boss@acme.org")
            r = httpx.post(identity.base + "/v1/tenants/acme/api-keys", headers=boss,
                           json={"name": "catalogue sync", "scopes": ["content:read"]})
            assert r.status_code == 201, r.text
            key, key_id = {"X-API-Key": r.json()["key"]}, r.json()["id"]
            r = httpx.get(content.base + "/v1/tenants/acme/courses", headers=key)
            assert (r.status_code, r.json()) == (200, {"items": [], "next": None}), r.text
            r = httpx.post(content.base + "/v1/tenants/acme/courses", headers=key,
                           json={"title": "Not with a key without a role"})
            assert (r.status_code, r.json()["code"]) == (403, "missing_role"), r.text
            assert httpx.get(content.base + "/v1/tenants/demo/courses",
                             headers=key).status_code == 403
            r = httpx.delete(f"{identity.base}/v1/tenants/acme/api-keys/{key_id}", headers=boss)
            assert r.status_code == 204, r.text
            r = httpx.get(content.base + "/v1/tenants/acme/courses", headers=key)
            assert (r.status_code, r.json()["code"]) == (401, "token_revoked"), r.text

            course = content.base + "/v1/tenants/acme/courses/algebra"
            r = httpx.post(content.base + "/v1/tenants/acme/courses", headers=boss,
                           json={"id": "algebra", "title": "Algebra"})
            assert r.status_code == 201, r.text
            people = {}
            for role in ("educator", "learner"):
                r = httpx.post(identity.base + "/v1/tenants/acme/users", headers=boss, json={
                    "email": f"{role}@acme.org", "display_name": role, "roles": [role],
                    "password": "a long enough password 1"})
                assert r.status_code == 201, r.text
                people[role] = r.json()["id"]
            r = httpx.put(f"{course}/co-authors/{people['educator']}", headers=boss)
            assert (r.status_code, r.json()["co_authors"]) == (200, [people["educator"]]), r.text
            for user, code in ((people["learner"], "not_an_educator"), ("nobody", "unknown_user")):
                r = httpx.put(f"{course}/co-authors/{user}", headers=boss)
                assert (r.status_code, r.json()["code"]) == (422, code), r.text
        finally:
            assert content.stop() == 0
    finally:
        assert identity.stop() == 0


def stopped_within(served: Process, bound_s: float) -> int | None:
    """The exit code, once the process ended after SIGTERM; None (and the process killed) when
    it still ran after `bound_s`: a guard against a hang, not a measure."""
    served.proc.send_signal(signal.SIGTERM)
    try:
        return served.proc.wait(timeout=bound_s)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()
        return None


def messages(served: Process) -> list[str]:
    return [str(line.get("msg")) for line in served.log_lines()]


def test_an_open_job_event_stream_ends_when_the_server_stops(tmp_path: Path) -> None:
    """The stream lived until its job ended or for 10 minutes, and uvicorn waited for it before
    the app's shutdown ran (handing its outbox over). The shutdown timeout here is far longer
    than the bound: the stream ends by itself."""
    served = Process(["serve"], tmp_path, env={"BLOOP_AI_RUN_JOBS": "false",
                                               "BLOOP_HTTP_SHUTDOWN_TIMEOUT_S": "600"})
    ada = sign_in(served.base, data.PEOPLE[0])
    tenant = f"{served.base}/v1/tenants/{data.TENANT_ID}"
    course = httpx.get(f"{tenant}/courses/{data.COURSE_ID}", headers=ada)
    assert course.status_code == 200, course.text
    r = httpx.post(f"{tenant}/ai/jobs", headers=ada, json={
        "kind": "summary", "lesson_id": course.json()["lessons"][0]["id"]})
    assert r.status_code == 201, r.text
    job = r.json()["id"]
    received: list[str] = []
    opened = threading.Event()
    ended: list[bool] = []

    def follow() -> None:
        with httpx.stream("GET", f"{tenant}/ai/jobs/{job}/events", headers=ada,
                          timeout=httpx.Timeout(10, read=None)) as stream:
            assert stream.status_code == 200
            for text in stream.iter_text():
                received.append(text)
                if "event: progress" in "".join(received):
                    opened.set()
        ended.append(True)

    reader = threading.Thread(target=follow, daemon=True)
    try:
        reader.start()
        assert opened.wait(30), "the stream did not open"
        code = stopped_within(served, 60)
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
    reader.join(timeout=10)
    assert code == -signal.SIGTERM, "\n".join(messages(served)[-20:])  # as uvicorn ends
    assert ended == [True], "the stream ended cleanly, with the server"
    said = messages(served)
    assert "stopped" in said, "the app's shutdown ran"
    assert not [m for m in said if "timeout graceful shutdown exceeded" in m]


def spooling(data_dir: Path) -> bool:
    """True once the app has made an upload's spool file: it reads the body."""
    return any(data_dir.rglob("spool/upload-*.part"))


def test_a_request_that_never_ends_holds_the_shutdown_no_longer_than_its_timeout(
        tmp_path: Path) -> None:
    """An upload that keeps trickling in kept uvicorn waiting for as long as it came."""
    served = Process(["serve"], tmp_path, env={"BLOOP_HTTP_SHUTDOWN_TIMEOUT_S": "1"})
    token = sign_in(served.base, data.PEOPLE[0])["Authorization"]
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    stop = threading.Event()

    def trickle() -> None:
        with contextlib.suppress(OSError):  # the server went away
            conn.sendall((f"POST /v1/tenants/demo/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: {token}\r\nContent-Type: image/png\r\n"
                          "Content-Length: 100000\r\n\r\n").encode() + b"\x89PNG\r\n\x1a\n")
            for _ in range(600):  # at most 2 minutes, 600 bytes: the app is still sniffing
                if stop.wait(0.2):
                    return
                conn.sendall(b"\x00")

    writer = threading.Thread(target=trickle, daemon=True)
    try:
        writer.start()
        deadline = time.monotonic() + 30
        while not spooling(tmp_path / "data"):
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.1)
        code = stopped_within(served, 60)
    finally:
        stop.set()
        conn.close()
        if served.proc.poll() is None:
            served.proc.kill()
    assert code == -signal.SIGTERM, "\n".join(messages(served)[-20:])  # as uvicorn ends
    said = messages(served)
    assert any("timeout graceful shutdown exceeded" in m for m in said), said[-20:]
    assert "stopped" in said, "the app's shutdown ran"
