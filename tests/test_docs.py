"""README.md and docs/*.md: every relative link reaches a file of the repository and, with a #fragment, one of
that file's headings (GitHub's anchors), so that moving a section between the two cannot leave a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of `markdown` (outside code fences): lower case, punctuation but
    hyphens and underscores dropped, spaces as hyphens, a repeated heading's anchor suffixed -1, -2, …"""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not (m := re.match(r"#{1,6} (.+)", line)):
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", "")).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_github_anchors_follow_githubs_rules():
    text = "# Performance, measured\n## The quick profile, stage by stage\n```\n# not a heading\n```\n## GPU\n### GPU\n"
    assert github_anchors(text) == {"performance-measured", "the-quick-profile-stage-by-stage", "gpu", "gpu-1"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading(doc: Path):
    dead = []
    # links of the text only: not `[a](b)` inside code spans or fenced blocks, which no reader follows
    text = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M))
    links = LINK.findall(text)
    assert links, f"{doc.relative_to(REPO)}: no links found (the pattern or the stripping is off)"
    for target in links:
        if re.match(r"[a-z]+:", target):  # http(s):, mailto: …
            continue
        path, _, fragment = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists() or REPO not in file.parents:
            dead.append(f"{target} (no file {path})")
        elif fragment and file.suffix == ".md" and fragment not in github_anchors(file.read_text()):
            dead.append(f"{target} (no heading #{fragment} in {file.relative_to(REPO)})")
    assert not dead, f"{doc.relative_to(REPO)}: dead links: {dead}"


def test_readmes_step_time_table_is_the_committed_cpu_run(monkeypatch, capsys):
    """README's step times per paper are `replab bench --show docs/bench/paper-cpu.json
    docs/bench/paper-cpu-intel.json --markdown` (the two CPUs' committed runs), row for row: a new CPU run committed
    there, or a hand edit of either, cannot leave the two apart."""
    from replab import bench

    monkeypatch.chdir(REPO)
    bench.show(["docs/bench/paper-cpu.json", "docs/bench/paper-cpu-intel.json"], markdown=True)
    table = capsys.readouterr().out.strip().splitlines()
    readme = (REPO / "README.md").read_text().splitlines()
    assert table[0] in readme, "README.md has no step-time table of docs/bench/paper-cpu*.json (its header line)"
    start = readme.index(table[0])
    assert readme[start:start + len(table)] == table
    assert not readme[start + len(table)].startswith("|")  # no row of README's own after the printed ones
