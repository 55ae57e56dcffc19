"""Where the documents sit in an mkdocs site: the paths index.md gives pymdownx.snippets, and
the mkdocs project `--mkdocs` writes around them.

The pages this format comes from keep one folder per command, `index.md` including the
generated files with snippets, whose paths are relative to the snippets `base_path` (`docs` in
those sites). The project written here has the markdown extensions those pages use, keeps the
included files out of the navigation and the search (`exclude_docs`: snippets still reads them),
lets wide sequence diagrams scroll instead of shrinking, and uses a local mermaid when one is
installed (mkdocs-material fetches it from a CDN otherwise, which an offline lab cannot reach).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from ..atomic import AtomicFile

INCLUDED = ("body.md", "diagram.md", "log.md")  # pages' parts, not pages
BASE_PATH = re.compile(r"^[ \t]*base_path:[ \t]*(.*)$", re.MULTILINE)
MERMAID = os.path.join("mermaid", "dist", "mermaid.min.js")  # in an npm package folder
WIDE = "div.mermaid, pre.mermaid { overflow-x: auto; }\n"

MKDOCS_YML = """\
# Written by osflow-sniff: the settings the call-flow pages need (edit freely; --mkdocs
# writes it again only with --force).
site_name: {site_name}
docs_dir: docs
theme:
  name: material
  features:
    - content.code.copy
exclude_docs: |
{excluded}
extra_css:
  - assets/osflow.css
{javascript}markdown_extensions:
  - abbr
  - admonition
  - tables
  - attr_list
  - def_list
  - footnotes
  - md_in_html
  - toc:
      permalink: true
      toc_depth: 3
  - pymdownx.arithmatex:
      generic: true
  - pymdownx.betterem
  - pymdownx.caret
  - pymdownx.details
  - pymdownx.critic
  - pymdownx.emoji
  - pymdownx.highlight:
      linenums_style: pymdownx-inline
      anchor_linenums: true
      auto_title: true
  - pymdownx.inlinehilite
  - pymdownx.keys
  - pymdownx.mark
  - pymdownx.smartsymbols
  - pymdownx.superfences:
      custom_fences:
        - name: mermaid
          class: mermaid
          format: !!python/name:pymdownx.superfences.fence_code_format
  - pymdownx.tabbed:
      alternate_style: true
  - pymdownx.tasklist
  - pymdownx.snippets:
      base_path: docs
      check_paths: true
  - pymdownx.tilde
"""


def snippet_prefix(directory: str, base: str | None = None) -> str:
    """What to put before a file name of `directory` for snippets to find it: its path from the
    snippets base `base`, else from that of the mkdocs project it is in (`docs/` there), or
    nothing outside one."""
    here = os.path.abspath(directory)
    if base is not None:
        relative = os.path.relpath(here, os.path.abspath(base))
        return "" if relative == "." else relative.replace(os.sep, "/") + "/"
    parent = here
    while True:
        config = os.path.join(parent, "mkdocs.yml")
        if os.path.isfile(config):
            base = os.path.join(parent, _base_path(config))
            relative = os.path.relpath(here, base)
            if relative == "." or relative.startswith(".."):
                return ""
            return relative.replace(os.sep, "/") + "/"
        up = os.path.dirname(parent)
        if up == parent:
            return ""
        parent = up


def _base_path(config: str) -> str:
    """The first snippets base_path of an mkdocs.yml (`.`, snippets' default, if none)."""
    try:
        with open(config, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError):
        return "."
    found = BASE_PATH.search(text)
    if not found:
        return "."
    value = found.group(1).split("#", 1)[0].strip().strip("[]").split(",")[0].strip(" '\"")
    return value or "."


def project_files(root: str) -> list[str]:
    """What `write_project` writes (for the check that it overwrites nothing of someone else)."""
    assets = os.path.join(root, "docs", "assets")
    return [
        os.path.join(root, "mkdocs.yml"),
        os.path.join(assets, "osflow.css"),
        os.path.join(assets, "mermaid.min.js"),
    ]


def write_project(root: str, site_name: str) -> None:
    """mkdocs.yml in `root` (the documents are in root/docs), with the page's stylesheet and a
    local mermaid when one is installed."""
    assets = os.path.join(root, "docs", "assets")
    os.makedirs(assets, exist_ok=True)
    _write(os.path.join(assets, "osflow.css"), WIDE)
    javascript = ""
    mermaid = local_mermaid()
    if mermaid is not None:
        shutil.copyfile(mermaid, os.path.join(assets, "mermaid.min.js"))
        javascript = "extra_javascript:\n  - assets/mermaid.min.js\n"
    excluded = "".join(f"  {name}\n" for name in INCLUDED).rstrip("\n")
    config = MKDOCS_YML.format(
        site_name=json.dumps(site_name), excluded=excluded, javascript=javascript
    )
    _write(os.path.join(root, "mkdocs.yml"), config)


def local_mermaid() -> str | None:
    """mermaid.min.js from an npm install: OSFLOW_MERMAID, ./node_modules, or npm's global
    folder."""
    named = os.environ.get("OSFLOW_MERMAID")
    if named:
        return named if os.path.isfile(named) else None
    places = [os.path.join("node_modules", MERMAID)]
    npm = shutil.which("npm")
    if npm is not None:
        try:
            root = subprocess.run(
                [npm, "root", "-g"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
        if root:
            places.append(os.path.join(root, MERMAID))
    return next((place for place in places if os.path.isfile(place)), None)


def _write(path: str, text: str) -> None:
    out = AtomicFile(path)
    out.write(text)
    out.commit()
