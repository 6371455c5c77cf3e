"""The one program flaskprod leaves on a server: secrets made and used there, never sent.

``flaskprod deploy`` uploads this file (stdlib only, any Python 3.9+) to the server and
runs it as root. Secrets (the app's SECRET_KEY, the database and Redis passwords) are
generated here, on the server, once, kept in a root-only file, and put into the files
that need them (env file, Redis config) and into PostgreSQL by this program: they never
travel over SSH, are never printed, never reach the machine flaskprod runs on.

Every subcommand has a ``--check`` form that changes nothing and prints ``ok`` when
nothing would change (else what would): the provisioning engine's idempotency test.

    hostside.py secrets FILE NAME...                   [--check]
    hostside.py render SECRETS TEMPLATE DEST MODE OWNER GROUP  [--check]
    hostside.py postgres SECRETS ROLE DATABASE PASSWORD_NAME   [--check]
    hostside.py listeners PORT...      (who listens on each TCP port: "PORT PROGRAM PID")

Templates name secrets as ``{{secret:NAME}}`` and keep a value the server already has
in DEST (a setting filled in there by hand) as ``{{keep:NAME}}``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

_SECRET = re.compile(r"\{\{secret:([A-Z][A-Z0-9_]*)\}\}")
_KEEP = re.compile(r"^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=\{\{keep:\2\}\}$", re.MULTILINE)
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def read_env(path: str) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blanks skipped)."""
    values: dict[str, str] = {}
    try:
        with Path(path).open(encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\n")
                if not line or line.lstrip().startswith("#") or "=" not in line:
                    continue
                name, _, value = line.partition("=")
                values[name.strip()] = value
    except FileNotFoundError:
        pass
    return values


def write_atomic(path: str, text: str, mode: int, uid: int, gid: int) -> None:
    """Replace ``path`` in one rename; the temporary file has its final mode and owner
    before it holds anything, so a secret is never readable by anyone else."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".flaskprod-", dir=folder)
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def cmd_secrets(path: str, names: list[str], check: bool) -> str:
    for name in names:
        if not _NAME.match(name):
            raise SystemExit(f"bad secret name {name!r}")
    have = read_env(path)
    missing = [name for name in names if not have.get(name)]
    if check:
        return "ok" if not missing else "to generate: " + " ".join(missing)
    if not missing:
        return "ok"
    for name in missing:
        have[name] = secrets.token_urlsafe(32)  # URL- and SQL-safe: no quoting anywhere
    text = "".join(f"{name}={value}\n" for name, value in sorted(have.items()))
    header = "# Secrets generated on this server by flaskprod (never printed, never copied).\n"
    write_atomic(path, header + text, 0o600, 0, 0)
    return "generated: " + " ".join(missing)


def rendered(secrets_file: str, template: str, dest: str) -> str:
    values = read_env(secrets_file)
    text = Path(template).read_text(encoding="utf-8")

    def secret(match: re.Match[str]) -> str:
        name = match.group(1)
        if not values.get(name):
            raise SystemExit(f"{template}: secret {name} is not in {secrets_file}")
        return values[name]

    current = read_env(dest)

    def keep(match: re.Match[str]) -> str:
        name = match.group(2)
        if current.get(name):
            return f"{name}={current[name]}"
        return f"# {name}="  # stays unset until filled in on the server

    return _KEEP.sub(keep, _SECRET.sub(secret, text))


def owner_ids(owner: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def cmd_render(args: list[str], check: bool) -> str:
    secrets_file, template, dest, mode_text, owner, group = args
    text = rendered(secrets_file, template, dest)
    mode = int(mode_text, 8)
    try:
        same = Path(dest).read_text(encoding="utf-8") == text
        info = Path(dest).stat()
        uid, gid = owner_ids(owner, group)
        same = same and (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (mode, uid, gid)
    except (FileNotFoundError, KeyError):
        same = False
    if same:
        return "ok"
    if check:
        return f"to write: {dest}"
    uid, gid = owner_ids(owner, group)
    write_atomic(dest, text, mode, uid, gid)
    return f"wrote {dest}"


def _psql(sql: str, *, database: str = "postgres") -> str:
    done = subprocess.run(
        [
            *("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A"),
            *("-v", "ON_ERROR_STOP=1", "-d", database),
        ],
        input=sql,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if done.returncode:
        # psql's own message; the SQL (with a password in it) is never echoed
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr else "psql failed")
    return done.stdout.strip()


def _can_log_in(role: str, database: str, password: str) -> bool:
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    done = subprocess.run(
        [
            *("psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-U", role, "-d", database),
            *("-c", "select 1"),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    return done.returncode == 0 and done.stdout.strip() == "1"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def cmd_postgres(args: list[str], check: bool) -> str:
    secrets_file, role, database, password_name = args
    password = read_env(secrets_file).get(password_name)
    if not password:
        raise SystemExit(f"secret {password_name} is not in {secrets_file}")
    role_literal, db_literal = role.replace("'", "''"), database.replace("'", "''")
    # names as quoted literals ('' escaped); they come from the spec, not from a client
    row = _psql(
        "select coalesce((select rolsuper or rolcreatedb or rolcreaterole from pg_roles "  # noqa: S608
        f"where rolname = '{role_literal}')::text, 'none'), coalesce((select "
        f"pg_get_userbyid(datdba) from pg_database where datname = '{db_literal}'), 'none');"
    )
    powers, owner = row.split("|")
    good = powers == "false" and owner == role and _can_log_in(role, database, password)
    if good:
        return "ok"
    if check:
        return f"to set up: role {role}, database {database}"
    ident, db_ident = _quote_ident(role), _quote_ident(database)
    verb = "create" if powers == "none" else "alter"
    # Least privilege: a login role that can do nothing beyond its own database.
    _psql(
        f"{verb} role {ident} with login nosuperuser nocreatedb nocreaterole "
        f"noreplication password '{password}';"
    )
    if owner == "none":
        _psql(f"create database {db_ident} owner {ident};")
    elif owner != role:
        _psql(f"alter database {db_ident} owner to {ident};")
    _psql(f"revoke all on database {db_ident} from public;")
    if not _can_log_in(role, database, password):
        raise SystemExit(f"role {role} still cannot log in to {database} over 127.0.0.1")
    return f"set up role {role}, database {database}"


def _listening_inodes(ports: set[int]) -> dict[str, int]:
    """Socket inode -> port, for TCP sockets listening on one of ``ports``."""
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                found[fields[9]] = port
    return found


def cmd_listeners(ports: list[str]) -> str:
    inodes = _listening_inodes({int(p) for p in ports})
    lines = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        pid = proc.name
        try:
            fds = list((proc / "fd").iterdir())
            program = (proc / "comm").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                lines.add(f"{inodes[target[8:-1]]} {program} {pid}")
    return "\n".join(sorted(lines)) or "free"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    if command == "secrets" and len(rest) >= 2:
        print(cmd_secrets(rest[0], rest[1:], check))
    elif command == "render" and len(rest) == 6:
        print(cmd_render(rest, check))
    elif command == "listeners" and rest:
        print(cmd_listeners(rest))
    elif command == "postgres" and len(rest) == 4:
        print(cmd_postgres(rest, check))
    else:
        print(f"usage: see {__file__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
