"""The `bloop` command: serve, worker, seed, infra, events."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bloop.platform.kit.settings import Settings, SettingsError

app = typer.Typer(help="Bloop, an open-source learning platform.", no_args_is_help=True,
                  add_completion=False)
infra_app = typer.Typer(help="Real servers for development and tests (no Docker needed).",
                        no_args_is_help=True)
events_app = typer.Typer(help="Event types and their committed JSON Schemas.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(events_app, name="events")


def _settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        typer.echo(f"bloop: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(services: list[str] | None, host: str | None, port: int | None, http_routes: bool) -> None:
    import uvicorn

    from bloop.platform.app import create_app
    from bloop.platform.kit.gc_tuning import tune_for_serving
    from bloop.platform.kit.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log.level, settings.log.json_format)
    try:
        application = create_app(settings, services, http_routes=http_routes)
    except ValueError as exc:
        typer.echo(f"bloop: {exc}", err=True)
        raise typer.Exit(2) from None
    tune_for_serving()
    uvicorn.run(application, host=host or settings.http.host, port=port or settings.http.port,
                log_config=None, access_log=False, lifespan="on")


Services = Annotated[list[str] | None, typer.Argument(help="Services to run (default: all).")]
Host = Annotated[str | None, typer.Option(help="Bind address (BLOOP_HTTP_HOST).")]
Port = Annotated[int | None, typer.Option(help="Port (BLOOP_HTTP_PORT).")]


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


@app.command()
def seed() -> None:
    """Seed the demo tenant (if absent), publish its events, and exit."""
    from bloop.platform.app import create_app
    from bloop.platform.kit.logging import configure_logging

    settings = _settings()
    configure_logging(settings.log.level, settings.log.json_format)
    application = create_app(settings, seed=True)

    async def go() -> None:
        async with application.router.lifespan_context(application):
            for relay in application.state.platform.relays:
                await relay.flush()

    asyncio.run(go())
    typer.echo("demo tenant ready")


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


def main() -> None:  # pragma: no cover
    app(prog_name="bloop")


if __name__ == "__main__":  # pragma: no cover
    main()
