"""docs/ and README.md against the code: metric names, condition reasons, annotations.

Each test names what is out of step; the fix is in the docs or in the code, whichever is
wrong — never in this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lark_operator.vocabulary.hints import HINTS
from tests.helpers.metrics_registry import families, series_names

REPO = Path(__file__).resolve().parents[3]
DOCS = sorted((REPO / "docs").glob("*.md"))
README = REPO / "README.md"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"
METRICS_DOC = REPO / "docs" / "metrics.md"
CODE = REPO / "operator" / "lark_operator"

METRIC = re.compile(r"\blark_service_[a-z0-9_]*[a-z0-9]\b")
# `### InvalidCredentials`: a heading that is one CamelCase word is a condition reason.
REASON_HEADING = re.compile(r"^###\s+([A-Z][A-Za-z0-9]+)\s*$", re.M)
ANNOTATION = re.compile(r"\blarkservice\.io/[a-z0-9][-a-z0-9.]*[a-z0-9]\b")
API_VERSION = re.compile(r"^larkservice\.io/v\d+((alpha|beta)\d+)?$")


def doc_files() -> list[Path]:
    return [*DOCS, README]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_docs_exist() -> None:
    assert README.exists()
    assert TROUBLESHOOTING.exists() and METRICS_DOC.exists()


def runbook_column() -> str:
    """The first column of troubleshooting.md's runbook tables: what the original runbooks
    queried, quoted as they wrote it (names that may no longer exist)."""
    text = TROUBLESHOOTING.read_text()
    start = text.index("\n## From the original runbooks\n")
    section = text[start : text.index("\n## ", start + 1)]
    return "\n".join(
        re.split(r"(?<!\\)\|", line)[1] for line in section.splitlines() if line.startswith("| `")
    )


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_metric_names_in_docs_exist(path: Path) -> None:
    known = series_names()
    text = path.read_text()
    if path == TROUBLESHOOTING:
        # Quoted from the runbooks (each mapped to today's name beside it).
        for cell in runbook_column().splitlines():
            text = text.replace(cell, "")
    unknown = sorted({m for m in METRIC.findall(text) if m not in known})
    assert not unknown, f"{rel(path)} names metrics the operator does not export: {unknown}"


def reason_sections() -> list[str]:
    return REASON_HEADING.findall(TROUBLESHOOTING.read_text())


def test_troubleshooting_reasons_exist_in_hints() -> None:
    unknown = sorted(set(reason_sections()) - set(HINTS))
    assert not unknown, (
        f"docs/troubleshooting.md has sections for reasons hints.HINTS does not know: {unknown}"
    )


def test_every_hint_has_a_troubleshooting_section() -> None:
    missing = sorted(set(HINTS) - set(reason_sections()))
    assert not missing, (
        f"hints.HINTS reasons without a `### <Reason>` section in docs/troubleshooting.md: "
        f"{missing}"
    )


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_annotations_in_docs_exist_in_code(path: Path) -> None:
    code = "\n".join(p.read_text() for p in CODE.rglob("*.py"))
    named = {a for a in ANNOTATION.findall(path.read_text()) if not API_VERSION.match(a)}
    unknown = sorted(a for a in named if a not in code)
    assert not unknown, f"{rel(path)} names larkservice.io/ keys the code never uses: {unknown}"


def test_every_metric_is_documented() -> None:
    text = METRICS_DOC.read_text()
    documented = set(re.findall(r"^\|\s*`(lark_service_[a-z0-9_]+)`", text, re.M))
    missing = sorted(set(families()) - documented)
    assert not missing, f"metrics with no row in docs/metrics.md's table: {missing}"
    stale = sorted(documented - set(families()))
    assert not stale, f"docs/metrics.md documents metrics that do not exist: {stale}"


def test_every_runtime_metric_is_documented() -> None:
    """The process/Python metrics on the same registry (CPU and memory runbooks)."""
    text = METRICS_DOC.read_text()
    documented = set(re.findall(r"^\|\s*`((?:process|python)_[a-z0-9_]+)`", text, re.M))
    runtime = set(families(own=False))
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= runtime
    assert documented == runtime, (
        f"docs/metrics.md's runtime table: missing {sorted(runtime - documented)}, "
        f"stale {sorted(documented - runtime)}"
    )


@pytest.mark.parametrize("own", [True, False], ids=["lark_service", "runtime"])
def test_metric_table_matches_type_and_labels(own: bool) -> None:
    rows = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(
            r"^\|\s*`((?:lark_service|process|python)_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|",
            METRICS_DOC.read_text(),
            re.M,
        )
    }
    assert rows, "docs/metrics.md: no metric table found"
    for name, fam in families(own).items():
        if name not in rows:
            continue  # reported by test_every_metric_is_documented
        mtype, labels = rows[name]
        assert mtype == fam.type, f"docs/metrics.md: {name} is a {fam.type}, not a {mtype}"
        assert set(re.findall(r"`(\w+)`", labels)) == set(fam.labels), (
            f"docs/metrics.md: {name} has labels {list(fam.labels)}"
        )


def slugs(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)  # not in code
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_links_between_docs_resolve(path: Path) -> None:
    """Relative links (`other.md#anchor`, `#anchor`) point at a file and heading that exist;
    the alerts' runbook links and their troubleshooting sections depend on it."""
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s:]*\.md)?(?:#([^)\s]+))?\)", path.read_text()):
        dest = (path.parent / target).resolve() if target else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and anchor not in slugs(dest):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{rel(path)} has broken links: {sorted(set(broken))}"
