#!/usr/bin/env python3
"""Build sniffer/data/operations.json from the OpenStack API reference sources.

    python3 scripts/build_apiref.py keystone=PATH glance=PATH nova=PATH neutron-lib=PATH \\
        cinder=PATH placement=PATH swift=PATH

Each PATH is a git checkout (or bare mirror) of the project; its `api-ref/source` tree at HEAD
is read: every `.. rest_method:: METHOD /path/{param}` under a section title becomes one
operation with its service type, method, path template, title, and the URL of the operation in
the published API reference (the page that includes the file, the title's anchor). The commit of
each project is recorded in the output, so the table can be rebuilt and compared.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sniffer.openstack import services  # noqa: E402

OUTPUT = ROOT / "sniffer" / "data" / "operations.json"
DOCS = "https://docs.openstack.org/api-ref"
# project -> the official service type of what its api-ref documents (in data/openstack.toml),
# which is also the name its API reference is published under
PROJECTS = {service.api_ref: service.types[0] for service in services() if service.api_ref}
REST_METHOD = re.compile(r"^\.\. rest_method::\s+([A-Z]+)\s+(\S+)", re.M)
TITLE_RULE = re.compile(r"^([=\-~^\"'`#*+]){3,}\s*$")
INCLUDE = re.compile(r"^\.\. include::\s+(\S+\.inc)\s*$", re.M)


def git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True, text=True
    ).stdout


def anchor(title: str) -> str:
    """The id docutils gives a section title."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def titled(title: str) -> str:
    """Every word capitalised, the rest kept (`Show image` -> `Show Image`, `IDs` stays)."""
    return " ".join(word[:1].upper() + word[1:] for word in title.split())


def pages(repo: str, files: list[str]) -> dict[str, str]:
    """Each included .inc file -> the .rst page (without suffix) that includes it."""
    found = {}
    for path in files:
        if path.endswith(".rst"):
            directory = path.rsplit("/", 1)[0]
            for included in INCLUDE.findall(git(repo, "show", f"HEAD:{path}")):
                found[f"{directory}/{included}"] = path[: -len(".rst")]
    return found


def operations_in(text: str) -> list[tuple[str, str, str]]:
    """(title, method, template) for every rest_method, under the nearest section title."""
    lines = text.splitlines()
    found, title = [], None
    for number, line in enumerate(lines):
        if TITLE_RULE.match(line) and number > 0 and lines[number - 1].strip():
            previous = lines[number - 1].strip()
            if len(line.strip()) >= len(previous) and not TITLE_RULE.match(previous):
                title = previous
        match = REST_METHOD.match(line)
        if match and title:
            found.append((title, match.group(1), match.group(2)))
    return found


def build(repos: dict[str, str]) -> dict:
    operations, sources = [], []
    for project, repo in repos.items():
        service = published = PROJECTS[project]
        commit = git(repo, "rev-parse", "HEAD").strip()
        date = git(repo, "log", "-1", "--format=%cs").strip()
        sources.append({"project": f"openstack/{project}", "commit": commit, "date": date})
        files = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "api-ref/source").split()
        including = pages(repo, files)
        for path in files:
            if not path.endswith(".inc") or path not in including:
                continue
            page = including[path][len("api-ref/source/") :]
            url = f"{DOCS}/{published}/{page}.html"
            if page == "index":
                url = f"{DOCS}/{published}/"
            for title, method, template in operations_in(git(repo, "show", f"HEAD:{path}")):
                name = anchor(title)
                operations.append(
                    {
                        "service": service,
                        "method": method,
                        "template": template.rstrip("/") or "/",
                        "title": titled(title),
                        "url": f"{url}?expanded={name}-detail#{name}",
                    }
                )
    return {"sources": sources, "operations": operations}


def main(arguments: list[str]) -> None:
    repos = dict(argument.split("=", 1) for argument in arguments)
    unknown = set(repos) - set(PROJECTS)
    if unknown or not repos:
        sys.exit(f"usage: {__doc__.splitlines()[2].strip()}")
    table = build(repos)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    counts = {}
    for operation in table["operations"]:
        counts[operation["service"]] = counts.get(operation["service"], 0) + 1
    print(f"{OUTPUT}: {len(table['operations'])} operations", counts)


if __name__ == "__main__":
    main(sys.argv[1:])
