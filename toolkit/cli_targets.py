"""`actk deploy|status|delete <target>`: argument parsing and rendering only.

Each group has one subcommand per cloud target: ``azure`` (Azure AI Foundry hosted agents),
``alibaba`` (Alibaba Cloud AgentRun runtimes) and ``anthropic`` (Anthropic managed agents). The
work happens in :mod:`toolkit.deploy`, imported when a command runs, so `actk --help` stays
fast.
``toolkit.cli`` registers these groups; the options and error handler both modules use live in
:mod:`toolkit.cli_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from toolkit.cli_common import DIRECTORY_OPTION, JSON_OPTION, handle_errors

if TYPE_CHECKING:
    from toolkit.console import Console
    from toolkit.deploy.core import DeployResult

FEATURES_OPTION = click.option(
    "--features",
    metavar="VALUE",
    help="Send the Foundry-Features opt-in header with this value (HostedAgents=V1Preview for "
    "projects that still gate hosted agents, AgentEndpoints=V1Preview where the endpoint's "
    "PATCH is still gated; comma-separated). Default: targets.azure.foundry_features.",
)


def _shown_as_json_or_dry_run(result: DeployResult, console: Console) -> bool:
    """Print a deploy's result for machines, or the requests of a dry run; True if done.
    (``emit`` also records the result in CI's job summary, with or without ``--json``.)"""
    console.emit(result.to_dict())
    if console.as_json:
        return True
    if result.dry_run:
        for request in result.requests:
            click.echo(request.render())
            click.echo()
        console.success("dry run: nothing was sent")
        return True
    return False


@click.group()
def deploy() -> None:
    """Deploy the agent's pushed image to a cloud agent runtime."""


@click.group()
def status() -> None:
    """Show what is deployed on a cloud agent runtime."""


@click.group()
def delete() -> None:
    """Delete what was deployed on a cloud agent runtime."""


# --- azure ------------------------------------------------------------------------------------


@deploy.command("azure")
@click.option("--dry-run", is_flag=True,
              help="Print the exact requests (secrets redacted) and send nothing.")
@click.option("--image", metavar="REFERENCE",
              help="Deploy this image instead of the digest `actk push` recorded.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the version is active (api v1; then the agent endpoint is "
              "pointed at it) or its container has started (2025-11-15-preview).")
@click.option("--timeout", type=click.FloatRange(1, 7200), default=600, show_default=True,
              help="Seconds to wait with --wait.")
@FEATURES_OPTION
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def deploy_azure(
    dry_run: bool,
    image: str | None,
    wait: bool,
    timeout: float,
    features: str | None,
    directory: Path,
    as_json: bool,
) -> None:
    """Register the image as an Azure AI Foundry hosted agent version.

    Reads targets.azure of agent.yaml (project_endpoint, api v1 or 2025-11-15-preview,
    protocol_version, agent_name) and the image digest `actk push` recorded. Checks the request
    as the service would, then creates a version only when the latest one differs (image,
    cpu/memory, environment, protocols). On api v1, once the version is active, the agent
    endpoint's version selector sends all traffic to it (unless it already does).
    runtime.secrets are read from your environment and sent as environment variables; they
    never appear in output. The token comes from AZURE_AI_ACCESS_TOKEN, else azure-identity
    (pip install 'agent-container-toolkit[azure]').
    """
    import os

    from toolkit.console import Console
    from toolkit.deploy.azure import AzureOptions, deploy_azure

    console = Console(as_json=as_json)
    options = AzureOptions(
        image=image, dry_run=dry_run, wait=wait, timeout=timeout, features=features
    )
    result = deploy_azure(directory, options, console, os.environ)
    if _shown_as_json_or_dry_run(result, console):
        return
    what = {
        "create": f"version {result.version}",
        "start": f"version {result.version} (container started)",
        "wait": f"version {result.version}",
        "unchanged": f"version {result.version} (unchanged, no new version)",
    }.get(result.action, f"version {result.version}")
    console.success(f"{result.details.get('agent')}: {what} is {result.status}")
    traffic = result.details.get("traffic") or {}
    if traffic.get("version"):
        how = "moved now" if traffic["changed"] else "already"
        click.echo(f"traffic: all to version {traffic['version']} ({how})")
    if result.endpoint:
        click.echo(f"responses endpoint: {result.endpoint}")


@status.command("azure")
@FEATURES_OPTION
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def status_azure(features: str | None, directory: Path, as_json: bool) -> None:
    """List the agent's versions in the Foundry project, newest first, with their status."""
    import os

    from toolkit.console import Console
    from toolkit.deploy.azure import azure_status

    console = Console(as_json=as_json)
    report = azure_status(directory, os.environ, features=features)
    if as_json:
        console.emit(report)
        return
    if not report["exists"]:
        console.warn(f"{report['agent']} has no versions in {report['project_endpoint']}; "
                     "deploy it with `actk deploy azure`")
        return
    rows = [
        (
            ("* " if row["deployed"] else "  ") + row["version"],
            row["status"] or "-",
            row["created_at"] or "-",
            f"{row['cpu'] or '-'} / {row['memory'] or '-'}",
            row["image"] or "-",
        )
        for row in report["versions"]
    ]
    console.table(
        f"{report['agent']} (api {report['api']})",
        ["version", "status", "created (UTC)", "cpu / memory", "image"],
        rows,
    )
    for row in report["versions"]:
        if row["reason"]:
            console.warn(f"version {row['version']} failed: {row['reason']}")
    click.echo(f"responses endpoint: {report['endpoint']}")


@delete.command("azure")
@click.option("--version", "version", metavar="N",
              help="Delete this version only (default: the whole agent, every version).")
@click.option("--force", is_flag=True,
              help="Delete even while sessions are active, ending them (on the preview: stop "
              "the version's container first).")
@click.option("--yes", "-y", is_flag=True,
              help="Do not ask before deleting the whole agent.")
@FEATURES_OPTION
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def delete_azure(
    version: str | None,
    force: bool,
    yes: bool,
    features: str | None,
    directory: Path,
    as_json: bool,
) -> None:
    """Delete a version of the agent, or the agent with every version.

    Foundry refuses (409) while sessions are active; --force ends them.
    """
    import os

    from toolkit.console import Console, non_interactive
    from toolkit.deploy.azure import delete_azure

    console = Console(as_json=as_json)
    if version is None and not (yes or as_json or non_interactive()):
        click.confirm("Delete the agent and every one of its versions?", abort=True, err=True)
    report = delete_azure(
        directory, os.environ, console, version=version, force=force, features=features
    )
    if as_json:
        console.emit(report)
        return
    what = f"version {version} of {report['agent']}" if version else f"the agent {report['agent']}"
    console.success(f"deleted {what}")


# --- alibaba ----------------------------------------------------------------------------------


@deploy.command("alibaba")
@click.option("--dry-run", is_flag=True,
              help="Print the exact signed requests (secrets redacted) and send nothing.")
@click.option("--image", metavar="REFERENCE",
              help="Deploy this image instead of the digest `actk push` recorded.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the runtime is READY, then create or update its endpoint.")
@click.option("--timeout", type=click.FloatRange(1, 7200), default=900, show_default=True,
              help="Seconds to wait with --wait.")
@click.option("--publish/--no-publish", default=None,
              help="Publish a runtime version after the update (default: targets.alibaba.publish).")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def deploy_alibaba(
    dry_run: bool,
    image: str | None,
    wait: bool,
    timeout: float,
    publish: bool | None,
    directory: Path,
    as_json: bool,
) -> None:
    """Create or update the agent's Alibaba Cloud AgentRun runtime, then its endpoint.

    Reads targets.alibaba of agent.yaml (region, cpu, memory, network, session, health check,
    log, role and the other runtime settings) and the image digest `actk push` recorded. The
    runtime is looked up by name and created or updated only when something differs; once it
    is READY its endpoint is created or pointed at the latest version, and the invoke URL is
    printed. Keys come from ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET (/ ALIBABA_CLOUD_SECURITY_TOKEN)
    or the alibabacloud credentials chain; runtime.secrets are sent as environment variables
    and never printed.
    """
    import os

    from toolkit.console import Console
    from toolkit.deploy.alibaba import AlibabaOptions, deploy_alibaba

    console = Console(as_json=as_json)
    options = AlibabaOptions(
        image=image, dry_run=dry_run, wait=wait, timeout=timeout, publish=publish
    )
    result = deploy_alibaba(directory, options, console, os.environ)
    if _shown_as_json_or_dry_run(result, console):
        return
    what = {"create": "created", "update": "updated", "wait": "waited for"}
    console.success(
        f"{result.details.get('runtime')}: {result.status} "
        f"({what.get(result.action, result.action)})"
    )
    if result.details.get("published_version"):
        click.echo(f"published version: {result.details['published_version']}")
    if result.endpoint:
        click.echo(f"invoke URL: {result.endpoint}")


@status.command("alibaba")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def status_alibaba(directory: Path, as_json: bool) -> None:
    """Show the AgentRun runtime, its endpoints and its published versions."""
    import os

    from toolkit.console import Console
    from toolkit.deploy.alibaba import alibaba_status

    console = Console(as_json=as_json)
    report = alibaba_status(directory, os.environ)
    if as_json:
        console.emit(report)
        return
    if not report["exists"]:
        console.warn(f"there is no runtime {report['runtime']} in {report['region']}; "
                     "deploy it with `actk deploy alibaba`")
        return
    console.table(
        f"{report['runtime']} ({report['region']})",
        ["status", "image", "cpu / memory", "updated"],
        [(report["status"] or "-", report["image"] or "-",
          f"{report['cpu']} / {report['memory']} MB", report["updated_at"] or "-")],
    )
    if report.get("status_reason"):
        console.warn(f"reason: {report['status_reason']}")
    if report["endpoints"]:
        console.table(
            "endpoints",
            ["name", "status", "target version", "URL"],
            [(e["name"], e["status"] or "-", e["target_version"] or "-", e["url"] or "-")
             for e in report["endpoints"]],
        )


@delete.command("alibaba")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting the runtime.")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def delete_alibaba(yes: bool, directory: Path, as_json: bool) -> None:
    """Delete the AgentRun runtime and its endpoints (endpoints first)."""
    import os

    from toolkit.console import Console, non_interactive
    from toolkit.deploy.alibaba import delete_alibaba

    console = Console(as_json=as_json)
    if not (yes or as_json or non_interactive()):
        click.confirm("Delete the runtime and its endpoints?", abort=True, err=True)
    report = delete_alibaba(directory, os.environ, console)
    if as_json:
        console.emit(report)
        return
    if not report["existed"]:
        console.success(f"there was no runtime {report['runtime']}: nothing to delete")
        return
    console.success(
        f"deleted {report['runtime']} and {len(report['endpoints_deleted'])} endpoint(s)"
    )


# --- anthropic --------------------------------------------------------------------------------


@deploy.command("anthropic")
@click.option("--dry-run", is_flag=True,
              help="Print the exact requests (the API key redacted) and send nothing.")
@click.option("--image", metavar="REFERENCE",
              help="Record this image instead of the digest `actk push` recorded (the session's "
              "actk_image; what `actk worker` runs for a self_hosted environment).")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def deploy_anthropic(dry_run: bool, image: str | None, directory: Path, as_json: bool) -> None:
    """Register the agent with Anthropic managed agents: environment, agent, session.

    Reads targets.anthropic of agent.yaml. The environment (cloud: the agent's run-time
    requirements.txt lines as pip packages, plus the listed packages and networking; or
    self_hosted: the tools run in the agent's own image through `actk worker`) and the agent
    are found by the ids .actk/state.json records, else by name, and created or updated only
    when something differs (an agent update makes a new version). The session is pinned to
    that agent version and reused while it stays usable. The API key comes from
    ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL changes the API base) and is never printed.
    """
    import os

    from toolkit.console import Console
    from toolkit.deploy.anthropic import AnthropicOptions, deploy_anthropic

    console = Console(as_json=as_json)
    options = AnthropicOptions(image=image, dry_run=dry_run)
    result = deploy_anthropic(directory, options, console, os.environ)
    if _shown_as_json_or_dry_run(result, console):
        return
    details = result.details
    environment, agent, session = details["environment"], details["agent"], details["session"]
    console.table(
        "Anthropic managed agent",
        ["resource", "name", "id", "what happened"],
        [
            ("environment", f"{environment['name']} ({environment['type']})", environment["id"],
             _what(environment["action"], environment.get("changes"))),
            ("agent", f"{agent['name']} (version {agent['version']})", agent["id"],
             _what(agent["action"], agent.get("changes"))),
            ("session", session["title"] or "-", session["id"], _what(session["action"], None)),
        ],
    )
    console.success(f"session {session['id']} is {session['status'] or 'ready'}: "
                    'actk invoke --target anthropic "hello"')


def _what(action: str, changes: list[str] | None) -> str:
    text = {"create": "created", "update": "updated", "unchanged": "unchanged",
            "reuse": "reused"}.get(action, action)
    return f"{text} ({', '.join(changes)})" if changes and action == "update" else text


@status.command("anthropic")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def status_anthropic(directory: Path, as_json: bool) -> None:
    """Show the environment, the agent (version, model, archived) and the session; for a
    self_hosted environment also its work queue (with ANTHROPIC_ENVIRONMENT_KEY)."""
    import os

    from toolkit.console import Console
    from toolkit.deploy.anthropic import anthropic_status

    console = Console(as_json=as_json)
    report = anthropic_status(directory, os.environ)
    if as_json:
        console.emit(report)
        return
    environment, agent, session = report["environment"], report["agent"], report["session"]
    if not (environment["exists"] or agent["exists"]):
        console.warn(f"there is no environment {environment['name']} or agent {agent['name']} "
                     f"at {report['api_base']}; deploy them with `actk deploy anthropic`")
        return
    rows = []
    if environment["exists"]:
        rows.append(("environment", environment["name"], environment["id"],
                     f"{environment['type']}" + (", archived" if environment["archived"] else "")))
    if agent["exists"]:
        rows.append(("agent", agent["name"], agent["id"],
                     f"version {agent['version']}, model {agent['model']}"
                     + (", archived" if agent["archived"] else "")))
    if session["exists"]:
        rows.append(("session", session["title"] or "-", session["id"],
                     f"{session['status']}, agent version {session['agent_version']}"
                     + (", archived" if session["archived"] else "")))
    console.table(f"Anthropic managed agent ({report['api_base']})",
                  ["resource", "name", "id", "state"], rows)
    if not session["exists"]:
        console.warn("no session is recorded (or it is gone): `actk deploy anthropic` creates one")
    queue = report.get("work_queue")
    if isinstance(queue, dict):
        if "error" in queue:
            console.warn(f"work queue: {queue['error']} ({queue.get('hint') or ''})")
        else:
            click.echo(f"work queue: {queue.get('depth')} waiting, {queue.get('pending')} being "
                       f"handled, {queue.get('workers_polling')} worker(s) polling")


@delete.command("anthropic")
@click.option("--delete-sessions", is_flag=True,
              help="Also delete the sessions actk made (the recorded one and every session of the "
              "agent with actk_image metadata), so the environment can be deleted.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before archiving and deleting.")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def delete_anthropic(delete_sessions: bool, yes: bool, directory: Path, as_json: bool) -> None:
    """Archive the agent (the API has no agent delete), then delete the environment when no
    session references it, else archive it; the report says which and why. Safe to run
    again after a partial failure."""
    import os

    from toolkit.console import Console, non_interactive
    from toolkit.deploy.anthropic import delete_anthropic

    console = Console(as_json=as_json)
    if not (yes or as_json or non_interactive()):
        what = "archive the agent, delete its sessions" if delete_sessions else "archive the agent"
        click.confirm(f"{what[0].upper()}{what[1:]} and delete or archive the environment?",
                      abort=True, err=True)
    report = delete_anthropic(directory, os.environ, console, delete_sessions=delete_sessions)
    if as_json:
        console.emit(report)
        return
    agent, environment = report["agent"], report["environment"]
    click.echo(f"agent {agent['name']}: {agent['outcome']}")
    for session in report["sessions"]:
        click.echo(f"session {session['id']}: {session['outcome']}")
    line = f"environment {environment['name']}: {environment['outcome']}"
    click.echo(line + (f" ({environment['why']})" if environment.get("why") else ""))
