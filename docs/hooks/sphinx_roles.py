"""mkdocs hook: render the Sphinx roles medlearn's docstrings use (``:class:`Bundle```) as plain code.

The docstrings are written for ``help()`` and IDEs as well as for this site, in reStructuredText habits;
mkdocstrings renders them as Markdown, where ``:class:`X``` would show the role name before the code
span. The role is dropped and the code span kept; ``~a.b.C`` shows ``C``, as Sphinx would.
"""

from __future__ import annotations

import re
from typing import Any

#: ``:mod:``, ``:class:``, ``:func:``... directly before an inline code span in the rendered HTML.
_ROLE_BEFORE_CODE = re.compile(
    r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const|ref):<code>(~?)([^<]*)</code>"
)


def _code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Strip Sphinx role prefixes from a rendered page."""
    return _ROLE_BEFORE_CODE.sub(_code, html)
