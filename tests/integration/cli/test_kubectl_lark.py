"""`kubectl lark status|describe|refresh|validate` through the real kubectl binary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from lark_operator.vocabulary.hints import hint_for
from tests.helpers.env import Env
from tests.helpers.wait import always
from tests.integration.cli.conftest import Cli, row_of, stdout

pytestmark = pytest.mark.integration


def test_kubectl_discovers_the_plugin(cli: Cli) -> None:
    listed = cli.kubectl("plugin", "list")
    assert listed.returncode == 0, listed.stderr
    assert "kubectl-lark" in listed.stdout
    helped = cli.kubectl("lark", "--help")
    assert helped.returncode == 0
    for command in ("status", "refresh", "validate", "describe"):
        assert command in helped.stdout


def test_status_table_countdown_and_hint(cli: Cli, apps: Env) -> None:
    proc = cli.kubectl("lark", "status", "-n", apps.ns)
    assert proc.returncode == 0, stdout(proc)
    table, _, below = proc.stdout.partition("\n\n")
    header = table.splitlines()[0]
    for column in ("NAMESPACE", "NAME", "APP ID", "READY", "PHASE", "TOKEN EXPIRES IN"):
        assert column in header
    assert "APP AVAILABLE" in header
    assert header.split()[-3:] == ["POSTGRES", "REDIS", "RABBITMQ"]

    good = row_of(table, "good")
    assert good[:5] == [apps.ns, "good", "cli_cligood1", "True", "Ready"]
    assert good[5] in ("Available", "-"), good  # bot/v3/info answered, or not yet
    assert re.fullmatch(r"1h5\dm|2h", good[6]), good  # a fresh 7200 s token
    assert good[7:] == ["-", "-", "-"]  # no probes configured
    bad = row_of(table, "bad")
    assert bad[3:7] == ["False", "Failed", "-", "-"]  # no token: nothing to ask bot/v3/info

    # Below the table: the one LarkApp that is not Ready, its reason and what to do.
    assert "good:" not in below
    assert f"{apps.ns}/bad: InvalidCredentials — {hint_for('InvalidCredentials')}" in below

    # Scripts: JSON, and a non-zero exit when asked to fail on anything not Ready.
    doc = json.loads(cli.kubectl("lark", "status", "-n", apps.ns, "-o", "json").stdout)
    by_name = {i["name"]: i for i in doc["items"]}
    assert by_name["good"]["ready"] == "True" and by_name["good"]["hint"] is None
    assert 7000 < by_name["good"]["expires_in_seconds"] <= 7200
    assert by_name["bad"]["reason"] == "InvalidCredentials"
    assert doc["ready"] is False
    failing = cli.kubectl("lark", "status", "-n", apps.ns, "--fail-if-not-ready")
    assert failing.returncode == 1

    # -A lists this namespace among all.
    everywhere = cli.kubectl("lark", "status", "-A")
    assert row_of(everywhere.stdout, "good")[0] == apps.ns


def test_status_follows_kubeconfig_flags_and_context_namespace(
    cli: Cli, apps: Env, tmp_path: Path
) -> None:
    """As kubectl: the context's namespace is the default; --kubeconfig and --context
    choose the file and context even when KUBECONFIG points elsewhere."""
    cfg = yaml.safe_load(Path(cli.kubeconfig).read_text())
    ctx = cfg["contexts"][0]
    ctx["context"]["namespace"] = apps.ns
    cfg["contexts"].append({"name": "elsewhere", "context": {**ctx["context"], "namespace": "x"}})
    cfg["current-context"] = "elsewhere"
    copy = tmp_path / "kubeconfig"
    copy.write_text(yaml.safe_dump(cfg))

    proc = cli.kubectl(
        "lark", "status", "--kubeconfig", str(copy), "--context", ctx["name"],
        KUBECONFIG="/nonexistent",
    )  # fmt: skip
    assert proc.returncode == 0, stdout(proc)
    assert row_of(proc.stdout, "good")[0] == apps.ns

    empty = cli.kubectl("lark", "status", "--kubeconfig", str(copy))  # context 'elsewhere'
    assert empty.returncode == 0
    assert "No LarkApps found in namespace 'x'" in empty.stderr

    missing = cli.kubectl("lark", "status", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_refresh_wait_makes_exactly_one_upstream_call(cli: Cli, apps: Env) -> None:
    fingerprint = apps.kube.larkapp(apps.ns, "good")["status"]["token"]["fingerprint"]
    before = apps.emu.token_calls("cli_cligood1")

    proc = cli.kubectl("lark", "refresh", "good", "-n", apps.ns, "--wait", "--timeout", "30")
    assert proc.returncode == 0, stdout(proc)
    assert "refresh requested" in proc.stdout
    # The platform hands back the same token while more than 30 minutes remain.
    assert f"token {fingerprint} in Secret good-lark-token expires at" in proc.stdout
    assert apps.emu.token_calls("cli_cligood1") == before + 1

    annotations = apps.kube.larkapp(apps.ns, "good")["metadata"]["annotations"]
    requested = annotations["larkservice.io/refresh-requested-at"]
    assert annotations["larkservice.io/refresh-handled-at"] == requested
    always(lambda: apps.emu.token_calls("cli_cligood1") == before + 1, 2, what="nothing after it")

    # Without --wait: the annotation is set and the command returns at once.
    quick = cli.kubectl("lark", "refresh", "good", "-n", apps.ns)
    assert quick.returncode == 0
    new = apps.kube.larkapp(apps.ns, "good")["metadata"]["annotations"]
    assert new["larkservice.io/refresh-requested-at"] > requested


def test_refresh_wait_reports_a_failed_refresh(cli: Cli, apps: Env) -> None:
    proc = cli.kubectl("lark", "refresh", "bad", "-n", apps.ns, "--wait", "--timeout", "30")
    assert proc.returncode == 1
    assert "refresh failed: InvalidCredentials (code 10014)" in proc.stderr
    assert f"hint: {hint_for('InvalidCredentials')}" in proc.stderr


def test_describe_shows_conditions_token_and_events(cli: Cli, apps: Env) -> None:
    bad = cli.kubectl("lark", "describe", "bad", "-n", apps.ns)
    assert bad.returncode == 0, stdout(bad)
    text = bad.stdout
    assert re.search(r"^Ready: +False \(InvalidCredentials\)$", text, re.M)
    conditions = text.split("Conditions (oldest transition first):")[1].split("\nToken:")[0]
    for ctype in ("Ready", "CredentialsValid", "TokenReady"):
        assert ctype in conditions
    assert "InvalidCredentials" in conditions and f"hint: {hint_for('InvalidCredentials')}" in text
    assert "<no token yet>" in text
    last_error = text.split("Last Error:")[1]
    assert "Code:    10014" in last_error
    events = text.split("Events (oldest first):")[1]
    assert "CredentialsInvalid" in events and "Warning" in events

    good = cli.kubectl("lark", "describe", "good", "-n", apps.ns).stdout
    fingerprint = apps.kube.larkapp(apps.ns, "good")["status"]["token"]["fingerprint"]
    assert f"Fingerprint:     {fingerprint}" in good
    assert re.search(r"Expires At:\s+\S+Z \(in 1h5\dm|2h\)", good)
    assert "Next Refresh At:" in good
    events = good.split("Events (oldest first):")[1]
    assert "TokenRefreshed" in events and "Credentials accepted by the Open Platform" in events

    missing = cli.kubectl("lark", "describe", "nope", "-n", apps.ns)
    assert missing.returncode == 2
    assert f'LarkApp "nope" not found in namespace "{apps.ns}"' in missing.stderr


def test_validate_checks_credentials_against_the_platform(cli: Cli, apps: Env) -> None:
    ok = cli.kubectl("lark", "validate", "good", "-n", apps.ns)
    assert ok.returncode == 0, stdout(ok)
    assert ok.stdout.startswith(f"VALID: LarkApp {apps.ns}/good (cli_cligood1)")

    bad = cli.kubectl("lark", "validate", "bad", "-n", apps.ns)
    assert bad.returncode == 1
    assert "INVALID" in bad.stdout and "InvalidCredentials (code 10014)" in bad.stdout
    assert f"hint: {hint_for('InvalidCredentials')}" in bad.stdout
    doc = json.loads(cli.kubectl("lark", "validate", "bad", "-n", apps.ns, "-o", "json").stdout)
    assert doc["valid"] is False and doc["error"]["code"] == 10014

    apps.kube.put_secret(apps.ns, "bad-secret", {"other": "x"})
    no_key = cli.kubectl("lark", "validate", "bad", "-n", apps.ns)
    assert no_key.returncode == 2
    assert "has no non-empty key 'appSecret' (keys present: other)" in no_key.stderr
