"""`lark-operator dev` without the dev tooling (an installed wheel, the image): one clear
line and exit 2, nothing started or created. tests/integration/chart/test_packaging.py
runs the same from the built wheel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lark_operator.cli.main import main


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_dev_without_the_dev_package_exits_2_with_one_line(
    action: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m == "lark_devenv" or m.startswith("lark_devenv.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lark_devenv", None)  # import lark_devenv now fails
    assert main(["dev", action, "--dir", str(tmp_path / "dev")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "source checkout" in err and "`make dev-up`" in err
    assert not (tmp_path / "dev").exists()
