"""README's "Install in a cluster" example, applied verbatim against the real apiserver,
the emulator (as the Open Platform), real PostgreSQL and Redis, and the operator; it must
reach what README shows at its top (`kubectl get larkapps`: orders Ready, probes Healthy).

Only what README tells a reader to fill in is substituted: `<App Secret>`, `<PostgreSQL
DSN>`, `<Redis URL>`, and `domain: feishu` becomes the emulator's URL (an allowed URL, as
the comment beside it says). The `helm install` line is the one step not run: with no node
to run its pod, the operator runs as a process with the chart's arguments instead."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.kube import Kube
from tests.helpers.wait import eventually

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
APP_ID, APP_SECRET = "cli_a1b2c3d4e5", "readme-app-secret-value"


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def shown_listing() -> list[list[str]]:
    """README's `kubectl get larkapps` at the top: the header, split on 2+ spaces, and rows."""
    (listing,) = [b for b in blocks(README.read_text(), "") if "$ kubectl get larkapps" in b]
    lines = listing.splitlines()[1:]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


TIME_OR_AGE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|\d+[smhd]")


def same_cell(want: str, have: str) -> bool:
    """The same cell, a timestamp or an age being any timestamp or age."""
    both_times = TIME_OR_AGE.fullmatch(want) and TIME_OR_AGE.fullmatch(have)
    return bool(both_times) or want == have


def substituted(script: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        assert script.count(placeholder) == 1, f"README's example has no single {placeholder!r}"
        script = script.replace(placeholder, value)
    return script


def test_readme_install_example_reaches_what_readme_shows(
    kube: Kube,
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
    emulator_factory: Any,
    operator_factory: Any,
    postgres_server: Any,
    redis_server: Any,
) -> None:
    install = section(README.read_text(), "Install in a cluster")
    helm, example = blocks(install, "sh")[:2]
    assert helm.strip().startswith("helm install lark-operator charts/lark-operator")

    emu = emulator_factory({APP_ID: APP_SECRET})
    operator_factory([namespace], allowed=[emu.url])
    script = substituted(
        example,
        {
            "'<App Secret>'": f"'{APP_SECRET}'",
            "'<PostgreSQL DSN>'": f"'{postgres_server.dsn}'",
            "'<Redis URL>'": f"'{redis_server.url}'",
            "domain: feishu ": f"domain: {emu.url} ",
        },
    )
    # The reader's current namespace: a kubeconfig whose context names the test's.
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    own = tmp_path / "kubeconfig"
    own.write_text(yaml.safe_dump(config))
    env = {"KUBECONFIG": str(own), "PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr

    shown = shown_listing()
    header, orders = shown[0], next(r for r in shown[1:] if r[0] == "orders")
    seen: dict[str, list[str]] = {}

    def as_shown() -> bool:
        out = subprocess.run(
            [str(VENV_BIN / "kubectl"), "get", "larkapps"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
        seen["header"] = rows[0] if rows else []
        seen["orders"] = next((r for r in rows[1:] if r[0] == "orders"), [])
        return (
            seen["header"] == header
            and len(seen["orders"]) == len(orders)
            and all(same_cell(w, h) for w, h in zip(orders, seen["orders"], strict=True))
        )

    try:
        eventually(as_shown, 60, what="kubectl get larkapps showing orders as README does")
    except AssertionError:
        raise AssertionError(f"README shows {header} {orders}; kubectl shows {seen}") from None

    # "Workloads mount orders-lark-token (keys tenant_access_token, expires_at, app_id)."
    mounted = re.search(r"Workloads mount `([\w-]+)` \(keys (.*?)\)", install)
    assert mounted, "README no longer says what workloads mount"
    token_secret = kube.secret(namespace, mounted.group(1))
    assert token_secret is not None
    assert sorted(token_secret) == sorted(re.findall(r"`(\w+)`", mounted.group(2)))
    assert token_secret["app_id"] == APP_ID
    assert APP_SECRET not in emu.logs() + str(kube.larkapp(namespace, "orders").get("status"))
