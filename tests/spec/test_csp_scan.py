"""The CSP derived from what the templates load (issue #12, item 8)."""

from __future__ import annotations

import shutil
from pathlib import Path

from real_projects import REAL_PROJECTS

from flaskprod.spec.csp_scan import derive_csp, scan_templates

REAL = REAL_PROJECTS  # the shared folder beside the checkout


def page(root: Path, text: str, name: str = "app/templates/base.html") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return root


def test_microblog_cdns_avatars_and_inline_scripts(tmp_path: Path) -> None:
    root = tmp_path / "microblog"
    shutil.copytree(REAL / "microblog", root)
    csp, report_only, why = derive_csp(scan_templates(root))
    assert csp == (
        "default-src 'self'; "
        "script-src 'self' https://cdn.jsdelivr.net https://cdnjs.cloudflare.com; "
        "style-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
        "font-src 'self' https://cdn.jsdelivr.net; "
        "img-src 'self' https://www.gravatar.com data:"
    )  # moment.include_moment() loads moment.js from cdnjs; avatars from gravatar
    assert report_only is True
    assert why is not None and why.startswith(
        "inline scripts in the templates (app/templates/base.html:97, "
    )


def test_jinja_aware_self_and_only_real_scripts(tmp_path: Path) -> None:
    root = page(
        tmp_path,
        """{# <script src="https://commented.example/x.js"></script> #}
<link rel="stylesheet" href="{{ url_for('static', filename='a.css') }}">
<script src="{{ url_for('static', filename='a.js') }}" defer></script>
<script src="/static/b.js"></script>
<script type="application/ld+json">{"@context": "https://schema.org"}</script>
<script src="//unpkg.com/htmx.org@1.9.10"></script>
<link rel="preconnect" href="https://fonts.gstatic.com">
<link href="https://fonts.googleapis.com/css2?family=Inter" rel="stylesheet">
<img src="https://img.example.org/logo.png" alt="{{ 'a' if x > 1 else 'b' }}">
<iframe src="https://www.youtube.com/embed/x"></iframe>
""",
    )
    csp, report_only, why = derive_csp(scan_templates(root))
    assert csp == (
        "default-src 'self'; script-src 'self' https://unpkg.com; "
        "style-src 'self' https://fonts.googleapis.com; "
        "font-src 'self' https://fonts.googleapis.com; "
        "img-src 'self' https://img.example.org data:; "
        "frame-src 'self' https://www.youtube.com"
    )
    assert (report_only, why) == (False, None)


def test_handlers_and_bootstrap_flask_macros(tmp_path: Path) -> None:
    root = page(
        tmp_path,
        '{{ bootstrap.load_css() }}\n<button onclick="go()">go</button>\n'
        "{{ bootstrap.load_js() }}\n",
    )
    csp, report_only, why = derive_csp(scan_templates(root))
    assert "script-src 'self' https://cdn.jsdelivr.net" in csp
    assert "style-src 'self' https://cdn.jsdelivr.net" in csp
    assert report_only is True and why is not None and "base.html:2 (on* handler)" in why


def test_no_templates_keeps_the_default(tmp_path: Path) -> None:
    loads = scan_templates(page(tmp_path, "<p>hi</p>", name="app/static/x.html"))
    assert loads.files == 0 and derive_csp(loads) == ("default-src 'self'", False, None)
