"""kubectl_plugin/__init__.py: the flags, usage errors, and no kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from lark_operator.cli.kubectl_plugin import build_parser, main


def test_flags_before_or_after_the_command() -> None:
    parser = build_parser()
    after = parser.parse_args(["status", "-n", "x", "--context", "c"])
    before = parser.parse_args(["-n", "x", "--context", "c", "status"])
    for args in (after, before):
        assert (args.namespace, args.context) == ("x", "c")
    args = parser.parse_args(["refresh", "app", "--wait"])
    assert args.name == "app" and args.wait and args.timeout == 60.0


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["status", "-A", "-n", "x"])
    assert exc.value.code == 2
    assert "do not go together" in capsys.readouterr().err


def test_no_kubeconfig_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["status"]) == 2
    assert "no kubeconfig" in capsys.readouterr().err
