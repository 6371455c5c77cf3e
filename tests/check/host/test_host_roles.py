"""Host checks of a deploy over several hosts, without hosts: which rules run on a host
of each role (the others are not run, and reported as skipped for the role, not as
passing), the role rules on stand-in files (a stand-in /etc, a stand-in ufw: no
firewall of this machine is read or changed), and the merged report of ``--hosts``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))  # live_support

from live_support import SHOP, describe

from flaskprod.check.context import Context
from flaskprod.check.host.merged import merge
from flaskprod.check.host.roles import roles_of
from flaskprod.check.model import REGISTRY, Level
from flaskprod.check.report import render
from flaskprod.check.runner import CheckOptions, CheckResult, load_rules, run_checks
from flaskprod.deploy.remote_check import HostReport, role_args
from flaskprod.errors import ExitCode, UserError
from flaskprod.spec.load import load_spec

ADDRESSES = {"lb": "10.77.0.10", "web1": "10.77.0.11", "web2": "10.77.0.12", "db1": "10.77.0.13"}
ROLES = '\n[deploy.balancer]\nhost = "lb"\n\n[deploy.database]\nhost = "db1"\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The shop's spec as edited for several hosts (bench/multihost.py's edit)."""
    folder = tmp_path / "shop"
    shutil.copytree(
        SHOP, folder, ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__")
    )
    spec = folder / "flaskprod.toml"
    text = spec.read_text().replace("\nhosts = []\n", '\nhosts = ["web1", "web2"]\n')
    section = text.index("\n[container]\n")
    spec.write_text(text[:section] + "\n" + ROLES + text[section:])
    return folder


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in / (its etc/) and a stand-in ufw first on PATH (see :func:`ufw`)."""
    folder = tmp_path / "root"
    (folder / "etc").mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    ufw(folder, ["22/tcp ALLOW Anywhere"])
    return folder


def ufw(root: Path, rules: list[str]) -> None:
    """What the stand-in ``ufw status`` prints: an active firewall with these rules."""
    lines = "\n".join(f"{to:<27}ALLOW       {source}" for to, _, source in map(_split, rules))
    script = root.parent / "bin" / "ufw"
    script.write_text(
        "#!/bin/sh\ncat <<'EOF'\nStatus: active\n\nTo                         Action      From\n"
        f"--                         ------      ----\n{lines}\nEOF\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _split(rule: str) -> tuple[str, str, str]:
    return rule.partition(" ALLOW ")


def check_as(
    project: Path, root: Path, host: str, *select: str, addresses: dict[str, str] = ADDRESSES
) -> CheckResult:
    options = {"host_root": str(root), "host_name": host, "host_addresses": dict(addresses)}
    return run_checks(
        CheckOptions(root=project, no_import=True, layers=("host",), select=select, options=options)
    )


def test_each_host_runs_the_rules_of_its_roles_only(project: Path, root: Path) -> None:
    load_rules()
    every = {r.id for r in REGISTRY if r.layer == "host"}
    ran = {host: set(check_as(project, root, host).rules_run) for host in ADDRESSES}
    skipped = {host: check_as(project, root, host).rules_skipped for host in ADDRESSES}
    assert {"HST009", "HST020"} <= ran["lb"] and "HST004" not in ran["lb"]
    assert {"HST004", "HST005", "HST013"} <= ran["web1"]
    assert not {"HST009", "HST012", "HST015", "HST020", "HST014"} & ran["web1"]
    assert {"HST012", "HST013", "HST014", "HST015"} <= ran["db1"]
    assert not {"HST001", "HST002", "HST004", "HST006", "HST020"} & ran["db1"]
    for host in ADDRESSES:  # every rule either run or skipped for the role: none lost
        assert ran[host] | set(skipped[host]) == every, host
        assert set(skipped[host].values()) <= {"role"}, skipped[host]
        assert not ran[host] & set(skipped[host])
    # rules for every role run everywhere
    assert all({"HST003", "HST008", "HST010", "HST011"} <= ran[h] for h in ADDRESSES)


def test_one_server_runs_every_host_rule(root: Path) -> None:
    server = root.parent / "one"
    shutil.copytree(SHOP, server, ignore=shutil.ignore_patterns(".flaskprod", "instance"))
    result = run_checks(
        CheckOptions(
            root=server, no_import=True, layers=("host",), options={"host_root": str(root)}
        )
    )
    assert result.rules_skipped == {}
    assert "HST020" in result.rules_run and "HST015" in result.rules_run


def test_roles_a_host_holds_and_a_host_the_spec_does_not_name(project: Path) -> None:
    spec = load_spec(project / "flaskprod.toml")
    assert roles_of(spec, "db1", {}).roles == {"database", "redis"}
    assert roles_of(spec, "lb", {}).roles == {"balancer"}
    web = roles_of(spec, "web2", dict(ADDRESSES))
    assert web.roles == {"app"} and web.balancer_address == "10.77.0.10"
    assert web.app_addresses == ["10.77.0.11", "10.77.0.12"]
    assert roles_of(spec, "web2", {"web1": "10.77.0.11"}).app_addresses is None
    with pytest.raises(UserError) as caught:
        roles_of(spec, "mail1", {})
    assert str(caught.value).startswith("flaskprod.toml: mail1 is none of the spec's hosts")
    assert role_args("db1", {"web1": "10.77.0.11"}) == [
        "--as-host", "db1", "--peer", "web1=10.77.0.11",
    ]  # fmt: skip


@pytest.mark.covers("HST013:fail", "HST013:pass", "HST008:pass")
def test_a_private_port_open_to_more_than_the_hosts_that_need_it(project: Path, root: Path) -> None:
    narrow = ["22/tcp ALLOW Anywhere"]
    narrow += [f"{port}/tcp ALLOW {ADDRESSES[h]}" for port in ("5432", "6379") for h in
               ("web1", "web2")]  # fmt: skip
    ufw(root, narrow)
    found = check_as(project, root, "db1", "HST013", "HST008").findings
    assert not found, describe(found)
    ufw(root, [*narrow, "5432 ALLOW Anywhere", "5432 (v6) ALLOW Anywhere (v6)"])
    found = check_as(project, root, "db1", "HST013").findings
    assert [f.message for f in found] == [
        "ufw admits PostgreSQL (port 5432) from Anywhere; only 10.77.0.11, 10.77.0.12 need it"
    ], describe(found)
    # an app host's 80: from the balancer only
    ufw(root, ["22/tcp ALLOW Anywhere", "80/tcp ALLOW 10.77.0.10"])
    assert not check_as(project, root, "web1", "HST013", "HST008").findings
    ufw(root, ["22/tcp ALLOW Anywhere", "80/tcp ALLOW 10.77.0.0/24"])
    found = check_as(project, root, "web1", "HST013").findings
    assert [f.level for f in found] == [Level.ERROR], describe(found)
    assert "from 10.77.0.0/24; only 10.77.0.10 need it" in found[0].message
    # HST008 by role: 5432 belongs on the database host, not on an app host
    ufw(root, ["22/tcp ALLOW Anywhere", "5432/tcp ALLOW 10.77.0.11"])
    found = check_as(project, root, "web1", "HST008").findings
    assert [f.message for f in found] == ["ufw allows ports 5432"], describe(found)


@pytest.mark.covers("HST014:fail", "HST014:pass")
def test_redis_bound_to_a_public_address_or_without_password(project: Path, root: Path) -> None:
    redis = root / "etc" / "redis"
    redis.mkdir()
    (redis / "redis.conf").write_text(
        "bind 127.0.0.1 -::1\nport 6379\ninclude /etc/redis/flaskprod-shop.conf\n"
    )
    own = redis / "flaskprod-shop.conf"
    own.write_text("bind 127.0.0.1 -::1 10.77.0.13\nrequirepass s3cret\n")
    assert not check_as(project, root, "db1", "HST014").findings
    own.write_text("bind 0.0.0.0\nrequirepass s3cret\n")
    found = check_as(project, root, "db1", "HST014").findings
    assert [f.message.split(" (")[0] for f in found] == ["Redis binds 0.0.0.0"], describe(found)
    own.write_text("bind 127.0.0.1 10.77.0.13\n")  # private, but no password
    found = check_as(project, root, "db1", "HST014").findings
    assert len(found) == 1 and "without requirepass" in found[0].message, describe(found)


@pytest.mark.covers("HST015:fail", "HST015:pass")
def test_pg_hba_admitting_more_than_the_app_hosts(project: Path, root: Path) -> None:
    main = root / "etc" / "postgresql" / "15" / "main"
    main.mkdir(parents=True)
    hba = main / "pg_hba.conf"
    base = (
        "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
        "host shop shop 10.77.0.11/32 scram-sha-256\nhost shop shop 10.77.0.12/32 scram-sha-256\n"
    )
    # the address-and-mask form of the same hosts is the same hosts
    masked = "host shop shop 10.77.0.12 255.255.255.255 scram-sha-256\n"
    masked += "host all all 127.0.0.1 255.255.255.255 scram-sha-256\n"
    hba.write_text(base + masked)
    assert not check_as(project, root, "db1", "HST015").findings
    hba.write_text(
        base + "host all all 0.0.0.0/0 scram-sha-256\nhost shop shop 10.77.0.10/32 trust\n"
    )
    found = check_as(project, root, "db1", "HST015").findings
    assert [f.line for f in found] == [6, 7], describe(found)
    assert "admits 0.0.0.0/0, not an app host" in found[0].message
    assert "admits 10.77.0.10/32 without a password" in found[1].message


def test_what_the_role_rules_could_not_read_is_said_not_passed(project: Path, root: Path) -> None:
    """Each rule reads something of the host (ufw, redis.conf, pg_hba.conf) and needs the
    other hosts' addresses: without either, an info finding says which, never silence."""

    def infos(*select: str, addresses: dict[str, str] = ADDRESSES) -> list[str]:
        found = check_as(project, root, "db1", *select, addresses=addresses).findings
        assert all(f.level is Level.INFO for f in found), describe(found)
        return [f"{f.id}: {f.message}" for f in found]

    etc = root / "etc"
    assert infos("HST014", "HST015") == [
        f"HST014: could not check: {etc}/redis/redis.conf: No such file or directory",
        f"HST015: could not check: no {etc}/postgresql/*/main/pg_hba.conf",
    ]
    (etc / "postgresql" / "15" / "main").mkdir(parents=True)
    (etc / "postgresql" / "15" / "main" / "pg_hba.conf").write_text("local all all peer\n")
    unknown = {host: a for host, a in ADDRESSES.items() if host != "web2"}
    assert infos("HST015", addresses=unknown) == [
        "HST015: could not check: the app hosts' addresses are unknown"
    ]
    ufw(root, ["22/tcp ALLOW Anywhere", "5432/tcp ALLOW 10.77.0.11"])
    assert infos("HST013", addresses=unknown) == [
        "HST013: could not check: 5432: the other hosts' addresses are unknown"
    ]
    (root.parent / "bin" / "ufw").write_text("#!/bin/sh\necho 'Status: inactive'\n")
    assert infos("HST013") == ["HST013: could not check: ufw is inactive"]


def test_the_merged_report_names_each_host_and_exits_with_the_worst(tmp_path: Path) -> None:
    finding = {
        "id": "HST013", "level": "error", "layer": "host", "hint": "h",
        "message": "ufw admits PostgreSQL (port 5432) from Anywhere", "file": None, "line": None,
    }  # fmt: skip
    reports = [
        HostReport("db1", [finding], 12, {"HST001": "role"}, 1),
        HostReport("web1", [], 10, {"HST001": "role", "HST015": "role"}, 0),
        HostReport("web2", [], 0, {}, 7, error="web2: ssh: connection refused"),
    ]
    result, summary = merge(reports, tmp_path, None, Level.ERROR)
    assert summary["exit_code"] == 7 and summary["rules_run"] == 22
    assert result.rules_skipped == {"HST001": "role"}  # skipped on every host checked
    document = json.loads(render(result, summary, "json"))
    assert document["findings"][0]["host"] == "db1"
    assert document["findings"][0]["message"].startswith("db1: ufw admits PostgreSQL")
    assert document["summary"]["hosts"]["web2"]["error"] == "web2: ssh: connection refused"
    sarif = json.loads(render(result, summary, "sarif"))["runs"][0]["results"][0]
    assert sarif["locations"][0]["logicalLocations"] == [{"fullyQualifiedName": "db1"}]
    assert "db1: ufw admits" in render(result, summary, "text")
    ok, _ = merge(reports[1:2], tmp_path, None, Level.ERROR)
    assert merge(reports[:2], tmp_path, None, Level.ERROR)[1]["exit_code"] == 1
    assert isinstance(ok.context, Context)


def test_bad_input_for_several_hosts_is_one_line(project: Path, tmp_path: Path) -> None:
    """No SSH is tried: the input is refused first (exit 2, one line naming what to do)."""
    from flaskprod_cli import run_flaskprod

    cases = [
        (("--hosts", "--url", "https://example.com"), "--hosts checks every host of the spec"),
        (("--host", "mail1"), "--host mail1: none of flaskprod.toml's hosts (db1, web1, web2, lb)"),
        (("--host", "--peer", "web1"), "--peer web1: expected HOST=ADDRESS"),
    ]
    for args, line in cases:
        done = run_flaskprod("check", str(project), *args, timeout=60)
        assert done.returncode == ExitCode.USAGE, (args, done.stdout, done.stderr)
        assert done.stderr.startswith(f"flaskprod: error: {line}"), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    empty = tmp_path / "empty"
    shutil.copytree(SHOP, empty, ignore=shutil.ignore_patterns(".flaskprod", "instance"))
    done = run_flaskprod("check", str(empty), "--hosts", timeout=60)
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stderr.startswith("flaskprod: error: flaskprod.toml: [deploy] hosts: no host")


def test_this_machine_must_be_one_of_the_specs_hosts(project: Path) -> None:
    from flaskprod_cli import run_flaskprod

    done = run_flaskprod("check", str(project), "--host", "--as-host", "mail1", timeout=60)
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert done.stderr.splitlines() == [
        "flaskprod: error: flaskprod.toml: mail1 is none of the spec's hosts "
        "(db1, web1, web2, lb) (check it from your machine: flaskprod check --host DEST "
        "(one of them) or --hosts (all))"
    ]
