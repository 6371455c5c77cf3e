"""deploy's variant of the nginx site: the upstream's server line in an include (the
live release slot, rewritten to switch) and static files from the live release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit_tools import nginx_t

from flaskprod.kit.deploy_site import current_link, deploy_site, upstream_line, upstream_path


def test_deploy_site_passes_nginx_t_with_either_slot(kit: Any, tmp_path: Path) -> None:
    spec = kit.spec
    text = deploy_site(spec)
    include = upstream_path(spec)
    assert f"    include {include};\n" in text
    assert f"server {spec.bind}" not in text  # no inline server line
    assert f"alias {current_link(spec)}/{spec.paths.static_dir}/;" in text
    # the plain kit's site is the same file apart from the upstream and static lines
    plain = kit.path(f"deploy/nginx/{spec.app.name}.conf").read_text()
    gone = set(plain.splitlines()) - set(text.splitlines())
    assert gone == {
        f"# nginx site for {spec.app.name} on its server ({spec.server.kind} at {spec.bind}).",
        f"    # Exactly {spec.server.kind}'s bind; fail_timeout=0: always retry the only server.",
        f"    server {spec.bind} fail_timeout=0;",
        f"        alias {spec.static_dir}/;",
    }
    for slot in ("a", "b"):
        upstream = tmp_path / f"upstream-{slot}.conf"
        upstream.write_text(upstream_line(spec, slot))
        site = tmp_path / f"site-{slot}.conf"
        site.write_text(text.replace(include, str(upstream)))
        result = nginx_t("/usr/sbin/nginx", tmp_path / slot, site)
        assert result.returncode == 0, result.stderr
        assert f"/run/{spec.app.name}-{slot}/" in upstream.read_text()


def test_a_broken_upstream_include_is_refused(kit: Any, tmp_path: Path) -> None:
    """The harness can fail: an include that is not a server line fails nginx -t."""
    spec = kit.spec
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("server unix:/run/x.sock frobnicate;\n")
    site = tmp_path / "site.conf"
    site.write_text(deploy_site(spec).replace(upstream_path(spec), str(upstream)))
    result = nginx_t("/usr/sbin/nginx", tmp_path / "p", site)
    assert result.returncode != 0 and "frobnicate" in result.stderr
