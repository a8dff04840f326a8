"""`actk deploy|status|delete <target>`: argument parsing and rendering only.

Each group has one subcommand per cloud target: ``azure`` (Azure AI Foundry hosted agents)
and ``alibaba`` (Alibaba Cloud AgentRun runtimes); Anthropic comes later as a sibling. The
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
    """Print a deploy's result for machines, or the requests of a dry run; True if done."""
    if console.as_json:
        console.emit(result.to_dict())
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
