"""The `actk` command line: argument parsing and rendering only.

Heavy modules (copier, docker, httpx, rich) are imported inside the commands that use them,
so `actk --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from toolkit import __version__
from toolkit.cli_common import DIRECTORY_OPTION, JSON_OPTION, handle_errors
from toolkit.console import non_interactive

if TYPE_CHECKING:
    from toolkit.build import BuildOptions
    from toolkit.console import Console
    from toolkit.push import PushResult


ENV_OPTION = click.option(
    "--env",
    "-e",
    "env",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="Set a variable in the container (repeatable); a bare NAME copies your value of it.",
)

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="actk")
def cli() -> None:
    """Agent Container Toolkit: scaffold agent containers that speak OpenAI Responses v1."""


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--defaults", is_flag=True, help="Take every default answer without prompting.")
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="KEY=VALUE",
    help="Answer a template question (repeatable); a,b answers a multi-select.",
)
@click.option("--force", is_flag=True, help="Render into a non-empty directory.")
@JSON_OPTION
@handle_errors
def new(directory: Path, defaults: bool, data: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Scaffold a new agent repository in DIRECTORY (default: the current one).

    Prompts for each answer on a terminal; in CI or without a terminal the defaults are taken.
    """
    from toolkit import scaffold

    questions = scaffold.template_questions(scaffold.template_dir())
    answers = scaffold.parse_data(list(data), questions)
    use_defaults = defaults or as_json or non_interactive()
    project = scaffold.new_project(directory, data=answers, use_defaults=use_defaults, force=force)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(project.path),
                    "answers": project.answers,
                    "next": project.next_steps(),
                }
            )
        )
        return
    click.secho(f"Created {project.answers.get('project_name')} in {project.path}", fg="green")
    click.echo("Next:")
    for step in project.next_steps():
        click.echo(f"  {step}")


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@JSON_OPTION
@handle_errors
def check(directory: Path, as_json: bool) -> None:
    """Validate DIRECTORY's agent.yaml (default: the current directory).

    Checks every field, then runs the repository's own start-up checks: structured-input
    declarations, each Handlebars template, and that every placeholder names a declared input.
    """
    from toolkit.agent_code import check_startup
    from toolkit.manifest import find_manifest, load_manifest

    manifest = load_manifest(directory)
    path = find_manifest(directory)
    templates_checked = check_startup(path.parent, path)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(path),
                    "valid": True,
                    "name": manifest.name,
                    "templates_checked": templates_checked,
                }
            )
        )
        return
    extra = "" if templates_checked else "; this repository has no template checks to run"
    click.secho(
        f"{path}: valid ({manifest.name}, model {manifest.model.provider}{extra})", fg="green"
    )


@cli.command()
@JSON_OPTION
def schema(as_json: bool) -> None:
    """Print the JSON Schema of agent.yaml (for editors and CI linters).

    The output is one JSON object either way: --json prints it on one line.
    """
    from toolkit.manifest import json_schema

    click.echo(json.dumps(json_schema(), indent=None if as_json else 2))


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@click.option(
    "--tag",
    "-t",
    "tags",
    multiple=True,
    metavar="TEMPLATE",
    help="A tag or full reference (repeatable); {git_sha}, {timestamp}, {version} are filled. "
    "Default: image.tag of agent.yaml. ':latest' is always added.",
)
@click.option("--platform", help="Target platform (default: build.platform, linux/amd64).")
@click.option("--base-image", help="The BASE_IMAGE build argument (default: build.base_image).")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE",
              help="A build argument (repeatable); overrides build.args.")
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path),
    help="PEM CA bundle that package installs in the build trust (default: SSL_CERT_FILE, "
    "REQUESTS_CA_BUNDLE or PIP_CERT). Passed as a BuildKit secret, never stored in the image.",
)
@click.option("--allow-secret-files", is_flag=True,
              help="Send .env files, keys and credential files in the context anyway.")
@click.option(
    "--builder",
    default="auto",
    show_default=True,
    metavar="auto|buildx|buildkit|api|NAME",
    help="buildx or buildkit (DOCKER_BUILDKIT=1, clients before 23.0) through the docker CLI, "
    "or the Engine API; auto picks the first BuildKit-capable client, else the API. Any other "
    "NAME is a buildx builder (docker buildx ls), e.g. a remote BuildKit.",
)
@click.option("--push", "push_after", is_flag=True,
              help="Push the built tags afterwards (as `actk push` does).")
@click.option(
    "--remote",
    type=click.Choice(["acr"]),
    help="Build in the cloud instead (no local Docker): acr = ACR Tasks in the registry of "
    "image.repository, which pushes the image itself.",
)
@JSON_OPTION
@handle_errors
def build(
    directory: Path,
    tags: tuple[str, ...],
    platform: str | None,
    base_image: str | None,
    build_args: tuple[str, ...],
    ca_bundle: Path | None,
    allow_secret_files: bool,
    builder: str,
    push_after: bool,
    remote: str | None,
    as_json: bool,
) -> None:
    """Build the agent's image from DIRECTORY (default: the current directory).

    Reads agent.yaml (image, build), runs the agent's start-up checks, refuses secret files in
    the build context, then builds with BuildKit when a docker client offers it, else through
    the Engine API.
    """
    from toolkit.build import BuildOptions, build_image
    from toolkit.build_context import human_bytes
    from toolkit.console import Console

    console = Console(as_json=as_json)
    options = BuildOptions(
        tags=list(tags),
        platform=platform,
        base_image=base_image,
        build_args=list(build_args),
        ca_bundle=ca_bundle,
        allow_secret_files=allow_secret_files,
        builder=builder,
    )
    if remote:
        _build_remotely(directory, options, console)
        return
    result = build_image(directory, options, console)
    console.success(
        f"built {result.image_id[:19]} ({human_bytes(result.size)}, {result.seconds:.1f} s, "
        f"{result.builder})"
    )
    for tag in result.tags:
        console.success(f"  {tag}")
    payload: dict[str, object] = result.to_dict()
    if push_after:
        import os

        from toolkit.push import PushOptions, push_image

        pushed = push_image(
            directory, PushOptions(images=result.tags, platform=platform), console, os.environ
        )
        _report_push(console, pushed)
        payload["push"] = pushed.to_dict()
    console.emit(payload)


def _build_remotely(directory: Path, options: BuildOptions, console: Console) -> None:
    """`actk build --remote acr`: ACR Tasks builds and pushes; the digest is recorded."""
    import os

    from toolkit.build import prepare_build
    from toolkit.builders import builder_mode
    from toolkit.push import record_image
    from toolkit.remote_build import remote_build
    from toolkit.tags import split_reference

    repo, manifest, request = prepare_build(directory, options, console)
    request.builder_name = builder_mode(options.builder)[1]
    result = remote_build(
        request,
        registry=manifest.image.registry,
        env=os.environ,
        console=console,
        arm_endpoint=os.environ.get("ACTK_AZURE_ARM_ENDPOINT") or None,
        secret_names=manifest.runtime.secrets,
        allow_secret_files=options.allow_secret_files,
    )
    payload = result.to_dict()
    if result.digest:
        repository = split_reference(result.image_names[0])[0]
        tags = [split_reference(name)[1] or "latest" for name in result.image_names]
        payload["state_file"] = str(
            record_image(repo, repository=repository, tags=tags, digest=result.digest,
                         platform=result.platform)
        )
        console.success(f"built and pushed {repository}@{result.digest} on ACR Tasks "
                        f"(run {result.run_id}, {result.seconds:.0f} s)")
    else:
        console.warn(f"ACR Tasks run {result.run_id} reported no digest; nothing recorded")
    console.emit(payload)


# --- registries: push -------------------------------------------------------------------------


@cli.command()
@click.argument("images", nargs=-1, metavar="[IMAGE:TAG]...")
@click.option("--username", "-u", help="Registry user name (with --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the registry password from stdin.")
@click.option(
    "--registry-kind",
    type=click.Choice(["auto", "azure", "alibaba", "generic"]),
    help="How to sign in (default: image.registry.kind of agent.yaml, else from the host).",
)
@click.option("--force", is_flag=True, help="Push even if the image's platform is not the "
              "manifest's.")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
              help="Retries after transient failures (resets, timeouts, 5xx), with backoff.")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def push(
    images: tuple[str, ...],
    username: str | None,
    password_stdin: bool,
    registry_kind: str | None,
    force: bool,
    retries: int,
    directory: Path,
    as_json: bool,
) -> None:
    """Push the agent's image to its registry and print the digest.

    IMAGE:TAG defaults to the tags `actk build` gives (image.repository with image.tag and
    latest). Credentials come from --username/--password-stdin, ACTK_REGISTRY_USERNAME and
    ACTK_REGISTRY_PASSWORD, the registry's own flow (Azure: Entra ID token exchange; Alibaba:
    temporary token from the Container Registry API), or your Docker config, in that order.
    They stay in memory: nothing is written to ~/.docker/config.json.
    """
    import os

    from toolkit.console import Console
    from toolkit.errors import UsageError
    from toolkit.push import PushOptions, push_image

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin read an empty password",
                             hint="echo \"$TOKEN\" | actk push --username NAME --password-stdin")
    elif username:
        raise UsageError("--username needs --password-stdin (passwords never go on a "
                         "command line)", hint="echo \"$TOKEN\" | actk push --username NAME "
                         "--password-stdin")
    console = Console(as_json=as_json)
    options = PushOptions(
        images=list(images),
        username=username,
        password=password,
        registry_kind=registry_kind,
        force=force,
        retries=retries,
    )
    result = push_image(directory, options, console, os.environ)
    _report_push(console, result)
    console.emit(result.to_dict())


def _report_push(console: Console, result: PushResult) -> None:
    from toolkit.build_context import human_bytes

    verified = "" if result.digest_verified else " (as reported by the engine)"
    console.success(f"pushed {result.reference}{verified}")
    console.success(
        f"  {result.layers_uploaded} layers uploaded ({human_bytes(result.bytes_uploaded)}), "
        f"{result.layers_existing} already there, {result.seconds:.1f} s"
    )


# --- local containers: run, invoke, smoke -----------------------------------------------------


def _show_logs(logs: str) -> None:
    """A container's output on stderr, framed, after something went wrong."""
    if logs.strip():
        click.echo("--- container logs ---", err=True)
        click.echo(logs.rstrip("\n"), err=True)
        click.echo("--- end of container logs ---", err=True)


@cli.command()
@click.argument("image", required=False)
@click.option(
    "--port",
    "-p",
    "host_port",
    type=click.IntRange(0, 65535),
    help="Host port on 127.0.0.1 (default: the container port; 0 lets the engine pick one).",
)
@ENV_OPTION
@click.option("--detach", "-d", is_flag=True, help="Leave it running and print its URL.")
@click.option(
    "--timeout", type=float, default=60, show_default=True, help="Seconds to wait for /readiness."
)
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def run(
    image: str | None,
    host_port: int | None,
    env: tuple[str, ...],
    detach: bool,
    timeout: float,
    directory: Path,
    as_json: bool,
) -> None:
    """Run IMAGE as a local container and stream its logs; Ctrl-C stops and removes it.

    IMAGE defaults to agent.yaml's image.repository with tag latest. The container gets
    runtime.port (published on 127.0.0.1), runtime.env, PORT, and each of runtime.secrets
    copied by name from your environment through the Engine API (never on a command line).
    """
    import os

    from toolkit.console import Console
    from toolkit.container import RunSpec
    from toolkit.errors import ContainerError
    from toolkit.run_command import parse_env, run_agent

    console = Console(as_json=as_json)
    spec = RunSpec.resolve(image, directory)
    overrides = parse_env(env, os.environ)
    try:
        info = run_agent(
            spec,
            console=console,
            host_port=host_port,
            env=overrides,
            detach=detach,
            ready_timeout=timeout,
        )
    except ContainerError as exc:
        if not as_json:
            _show_logs(exc.logs)
        raise
    if detach:
        console.emit(info)
        console.success(f"{info['name']} is running at {info['url']}")


@cli.command()
@click.argument("text")
@click.option(
    "--target",
    type=click.Choice(["local", "azure", "alibaba", "anthropic"]),
    help="Where the agent is: local (as --local); azure, through the Foundry agent's "
    "Responses endpoint (targets.azure); alibaba, through the AgentRun endpoint's invocation "
    "URL (targets.alibaba); anthropic, as a user message to the managed agent's session "
    "(targets.anthropic).",
)
@click.option("--local", is_flag=True, help="The local agent: http://127.0.0.1:<runtime.port>.")
@click.option("--url", help="The agent's base URL (/responses is added unless present).")
@click.option("--no-stream", is_flag=True, help="Ask for one JSON answer instead of events.")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A structured input (repeatable); VALUE is JSON when it parses, else a string.",
)
@click.option("--model", help="The request's model field.")
@click.option(
    "--timeout", type=float, default=120, show_default=True, help="Seconds to wait for an answer."
)
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def invoke(
    text: str,
    target: str | None,
    local: bool,
    url: str | None,
    no_stream: bool,
    inputs: tuple[str, ...],
    model: str | None,
    timeout: float,
    directory: Path,
    as_json: bool,
) -> None:
    """Send TEXT to the agent (POST /responses) and print the answer as it arrives.

    TEXT "-" reads it from stdin. Use --local for the agent `actk run` started, or --url, or
    --target azure|alibaba for the agent `actk deploy azure|alibaba` deployed. --target
    anthropic sends TEXT as a user message to the session `actk deploy anthropic` made and
    prints the agent's messages until the session is idle.
    """
    from toolkit import invoke as invoking
    from toolkit.console import Console
    from toolkit.errors import UsageError
    from toolkit.manifest import MANIFEST_NAME

    console = Console(as_json=as_json)
    remote = target in ("azure", "alibaba", "anthropic")
    if target == "anthropic" and (inputs or model):
        raise UsageError(
            "--input and --model do not apply to --target anthropic: the session's agent is "
            "pinned to the version `actk deploy anthropic` made",
            hint='actk invoke --target anthropic "hello"',
        )
    if remote and (local or url):
        raise UsageError(
            f"--target {target} goes through the cloud endpoint: drop --local/--url",
            hint=f'actk invoke --target {target} "hello"',
        )
    local = local or target == "local"
    if not remote and local == bool(url):
        raise UsageError(
            "say where the agent is: --local or --url URL (not both)",
            hint='actk invoke --local "hello" (after `actk run`), or --url http://host:8088',
        )
    if url is None and not remote:
        port = 8088
        if (directory / MANIFEST_NAME).is_file() or directory.is_file():
            from toolkit.manifest import load_manifest

            port = load_manifest(directory).runtime.port
        url = f"http://127.0.0.1:{port}"
    if text == "-":
        text = sys.stdin.read()
    printed: list[str] = []

    def show(delta: str) -> None:
        if not as_json:
            click.echo(delta, nl=False)
            printed.append(delta)

    if target == "anthropic":
        import os

        from toolkit.deploy.anthropic import invoke_anthropic

        result = invoke_anthropic(
            directory,
            text,
            env=os.environ,
            timeout=timeout,
            on_delta=None if no_stream else show,
            on_notice=None if as_json else console.warn,
        )
        if not as_json:
            for waiting in result.waiting:
                console.warn(
                    f"waiting for your action on {waiting.get('type') or 'event'} "
                    f"{waiting['event_id']}"
                    + (f": {waiting['name']} {json.dumps(waiting.get('input'))}"
                       if waiting.get("name") else "")
                    + " (confirm or deny it in the Claude Console, or with a "
                    "user.tool_confirmation event)"
                )
    elif remote:
        import os

        from toolkit.deploy.alibaba import invoke_alibaba
        from toolkit.deploy.azure import invoke_azure

        # invoke_alibaba reads ACTK_ALIBABA_AGENTRUN_ENDPOINT from env itself.
        invoke_remote = invoke_azure if target == "azure" else invoke_alibaba
        result = invoke_remote(
            directory,
            text,
            env=os.environ,
            stream=not no_stream,
            structured_inputs=invoking.parse_inputs(inputs),
            model=model,
            timeout=timeout,
            on_delta=show,
        )
    else:
        assert url is not None
        result = invoking.invoke(
            url,
            text,
            stream=not no_stream,
            structured_inputs=invoking.parse_inputs(inputs),
            model=model,
            timeout=timeout,
            on_delta=show,
        )
    if as_json:
        console.emit(result.to_dict())
        return
    if no_stream or not printed:
        click.echo(result.output_text, nl=False)
    click.echo()
    if result.status != "completed":
        console.warn(f"the response ended with status {result.status}")


@cli.command()
@click.argument("image", required=False)
@click.option(
    "--timeout",
    type=float,
    default=30,
    show_default=True,
    help="Seconds to wait for /readiness, and for each request.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(0, 3600),
    help="DRAIN_TIMEOUT given to the container (default: runtime.env's, else 10); SIGTERM must "
    "end it within that plus 3 s.",
)
@click.option(
    "--read-only/--no-read-only",
    default=True,
    show_default=True,
    help="Run with a read-only root filesystem and a tmpfs /tmp, as cloud runtimes may.",
)
@ENV_OPTION
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def smoke(
    image: str | None,
    timeout: float,
    drain_timeout: float | None,
    read_only: bool,
    env: tuple[str, ...],
    directory: Path,
    as_json: bool,
) -> None:
    """Start IMAGE, check the container contract, and remove it.

    IMAGE defaults to agent.yaml's image.repository with tag latest. Checks readiness, every
    health path, a JSON and a streamed response (exact event order), the declared structured
    inputs, the error shape of malformed JSON, and that SIGTERM ends it with exit code 0.
    Exits 6 naming the failed checks, after printing the container's logs. --env overrides the
    container's settings, e.g. --env MODEL_PROVIDER=echo where the model's key is not at hand
    (a pull request from a fork).
    """
    import os

    from toolkit.console import Console
    from toolkit.container import RunSpec, sigterm_as_interrupt
    from toolkit.errors import SmokeError
    from toolkit.run_command import parse_env
    from toolkit.smoke import run_smoke

    console = Console(as_json=as_json)
    spec = RunSpec.resolve(image, directory)
    overrides = parse_env(env, os.environ)

    def started(container: Any) -> None:
        console.detail(f"{container.name} on {container.url}")
        for name in container.missing_secrets:
            console.warn(f"secret {name} is not set in your environment; smoke runs without it")

    try:
        with sigterm_as_interrupt(), console.status(f"Smoke-testing {spec.image}"):
            report = run_smoke(
                spec, timeout=timeout, drain=drain_timeout, read_only=read_only, on_start=started,
                env=overrides,
            )
    except KeyboardInterrupt:
        click.echo("interrupted: the container was removed", err=True)
        sys.exit(130)
    rows = [
        (check.name, "PASS" if check.passed else "FAIL", f"{check.seconds:.2f}", check.detail)
        for check in report.checks
    ]
    console.table(f"actk smoke {spec.image}", ["check", "result", "seconds", "detail"], rows)
    console.emit(report.to_dict())
    if report.passed:
        console.success(f"all {len(report.checks)} checks passed")
        return
    if as_json:
        sys.exit(SmokeError.exit_code)
    _show_logs(report.logs)
    failed = report.failed
    raise SmokeError(
        f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}",
        hint="the container's logs are above; `actk run` and `actk invoke --local` reproduce "
        "a request by hand",
    )


# --- cloud targets: deploy, status, delete (toolkit/cli_targets.py) ----------------------------

from toolkit.cli_targets import delete, deploy, status  # noqa: E402

cli.add_command(deploy)
cli.add_command(status)
cli.add_command(delete)

# --- the Anthropic self-hosted worker (toolkit/cli_worker.py) --------------------------------

from toolkit.cli_worker import worker  # noqa: E402

cli.add_command(worker)

# --- CI and the template lifecycle (toolkit/cli_ci.py, toolkit/cli_update.py) ---------------

from toolkit.cli_ci import ci  # noqa: E402
from toolkit.cli_update import update  # noqa: E402

cli.add_command(ci)
cli.add_command(update)

from toolkit.cli_logs import install as install_logs_and_verbose  # noqa: E402

install_logs_and_verbose(cli)  # `actk logs`, and --verbose on every command: keep it last


def main() -> None:
    cli(prog_name="actk")
