"""The Helm chart in helm/, rendered by Helm itself (built by `infra/helm.sh`): each Deployment runs
a service Bloop has, each served one has its Service, and the processes that run without
identity are told where its keys are, so they start and accept identity's tokens."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from httpx import ASGITransport, AsyncClient

from bloop.platform import services
from bloop.platform.app import create_app
from bloop.platform.content.search.settings import SearchSettings
from bloop.platform.kit.health import Probe
from bloop.platform.kit.settings import RuntimeSettings, Settings

CHART = Path(__file__).parents[2] / "helm" / "bloop"
README = Path(__file__).parents[2] / "README.md"
CACHE = Path(os.environ.get("BLOOP_INFRA_CACHE", Path.home() / ".cache" / "bloop-infra"))
HELM = CACHE / "helm" / "bin" / "helm"
Doc = dict[str, Any]


@pytest.fixture(autouse=True)
def helm_built() -> None:
    if not HELM.exists():
        message = "Helm is not built here: run `bash infra/helm.sh install`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.xfail(message)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def render(*overrides: str) -> list[Doc]:
    done = helm("template", "school", str(CHART), *overrides)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_chart_lints() -> None:
    done = helm("lint", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_deployment_runs_a_service_and_each_served_one_has_its_service() -> None:
    docs = render("--set", "workers.learning.replicas=1")
    deployments, kube_services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    assert set(deployments) == {"school-identity", "school-content", "school-learning",
                                "school-ai", "school-learning-worker"}
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        mode, service = container["args"]
        assert service in services.available()
        assert name == f"school-{service}" + ("-worker" if mode == "worker" else "")
        assert container["envFrom"][0] == {"configMapRef": {"name": "school-settings"}}
        if mode == "serve":
            assert kube_services[name]["spec"]["selector"]["bloop.dev/service"] == service
    assert set(kube_services) == {"school-identity", "school-content", "school-learning",
                                  "school-ai"}


def test_processes_apart_from_identity_are_told_where_its_keys_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [config] = of_kind(render("--set", "services.ai.replicas=1"), "ConfigMap").values()
    settings: dict[str, str] = config["data"]
    assert settings["BLOOP_AUTH_JWKS_URL"] == "http://school-identity/.well-known/jwks.json"
    assert settings["BLOOP_AUTH_API_KEYS_URL"] == "http://school-identity/v1/auth/principal"
    assert settings["BLOOP_AUTH_IDENTITY_URL"] == "http://school-identity"
    assert settings["BLOOP_AI_CONTENT_URL"] == "http://school-content"
    assert settings["BLOOP_AI_URL"] == "http://school-ai"
    # The Deployments' settings are valid, and enough for each to start without identity.
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BLOOP_DATA_DIR", str(tmp_path))
    for alone in ("content", "ai", "learning"):
        create_app(Settings(), [alone])
    assert "BLOOP_AI_URL" not in of_kind(render("--set", "services.ai=null"),
                                         "ConfigMap")["school-settings"]["data"]

    [mine] = of_kind(render("--set", "settings.BLOOP_AUTH_JWKS_URL=http://keys.example/jwks"),
                     "ConfigMap").values()
    assert mine["data"]["BLOOP_AUTH_JWKS_URL"] == "http://keys.example/jwks"


def test_services_without_identity_or_its_keys_do_not_render() -> None:
    done = helm("template", "school", str(CHART), "--set", "services.identity=null")
    assert done.returncode == 1
    assert "services without identity need settings.BLOOP_AUTH_JWKS_URL" in done.stderr
    docs = render("--set", "services.identity=null",
                  "--set", "settings.BLOOP_AUTH_JWKS_URL=http://keys.example/jwks")
    assert set(of_kind(docs, "Deployment")) == {"school-content", "school-learning", "school-ai"}


def test_pods_are_replaced_one_by_one_unless_the_old_ones_must_stop_first() -> None:
    def strategies(*overrides: str) -> set[str]:
        return {d["spec"]["strategy"]["type"] for d in of_kind(render(
            "--set", "workers.learning.replicas=1", *overrides), "Deployment").values()}

    assert strategies() == {"RollingUpdate"}
    assert strategies("--set", "strategy=Recreate") == {"Recreate"}
    done = helm("template", "school", str(CHART), "--set", "strategy=Whenever")
    assert done.returncode == 1
    assert "strategy is RollingUpdate or Recreate" in done.stderr


def test_a_service_may_be_scaled_to_zero_and_one_bloop_lacks_does_not_render() -> None:
    """`replicas: 0` rendered as 1, and `services.bogus` rendered a pod that could not start."""
    deployments = of_kind(render("--set", "services.content.replicas=0"), "Deployment")
    assert deployments["school-content"]["spec"]["replicas"] == 0
    assert deployments["school-identity"]["spec"]["replicas"] == 2
    for group in ("services", "workers"):
        done = helm("template", "school", str(CHART), "--set", f"{group}.bogus.replicas=1")
        assert done.returncode == 1
        assert 'Bloop has no service "bogus"' in done.stderr
    named = done.stderr.split("(it has ", 1)[1].split(")", 1)[0]
    assert set(named.split(", ")) == set(services.available())


def test_replicas_share_their_link_secrets_and_an_ai_worker_takes_the_jobs() -> None:
    """Without `secretName` holding the link secrets each replica signed media links with its
    own random one (a link failed on the other replica); and the `ai` service's pods ran jobs
    beside an `ai` worker."""
    docs = render("--set", "services.ai.replicas=1", "--set", "workers.ai.replicas=1",
                  "--set", "settings.BLOOP_HTTP_PORT=9000")
    [secret] = of_kind(docs, "Secret").values()
    assert set(secret["data"]) == {"BLOOP_MEDIA_LINK_SECRET", "BLOOP_AI_LINK_SECRET"}
    deployments = of_kind(docs, "Deployment")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert [s.get("secretRef", {}).get("name") for s in container["envFrom"]] == [
            None, secret["metadata"]["name"], "bloop-secrets"], "the operator's secret last"
        run_jobs = [e for e in container.get("env", []) if e["name"] == "BLOOP_AI_RUN_JOBS"]
        assert run_jobs == {"school-ai": [{"name": "BLOOP_AI_RUN_JOBS", "value": "false"}],
                            "school-ai-worker": [{"name": "BLOOP_AI_RUN_JOBS", "value": "true"}],
                            }.get(name, [])
        assert container["ports"] == [{"name": "http", "containerPort": 9000}]
        assert pod["securityContext"]["runAsNonRoot"]
        assert not container["securityContext"]["allowPrivilegeEscalation"]
        assert pod["terminationGracePeriodSeconds"] >= 30
    alone = of_kind(render("--set", "services.ai.replicas=1"), "Deployment")["school-ai"]
    assert "env" not in alone["spec"]["template"]["spec"]["containers"][0]
    # Settings that keep the service's pods from running jobs (every process reads them) do
    # not stop the workers': the jobs waited for good.
    off = of_kind(render("--set", "services.ai.replicas=1", "--set", "workers.ai.replicas=1",
                         "--set", "settings.BLOOP_AI_RUN_JOBS=false"), "Deployment")
    assert "env" not in off["school-ai"]["spec"]["template"]["spec"]["containers"][0]
    [worker] = off["school-ai-worker"]["spec"]["template"]["spec"]["containers"]
    assert worker["env"] == [{"name": "BLOOP_AI_RUN_JOBS", "value": "true"}]


def test_probes_wait_longer_than_readyz_takes_to_answer() -> None:
    """/readyz answers within each check's bound (2 s); Kubernetes' default probe timeout is 1 s,
    which made a slow dependency fail the probe rather than report itself."""
    bound = Probe.timeout_s
    for deployment in of_kind(render("--set", "workers.learning.replicas=1"), "Deployment").values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["timeoutSeconds"] > bound
        assert container["livenessProbe"]["timeoutSeconds"] >= container["readinessProbe"]["timeoutSeconds"]


async def test_a_pod_stays_in_its_service_while_a_shared_store_is_down(tmp_path: Path) -> None:
    """The readiness probe asked /readyz, 503 while Kafka or Redis was down: every pod left every
    Service at once, where the routes that do not need the store could have answered. It asks
    whether the process serves (started, not draining); liveness asks /healthz."""
    deployments = of_kind(render("--set", "workers.learning.replicas=1"), "Deployment")
    containers = [d["spec"]["template"]["spec"]["containers"][0] for d in deployments.values()]
    [readiness] = {c["readinessProbe"]["httpGet"]["path"] for c in containers}
    assert {c["livenessProbe"]["httpGet"]["path"] for c in containers} == {"/healthz"}
    app = create_app(Settings(runtime=RuntimeSettings(data_dir=tmp_path, seed_demo=False)),
                     ["identity"])
    async with app.router.lifespan_context(app), AsyncClient(
            transport=ASGITransport(app=app), base_url="http://pod") as kubelet:
        app.state.platform.probes.append(Probe("kafka", _down))
        assert (await kubelet.get("/readyz")).status_code == 503
        assert (await kubelet.get(readiness)).status_code == 200


async def _down() -> None:
    raise ConnectionRefusedError("kafka is down")


def test_content_may_take_minutes_to_start_and_keeps_its_search_index_across_restarts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Content builds its search index before it listens: on a large catalogue the liveness probe
    killed it after 30 s, and the index, in the container, was lost with it, so it crash-looped."""
    def pods(*overrides: str) -> dict[str, Doc]:
        return {name: d["spec"]["template"]["spec"] for name, d in of_kind(render(
            "--set", "workers.content.replicas=1", *overrides), "Deployment").items()}

    for name, pod in pods().items():
        [container] = pod["containers"]
        started = container["startupProbe"]
        assert started["httpGet"] == container["livenessProbe"]["httpGet"]
        assert started["periodSeconds"] * started["failureThreshold"] >= 600
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if container["args"][1] != "content":
            assert "volumes" not in pod, name
            assert "BLOOP_SEARCH_DIRECTORY" not in env, name
            continue
        [volume] = pod["volumes"]
        assert volume == {"name": "search-index", "emptyDir": {}}
        [mount] = container["volumeMounts"]
        assert mount["name"] == volume["name"]
        directory = Path(env["BLOOP_SEARCH_DIRECTORY"])
        assert directory.parent == Path(mount["mountPath"]), "a volume's own files aside"
        monkeypatch.setenv("BLOOP_SEARCH_DIRECTORY", str(directory))
        assert SearchSettings().directory == directory
    longer = pods("--set", "startupProbe.failureThreshold=120")["school-content"]
    assert longer["containers"][0]["startupProbe"]["failureThreshold"] == 120
    # null: no startup probe (the render failed on a nil pointer)
    for pod in pods("--set", "startupProbe=null").values():
        [container] = pod["containers"]
        assert "startupProbe" not in container
        assert "livenessProbe" in container
    for unkept in ("searchIndex.volume=null", "settings.BLOOP_SEARCH_DIRECTORY=/srv/search"):
        pod = pods("--set", unkept)["school-content"]
        assert "volumes" not in pod
        assert "env" not in pod["containers"][0]


def test_pods_are_not_given_the_namespaces_service_links() -> None:
    """A release named `bloop` has services `bloop-<name>`, whose links (BLOOP_AI_SERVICE_HOST,
    …) each pod was given beside its settings."""
    deployments = of_kind(render("--set", "workers.learning.replicas=1"), "Deployment")
    assert deployments
    for deployment in deployments.values():
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_a_change_of_settings_replaces_every_pod() -> None:
    """Pods read settings at start: a `helm upgrade` that changed them restarted no pod, and
    replicas started later ran with the new settings beside the old."""
    def checksums(*overrides: str) -> set[str]:
        deployments = of_kind(render("--set", "workers.learning.replicas=1", *overrides),
                              "Deployment")
        annotations = [d["spec"]["template"]["metadata"]["annotations"]
                       for d in deployments.values()]
        assert not any("checksum/secrets" in a for a in annotations)
        return {a["checksum/settings"] for a in annotations}

    # Renders make new link secrets where no Secret is found: the pods must not change for it.
    [before] = checksums()
    assert checksums() == {before}
    [after] = checksums("--set", "settings.BLOOP_LOG_LEVEL=DEBUG")
    assert after != before


def test_a_service_or_worker_may_have_its_own_resources() -> None:
    """Every pod had the chart's `resources` (1 GiB): an AI worker that renders videos needs more."""
    deployments = of_kind(render(
        "--set", "workers.ai.replicas=1", "--set", "workers.ai.resources.limits.memory=4Gi",
        "--set", "workers.ai.resources.requests.memory=2Gi"), "Deployment")
    resources = {name: d["spec"]["template"]["spec"]["containers"][0]["resources"]
                 for name, d in deployments.items()}
    assert resources.pop("school-ai-worker") == {"limits": {"memory": "4Gi"},
                                                 "requests": {"memory": "2Gi"}}
    assert resources["school-identity"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                            "limits": {"memory": "1Gi"}}


def test_the_processes_that_run_ai_jobs_get_the_media_image() -> None:
    """Every pod ran the default image, without ffmpeg, espeak-ng or Manim: the ai service that
    runs jobs by default refused every narration and video."""
    def images(*overrides: str) -> dict[str, str]:
        return {name: d["spec"]["template"]["spec"]["containers"][0]["image"]
                for name, d in of_kind(render(*overrides), "Deployment").items()}

    assert images("--set", "image.tag=2.0") == {
        "school-identity": "ghcr.io/bloop-learning/bloop:2.0",
        "school-content": "ghcr.io/bloop-learning/bloop:2.0",
        "school-learning": "ghcr.io/bloop-learning/bloop:2.0",
        "school-ai": "ghcr.io/bloop-learning/bloop:2.0-media"}
    moved = images("--set", "workers.ai.replicas=1", "--set", "workers.ai.image.target=media",
                   "--set", "services.ai.image=null", "--set", "workers.ai.image.tag=own")
    assert moved["school-ai"] == "ghcr.io/bloop-learning/bloop:0.1.0"
    assert moved["school-ai-worker"] == "ghcr.io/bloop-learning/bloop:own"


def test_the_default_values_run_every_service() -> None:
    """They ran identity and content alone: learning's consumer group ran nowhere, and once
    enabled read content.events from its earliest event still kept, a week's worth."""
    served = {d["spec"]["template"]["spec"]["containers"][0]["args"][1]
              for d in of_kind(render(), "Deployment").values()}
    assert served == set(services.available())


def test_secrets_put_in_settings_do_not_render() -> None:
    """Settings land in a ConfigMap, which more people may read than Secrets: a password or key
    put there, or an address with a password in it, was stored in plain sight."""
    for secret in ("BLOOP_NEO4J_PASSWORD=hunter2", "BLOOP_INFLUX_TOKEN=bloop:hunter2",
                   "BLOOP_AI_OPENAI_API_KEY=sk-1", "BLOOP_MEDIA_LINK_SECRET=0123456789abcdef",
                   "BLOOP_TTS_AZURE_API_KEY=k",
                   # settings read their names in any case: these rendered
                   "bloop_neo4j_password=hunter2", "Bloop_Ai_Openai_Api_Key=sk-1"):
        done = helm("template", "school", str(CHART), "--set", f"settings.{secret}")
        assert done.returncode == 1, secret
        name = secret.split("=")[0]
        assert f"settings.{name} looks like a secret" in done.stderr
        assert "secretName names (bloop-secrets)" in done.stderr
    for address in ("BLOOP_MONGO_URL=mongodb://bloop:hunter2@mongo:27017",
                    "BLOOP_REDIS_URL=redis://:hunter2@redis:6379/0"):
        done = helm("template", "school", str(CHART), "--set", f"settings.{address}")
        assert done.returncode == 1, address
        assert "holds a password in its address" in done.stderr
    # Names of numbers and addresses that merely mention keys or tokens render.
    fine = ("BLOOP_AUTH_TOKEN_RATE_LIMIT=10", "BLOOP_AUTH_API_KEY_CACHE_S=5",
            "BLOOP_AUTH_MAX_API_KEYS=3", "BLOOP_AUTH_KEY_ROTATION_S=86400",
            "BLOOP_AUTH_API_KEYS_URL=http://keys.example/principal",
            "BLOOP_MONGO_URL=mongodb://bloop@mongo:27017")
    [config] = of_kind(render(*(a for f in fine for a in ("--set", f"settings.{f}"))),
                       "ConfigMap").values()
    assert config["data"]["BLOOP_AUTH_MAX_API_KEYS"] == "3"


def test_settings_are_named_in_capitals() -> None:
    """Bloop reads its settings' names in any case, the chart its own checks in capitals: with
    `bloop_ai_url` set, the chart added `BLOOP_AI_URL` as well, and which one a process took
    was a matter of chance; `Bloop_Http_Port` left the probes on port 8000."""
    for setting in ("bloop_ai_url=http://ai.example", "Bloop_Http_Port=9000",
                    "BLOOP_http_shutdown_timeout_s=60"):
        done = helm("template", "school", str(CHART), "--set", f"settings.{setting}")
        assert done.returncode == 1, setting
        name = setting.split("=")[0]
        assert f"settings.{name}: write the name in capitals, {name.upper()}" in done.stderr
    assert render("--set", "settings.BLOOP_HTTP_PORT=9000")


def test_a_pod_leaves_its_service_before_it_stops_and_has_the_time_its_shutdown_takes() -> None:
    """SIGTERM came as the pod was taken out of its Service's endpoints (requests sent meanwhile
    were refused), and the grace period was a fixed 40 s whatever BLOOP_HTTP_SHUTDOWN_TIMEOUT_S
    said."""
    def pods(*overrides: str) -> list[Doc]:
        return [d["spec"]["template"]["spec"]
                for d in of_kind(render(*overrides), "Deployment").values()]

    defaults = Settings()
    kafka_s = -(-defaults.kafka.request_timeout_ms // 1000)
    for pod in pods():
        [container] = pod["containers"]
        assert container["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
        assert pod["terminationGracePeriodSeconds"] == (
            5 + defaults.http.shutdown_timeout_s + 5 + kafka_s + 5)
    for pod in pods("--set", "settings.BLOOP_HTTP_SHUTDOWN_TIMEOUT_S=60",
                    "--set-string", "settings.BLOOP_KAFKA_REQUEST_TIMEOUT_MS=30500",
                    "--set", "preStopSleepSeconds=0"):
        assert pod["terminationGracePeriodSeconds"] == 60 + 5 + 31 + 5
        assert "lifecycle" not in pod["containers"][0]
    assert {p["terminationGracePeriodSeconds"]
            for p in pods("--set", "terminationGracePeriodSeconds=100")} == {100}
    # 0 was taken for unset, and the derived 45 s given instead
    assert {p["terminationGracePeriodSeconds"]
            for p in pods("--set", "terminationGracePeriodSeconds=0")} == {0}


def test_link_secrets_may_come_from_a_secret_of_ones_own() -> None:
    """`helm template` (GitOps) cannot look the chart's Secret up: each render made new link
    secrets, which broke every link signed before."""
    docs = render("--set", "linkSecretsName=school-links")
    assert not of_kind(docs, "Secret")
    for deployment in of_kind(docs, "Deployment").values():
        template = deployment["spec"]["template"]
        [container] = template["spec"]["containers"]
        assert {"secretRef": {"name": "school-links"}} in container["envFrom"]
        assert "checksum/settings" in template["metadata"]["annotations"]


def test_the_readme_maps_each_route_to_the_service_that_serves_it() -> None:
    """An Ingress in front of the chart's Services routes by the README's path map: each route
    must go, by the longest prefix listed, to the service that serves it."""
    text = README.read_text()
    table = text.split("| Service | serves |", 1)[1].split("\n\n", 1)[0]
    listed: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        name, paths = row.strip("|").split("|", 1)
        for path in re.findall(r"`([^`]+)`", paths):
            listed[path] = name.strip()
    assert set(listed.values()) == set(services.available())
    for service in services.select(None):
        for router in service.routers():
            for route in router.routes:
                path = route.path  # type: ignore[attr-defined]
                found = max((p for p in listed if path == p or path.startswith(p.rstrip("/") + "/")),
                            key=len)
                assert listed[found] == service.name, (path, found)


def test_pods_believe_the_client_address_the_ingress_forwards(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn believes X-Forwarded-For from loopback alone: behind the ingress every client had
    the ingress's address, and one person's wrong passwords locked sign-ins for everyone."""
    def trusted(*overrides: str) -> str:
        [config] = of_kind(render(*overrides), "ConfigMap").values()
        value: str = config["data"]["BLOOP_HTTP_FORWARDED_ALLOW_IPS"]
        return value

    default = trusted()
    monkeypatch.setenv("BLOOP_HTTP_FORWARDED_ALLOW_IPS", default)
    networks = [ipaddress.ip_network(p) for p in Settings().http.forwarded_allow_ips]

    def is_proxy(address: str) -> bool:
        return any(ipaddress.ip_address(address) in n for n in networks)

    # Ingress controllers' pods (kind, k3s, Calico, EKS) and nodes; not the clients outside.
    assert all(map(is_proxy, ["10.244.1.7", "10.42.0.12", "192.168.3.4", "172.20.0.9",
                              "100.64.1.2", "127.0.0.1", "fd00::12"]))
    assert not any(map(is_proxy, ["203.0.113.7", "8.8.8.8", "2001:db8::1"]))
    assert trusted("--set", "trustedProxies={10.42.0.0/16}") == "10.42.0.0/16"
    assert trusted("--set", "trustedProxies=10.42.0.0/16\\,10.43.0.0/16") == (
        "10.42.0.0/16,10.43.0.0/16")
    assert trusted("--set", "trustedProxies=null") == ""
    assert trusted("--set", "settings.BLOOP_HTTP_FORWARDED_ALLOW_IPS=10.1.0.0/16") == (
        "10.1.0.0/16")
