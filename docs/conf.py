"""Sphinx configuration for the serotiny documentation.

Pages are MyST Markdown. The Components and CLI reference pages are written
at build time by ``_ext/serotiny_docs.py`` from the plugin registry and the
commands' own argument parsers, into ``_generated/`` (git-ignored).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # serotiny_core from this checkout when not installed

import serotiny_core  # noqa: E402

project = "serotiny"
author = "serotiny contributors"
copyright = "serotiny contributors"
release = serotiny_core.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "serotiny_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# _generated/ holds included fragments, not pages; examples/ is a package, not docs.
exclude_patterns = ["_build", "_generated", "examples", "README.md", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = f"serotiny {release}"
html_static_path: list[str] = []
pygments_style = "friendly"
