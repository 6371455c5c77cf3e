"""The nginx parser never crashes: includes of missing files, globs, empty and binary
files, a huge config cut off mid-block, include cycles; and it stays in the project."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import check, context, ids, write

from flaskprod.check.parsers.nginx import parse_nginx

SITE = """
server {
    listen 80;
    server_name example.com;
    include snippets/*.conf;
    include /etc/nginx/proxy_params;
    include missing/never.conf;
    location / { proxy_pass http://127.0.0.1:8000; }
}
"""


def test_includes_globs_and_missing_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "nginx/site.conf": SITE,
            "nginx/snippets/a.conf": "add_header X-A a;\n",
            "nginx/snippets/b.conf": "add_header X-B b;\n",
        },
    )
    ctx = context(tmp_path)
    tree = parse_nginx(ctx)
    assert tree.errors == []
    server = tree.servers()[0]
    # Both globbed snippets are inlined, in order, into the server block.
    assert [d.args[0] for d in server.find("add_header")] == ["X-A", "X-B"]
    # Includes we cannot follow stay visible (rules treat them as unknown).
    assert server.unresolved_include("proxy_params")
    # The snippets are part of site.conf's tree, not separate top-level configs.
    assert [f.path.name for f in tree.files] == ["site.conf"]


def test_absolute_include_outside_the_project_is_not_followed(tmp_path: Path) -> None:
    # /etc/nginx/mime.types exists on this machine: the project must not pull it in.
    write(tmp_path, {"nginx/nginx.conf": "events {}\nhttp { include /etc/nginx/mime.types; }\n"})
    tree = parse_nginx(context(tmp_path))
    assert not any(d.name == "types" for d in tree.walk())


def test_empty_file_is_fine(tmp_path: Path) -> None:
    write(tmp_path, {"nginx/empty.conf": "", "sites-available/blank": "\n"})
    assert check(tmp_path) == []


def test_binary_file_is_one_parse_error(tmp_path: Path) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "site.conf").write_bytes(b"server {\x00\x01\xff\xfe" * 50)
    ctx = context(tmp_path)
    ctx.files["nginx"] = [tmp_path / "nginx" / "site.conf"]
    tree = parse_nginx(ctx)
    assert len(tree.errors) == 1
    assert "binary" in tree.errors[0][2]


def test_huge_file_cut_off_is_one_parse_error(tmp_path: Path) -> None:
    block = "server {\n listen 80;\n server_name x.example;\n location / { return 200; }\n}\n"
    text = block * 5000
    write(tmp_path, {"nginx/huge.conf": text[: len(text) - 7]})  # cut inside the last block
    findings = check(tmp_path)
    errors = [f for f in findings if f.id == "NGX001"]
    assert len(errors) == 1, findings
    assert errors[0].file == "nginx/huge.conf"
    assert errors[0].line is not None and errors[0].line > 20000
    assert "FP000" not in ids(findings)


def test_syntax_error_is_one_finding_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"nginx/site.conf": "server {\n    listen 80;\n}\n}\nserver {\n"})
    findings = [f for f in check(tmp_path) if f.id == "NGX001"]
    assert len(findings) == 1
    assert findings[0].line == 4
    assert "unexpected" in findings[0].message


def test_include_cycle_terminates(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "nginx/a.conf": "server { listen 80; include b.inc; }\n",
            "nginx/b.inc": "include b.inc;\nadd_header X-Loop 1;\n",
        },
    )
    tree = parse_nginx(context(tmp_path))
    assert len(tree.servers()) == 1


def test_parsed_once_per_run(tmp_path: Path) -> None:
    write(tmp_path, {"nginx/site.conf": SITE})
    ctx = context(tmp_path)
    assert parse_nginx(ctx) is parse_nginx(ctx)
