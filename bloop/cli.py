"""The `bloop` command: serve, worker, seed, tenant, infra, events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bloop.platform.kit.settings import Settings, SettingsError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bloop.platform.identity.model import Invitation
    from bloop.platform.identity.service import IdentityService
    from bloop.platform.kit.events.bus.port import EventBus

T = TypeVar("T")

app = typer.Typer(help="Bloop, an open-source learning platform.", no_args_is_help=True,
                  add_completion=False)
infra_app = typer.Typer(help="Real servers for development and tests (no Docker needed).",
                        no_args_is_help=True)
events_app = typer.Typer(help="Event types, their committed JSON Schemas, and dead letters.",
                         no_args_is_help=True)
tenant_app = typer.Typer(help="Open a tenant and invite its admin, before anyone can sign in.",
                         no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(infra_app, name="infra")
app.add_typer(events_app, name="events")


def _settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        typer.echo(f"bloop: {exc}", err=True)
        raise typer.Exit(2) from None


def _create_app(settings: Settings, services: list[str] | None = None, *, http_routes: bool,
                seed: bool | None = None, one_off: bool = False) -> FastAPI:
    """The app, or the command's end with one line naming an unknown service or a service's
    invalid setting. A one-off command (`bloop seed`) does not take content's search index,
    which the server beside it holds."""
    from bloop.platform.app import create_app

    _check_data_dir(settings)
    try:
        if not one_off:
            _refuse_a_search_index_in_use(settings, services)
        return create_app(settings, services, http_routes=http_routes, seed=seed,
                          one_off=one_off)
    except (ValueError, SettingsError) as exc:
        typer.echo(f"bloop: {exc}", err=True)
        raise typer.Exit(2) from None


def _check_data_dir(settings: Settings) -> None:
    """The command's end, in one line, when the data dir cannot be made or written, or holds a
    store's file SQLite would refuse."""
    import tempfile

    from bloop.platform.kit.sqlite import file_problem

    data_dir = settings.runtime.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"bloop: the data dir {data_dir} (BLOOP_DATA_DIR) cannot be made: "
                   f"{exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        with tempfile.TemporaryFile(dir=data_dir, prefix=".bloop-write-check-"):
            pass
    except OSError as exc:
        typer.echo(f"bloop: the data dir {data_dir} (BLOOP_DATA_DIR) cannot be written: "
                   f"{exc.strerror}", err=True)
        raise typer.Exit(2) from None
    for path in sorted(data_dir.glob("*.sqlite3")):
        problem = file_problem(path)
        if problem is not None:
            typer.echo(f"bloop: the store file {path} (under BLOOP_DATA_DIR) {problem}; move it "
                       "away, or restore it from a backup", err=True)
            raise typer.Exit(2)


def _refuse_a_search_index_in_use(settings: Settings, services: list[str] | None) -> None:
    """Content's search index takes one process: a second one on it ends here, in one line."""
    if services is not None and "content" not in services:
        return
    from bloop.platform.content.search.index import in_use
    from bloop.platform.content.search.settings import SearchSettings
    from bloop.platform.kit.settings import read

    search = read(SearchSettings).directory or settings.runtime.data_dir / "search"
    if in_use(search):
        typer.echo(f"bloop: another process serves content from {search} (its search index "
                   "takes one process); give this one its own BLOOP_SEARCH_DIRECTORY, or run it "
                   "without content", err=True)
        raise typer.Exit(2)


def _check_listening(host: str, port: int) -> None:
    """The command's end, in one line, when the address cannot be listened on (a port in use,
    a host that is not this machine's or does not resolve), before anything starts."""
    import socket

    where = f"{host}:{port} (BLOOP_HTTP_HOST, BLOOP_HTTP_PORT or --host, --port)"
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        typer.echo(f"bloop: cannot listen on {where}: the host does not resolve ({exc})",
                   err=True)
        raise typer.Exit(2) from None
    for family, kind, proto, _, address in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
                probe.bind(address)
        except OSError as exc:
            typer.echo(f"bloop: cannot listen on {where}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None


def _run(services: list[str] | None, host: str | None, port: int | None, http_routes: bool) -> None:
    from bloop.platform.kit.gc_tuning import limit_malloc_arenas, tune_for_serving
    from bloop.platform.kit.logging import configure_logging
    from bloop.platform.kit.serving import HttptoolsMissing, http_protocol, serve

    limit_malloc_arenas()
    settings = _settings()
    try:
        http_protocol(settings.http)
    except HttptoolsMissing as exc:
        typer.echo(f"bloop: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.json_format)
    application = _create_app(settings, services, http_routes=http_routes)
    host = host or settings.http.host
    port = settings.http.port if port is None else port
    _check_listening(host, port)
    tune_for_serving()
    serve(application, host, port, settings.http)


Services = Annotated[list[str] | None, typer.Argument(help="Services to run (default: all).")]
Host = Annotated[str | None, typer.Option(help="Bind address (BLOOP_HTTP_HOST).")]
Port = Annotated[int | None, typer.Option(min=1, max=65535, help="Port (BLOOP_HTTP_PORT).")]


@app.command()
def serve(services: Services = None, host: Host = None, port: Port = None) -> None:
    """Run services with their routes, consumers and outbox relays (all of them by default)."""
    _run(services, host, port, http_routes=True)


@app.command()
def worker(service: Annotated[str, typer.Argument(help="The service whose consumers to run.")],
           host: Host = None, port: Port = None) -> None:
    """Run one service's consumers and outbox relay, with only /healthz, /readyz and /metrics.

    `bloop worker ai` runs AI jobs: it joins the `ai.jobs` consumer group (start more of them
    for more throughput) and picks up jobs a dead worker left behind."""
    _run([service], host, port, http_routes=False)


def _run_to_end(application: FastAPI, work: Callable[[FastAPI], Awaitable[T]]) -> T:
    """Runs `work` within the app's lifespan, then publishes the events it stored; a store that is
    down ends the command with one line, not a traceback."""
    from bloop.analysis import running

    async def go() -> T:
        async with running(application):
            return await work(application)

    return _until_done(go)


def _until_done(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs `work` to its end; a store that is down ends the command with one line."""
    from bloop.platform.kit.errors import StoreUnavailable, disk_unavailable, is_store_down

    try:
        return asyncio.run(work())
    except Exception as exc:
        if not is_store_down(exc):
            raise
        down = disk_unavailable(exc) or exc
        local = down if isinstance(down, StoreUnavailable) \
            and str(down.extra.get("store", "")).startswith(("sqlite", "disk")) else None
        if local is None:
            typer.echo(f"bloop: a store is down ({type(exc).__name__}); start it, or check its "
                       "URL in the settings", err=True)
        elif local.reason == "database is locked":
            typer.echo("bloop: a store is down (a file under BLOOP_DATA_DIR is locked by another "
                       "process); try again once it is done", err=True)
        else:
            typer.echo(f"bloop: a store is down ({local.extra['store']}: {local.reason}); free "
                       "space or check the files under BLOOP_DATA_DIR", err=True)
        raise typer.Exit(1) from None


@app.command()
def seed() -> None:
    """Seed the demo tenant (if absent), publish its events, and exit (beside `bloop serve`
    too)."""
    from bloop.platform.kit.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log.level, settings.log.json_format)

    async def seeded_at_start(_: FastAPI) -> None:
        return None

    _run_to_end(_create_app(settings, http_routes=True, seed=True, one_off=True), seeded_at_start)
    typer.echo("demo tenant ready")


def _with_identity(action: Callable[[IdentityService], Awaitable[T]]) -> T:
    """Runs `action` on the identity service of the configured stores, then publishes the events
    it stored; a refusal ends the command with its one-line reason."""
    from bloop.platform.identity.service import IdentityService
    from bloop.platform.kit.errors import Problem
    from bloop.platform.kit.logging import configure_logging

    settings = _settings()
    configure_logging("ERROR", settings.log.json_format)

    async def on_identity(application: FastAPI) -> T:
        identity = application.state.identity.state["service"]
        assert isinstance(identity, IdentityService)
        return await action(identity)

    try:
        return _run_to_end(_create_app(settings, ["identity"], http_routes=False, seed=False),
                           on_identity)
    except Problem as exc:
        typer.echo(f"bloop: {exc.detail}", err=True)
        raise typer.Exit(1) from None


def _valid(make: Callable[[], T]) -> T:
    from pydantic import ValidationError

    try:
        return make()
    except ValidationError as exc:
        err = exc.errors()[0]
        typer.echo(f"bloop: invalid {'.'.join(map(str, err['loc']))} {err.get('input')!r}: "
                   f"{err['msg']}", err=True)
        raise typer.Exit(2) from None


def _show_invitation(invitation: Invitation, token: str) -> None:
    from shlex import quote

    from bloop.platform.identity.passwords import MIN_LENGTH

    settings = _settings()
    url = (f"http://{settings.http.host}:{settings.http.port}"
           f"/v1/tenants/{invitation.tenant}/invitations/accept")
    body = ('{"token": "' + token + '", "display_name": "<your name>", '
            f'"password": "<a password of {MIN_LENGTH} or more characters>"}}')
    typer.echo(f"{invitation.email} is invited to {invitation.tenant} as "
               f"{', '.join(invitation.roles)}, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
               f"The invitation's token (shown only now): {token}\n"
               "They accept it, choosing their name and password, with:\n"
               f"  curl -s -X POST {quote(url)} -H 'content-type: application/json' \\\n"
               f"       -d {quote(body)}")


TenantId = Annotated[str, typer.Argument(help="The tenant's id, a slug such as acme-school.")]
InviteRoles = Annotated[list[str] | None, typer.Option(
    "--role", help="A role of the invited person (tenant_admin when none is given); repeat it "
    "for several. platform_admin lets them create tenants through the API.")]


@tenant_app.command("create")
def tenant_create(
    tenant: TenantId,
    name: Annotated[str, typer.Option(help="The tenant's display name.")],
    admin: Annotated[str, typer.Option(help="The email of its first admin, who is invited.")],
    role: InviteRoles = None,
) -> None:
    """Create a tenant and invite its first admin; prints the invitation to pass on."""
    from bloop.platform.identity.bootstrap import open_tenant
    from bloop.platform.identity.model import NewInvitation, NewTenant

    new = _valid(lambda: NewTenant(id=tenant, name=name))
    person = _valid(lambda: NewInvitation(email=admin, roles=role or ["tenant_admin"]))
    opened = _with_identity(lambda identity: open_tenant(identity, new, person))
    if opened.resumed:
        typer.echo(f"tenant {tenant} was there, with no one in it or invited (its admin's "
                   "invitation had failed): only inviting its admin")
    else:
        typer.echo(f"tenant {tenant} created")
    _show_invitation(opened.invitation, opened.token)


@tenant_app.command("list")
def tenant_list() -> None:
    """List the tenants: id and name, a line each."""
    from bloop.platform.identity.model import Tenant
    from bloop.platform.kit.pagination import every

    async def listed(identity: IdentityService) -> list[Tenant]:
        return await every(lambda after: identity.tenants(after=after, limit=500))

    for tenant in _with_identity(listed):
        typer.echo(f"{tenant.id}\t{tenant.name}")


@tenant_app.command("invite")
def tenant_invite(
    tenant: TenantId,
    email: Annotated[str, typer.Argument(help="The email of the person to invite.")],
    role: InviteRoles = None,
) -> None:
    """Invite someone into an existing tenant with any roles (say, an admin who lost access)."""
    from bloop.platform.identity.bootstrap import invite
    from bloop.platform.identity.model import NewInvitation

    person = _valid(lambda: NewInvitation(email=email, roles=role or ["tenant_admin"]))
    invitation, token = _with_identity(lambda identity: invite(identity, tenant, person))
    _show_invitation(invitation, token)


Names = Annotated[list[str] | None, typer.Argument(help="redis, kafka, neo4j, mongo, influxdb")]


Fresh = Annotated[bool, typer.Option(help="Start the servers started here with empty data.")]


@infra_app.command("up")
def infra_up(names: Names = None, fresh: Fresh = False) -> None:
    """Install (cached) and start the servers, reusing any already reachable."""
    from bloop import infra

    _settings()
    try:
        infra.up(names, fresh=fresh)
    except infra.InfraError as exc:
        typer.echo(f"bloop infra: {exc}", err=True)
        raise typer.Exit(1) from None


@infra_app.command("down")
def infra_down(names: Names = None) -> None:
    """Stop the servers `up` started."""
    from bloop import infra

    infra.down(names)


@infra_app.command("status")
def infra_status() -> None:
    """Say which servers are up, and which were started here."""
    from bloop import infra

    for name, state in infra.status().items():
        typer.echo(f"{name}: {state}")


@events_app.command("schemas")
def events_schemas(write: Annotated[bool, typer.Option(help="Write missing schema files.")] = False,
                   ) -> None:
    """Check each event type against its committed JSON Schema."""
    from bloop.platform.kit.events.schema_files import check_all, load_all_types

    load_all_types()
    problems = check_all(write_missing=write)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("event schemas compatible")


@events_app.command("redrive")
def events_redrive(
    topic: Annotated[str, typer.Argument(help="The topic whose dead letters to send back, "
                                              "such as content.events.")],
    group: Annotated[list[str] | None, typer.Option(
        help="Only those this consumer group dead-lettered (repeat for several).")] = None,
    reason: Annotated[list[str] | None, typer.Option(
        help="Only those dead-lettered for this reason (default: handler_failed).")] = None,
    dry_run: Annotated[bool, typer.Option(help="List them, send nothing.")] = False,
) -> None:
    """Send dead-lettered events back to their topic once what made them fail is fixed.

    The group that dead-lettered an event handles it again; groups that handled it drop it as
    a duplicate, by its id. Running it twice is harmless."""
    from bloop.platform.kit.events.redrive import HANDLER_FAILED, Redriven, redrive
    from bloop.platform.kit.events.schema_files import load_all_types
    from bloop.platform.kit.events.types import registry
    from bloop.platform.kit.logging import configure_logging
    from bloop.platform.kit.wiring import Platform

    load_all_types()
    if topic not in registry.topics():
        typer.echo(f"bloop: no topic {topic!r}; the topics are "
                   f"{', '.join(sorted(registry.topics()))}", err=True)
        raise typer.Exit(2)
    settings = _settings()
    configure_logging("ERROR", settings.log.json_format)

    _check_data_dir(settings)

    async def go() -> Redriven | str:
        platform = Platform(settings)
        try:
            await platform.start()
            refused = await _unknown_group(platform.bus, topic, group or (),
                                           settings.ai.worker_group)
            if refused is not None:
                return refused
            return await redrive(platform.bus, topic, groups=group or (),
                                 reasons=reason or (HANDLER_FAILED,), dry_run=dry_run)
        finally:
            await platform.close()

    done = _until_done(go)
    if isinstance(done, str):
        typer.echo(f"bloop: {done}", err=True)
        raise typer.Exit(2)
    for letter in done.matched:  # every group that dead-lettered an event, one line each
        typer.echo(letter.line())
    verb = "would send" if dry_run else "sent"
    left = ", ".join(f"{n} {r or 'unknown'}" for r, n in sorted(done.left.items()))
    letters = (f" ({len(done.matched)} dead letters)"
               if len(done.matched) != len(done.chosen) else "")
    typer.echo(f"{verb} {len(done.chosen)} back to {topic}{letters}"
               + (f"; left: {left}" if left else ""))


async def _unknown_group(bus: EventBus, topic: str, groups: Sequence[str],
                         ai_worker_group: str) -> str | None:
    """Why one of `groups` is refused (no service's consumer group reads `topic`, and none of
    its dead letters names it), or None."""
    from bloop.platform.consumer_groups import consumer_groups, subscribes
    from bloop.platform.kit.events.bus.port import DLQ_SUFFIX
    from bloop.platform.kit.events.redrive import DeadLetter

    if not groups:
        return None
    dead = {DeadLetter.of(m, topic + DLQ_SUFFIX).group for m in await bus.dead_letters(topic)}
    unknown = [g for g in groups if g not in dead and not subscribes(topic, g, ai_worker_group)]
    if not unknown:
        return None
    known = sorted((consumer_groups(topic, ai_worker_group) | dead) - {""})
    return (f"no consumer group {unknown[0]!r} reads {topic}; its groups are "
            f"{', '.join(known) or 'none'}")


def main() -> None:  # pragma: no cover
    app(prog_name="bloop")


if __name__ == "__main__":  # pragma: no cover
    main()
