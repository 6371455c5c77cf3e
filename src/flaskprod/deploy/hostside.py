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
    hostside.py mariadb SECRETS USER DATABASE PASSWORD_NAME    [--check]
    hostside.py mariadb-settings CNF   (the running server has CNF's settings) [--check]
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


def _sql_client(argv: list[str], sql: str, *, secret: str = "") -> str:
    """Run a database client as root with ``sql`` on stdin; its output. A failure exits
    with the client's own last line (the SQL, with a password in it, never echoed;
    ``secret`` masked should the client quote it)."""
    done = subprocess.run(argv, input=sql, capture_output=True, text=True, cwd="/", check=False)
    if done.returncode:
        client = "psql" if "psql" in argv else argv[0]
        message = done.stderr.strip().splitlines()[-1] if done.stderr else f"{client} failed"
        raise SystemExit(message.replace(secret, "***") if secret else message)
    return done.stdout


def _psql(sql: str, *, database: str = "postgres") -> str:
    argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A"]
    return _sql_client([*argv, "-v", "ON_ERROR_STOP=1", "-d", database], sql).strip()


def _says_one(argv: list[str], env: dict[str, str] | None = None) -> bool:
    """A database client's ``select 1`` (a login check) printed 1."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd="/", check=False)
    return done.returncode == 0 and done.stdout.strip() == "1"


def _can_log_in(role: str, database: str, password: str) -> bool:
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    return _says_one(
        [
            *("psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-U", role, "-d", database),
            *("-c", "select 1"),
        ],
        env,
    )


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


#: Database and user names (an app's name has hyphens: spec's [a-z][a-z0-9-]*); used
#: backtick-quoted or as string literals in SQL, and in a client defaults file.
_MY_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")
#: The app's MariaDB user, per address it connects from (skip-name-resolve: a TCP
#: connection is 127.0.0.1, a unix socket one is localhost).
_MY_HOSTS = ("127.0.0.1", "localhost")
#: What GRANT ALL ON db.* gives, at least (the app's migrations create and alter tables).
_MY_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX"}


def _mariadb(sql: str, *, secret: str = "") -> list[list[str]]:
    """SQL as MariaDB's root (unix socket authentication, Debian's default); rows."""
    out = _sql_client(["mariadb", "--batch", "--skip-column-names", "--raw"], sql, secret=secret)
    return [line.split("\t") for line in out.splitlines()]


def _my_can_log_in(user: str, database: str, password: str) -> bool:
    """The user reaches its database over 127.0.0.1 with the password (a client
    defaults file in a private folder: never on a command line)."""
    with tempfile.TemporaryDirectory(prefix="flaskprod-") as folder:
        cnf = Path(folder) / "client.cnf"
        fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f'[client]\nuser="{user}"\npassword="{password}"\n')
        return _says_one(
            [
                *("mariadb", f"--defaults-file={cnf}", "--protocol=tcp", "-h", "127.0.0.1"),
                *("--connect-timeout=5", "--batch", "--skip-column-names", "-D", database),
                *("-e", "select 1"),
            ]
        )


def _literal(text: str) -> str:
    """A MariaDB string literal (quotes doubled, backslashes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _account(user: str, host: str) -> str:
    return f"{_literal(user)}@{_literal(host)}"


def _my_state(user: str, database: str) -> tuple[str, list[str], int, dict[str, set[str]]]:
    """The database's character set, the user's hosts, its global privileges beyond
    USAGE, and its privileges per (account, database)."""
    # names as literals (_literal escapes them); they come from the spec, not a client
    (charset,) = _mariadb(
        "SELECT COALESCE((SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "  # noqa: S608
        f"WHERE SCHEMA_NAME = {_literal(database)}), 'none');"
    )[0]
    rows = _mariadb(f"SELECT Host FROM mysql.user WHERE User = {_literal(user)};")  # noqa: S608
    hosts = [row[0] for row in rows]
    if not hosts:
        return charset, hosts, 0, {}
    # information_schema's GRANTEE column reads 'user'@'host'
    grantees = ", ".join(_literal(f"'{user}'@'{host}'") for host in hosts)
    (global_powers,) = _mariadb(
        "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES "  # noqa: S608
        f"WHERE GRANTEE IN ({grantees}) AND PRIVILEGE_TYPE <> 'USAGE';"
    )[0]
    per_database: dict[str, set[str]] = {}
    for grantee, schema, privilege in _mariadb(
        "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE "  # noqa: S608
        "FROM information_schema.SCHEMA_PRIVILEGES "
        f"WHERE GRANTEE IN ({grantees});"
    ):
        per_database.setdefault(f"{grantee} {schema}", set()).add(privilege)
    return charset, hosts, int(global_powers), per_database


def cmd_mariadb(args: list[str], check: bool) -> str:
    secrets_file, user, database, password_name = args
    for name in (user, database):
        if not _MY_NAME.match(name):
            raise SystemExit(
                f"MariaDB name {name!r}: use up to 64 letters, digits, _, $ and - "
                "(database.name, database.user)"
            )
    password = read_env(secrets_file).get(password_name)
    if not password:
        raise SystemExit(f"secret {password_name} is not in {secrets_file}")
    charset, hosts, global_powers, per_database = _my_state(user, database)
    wanted = {f"'{user}'@'{host}' {database}" for host in _MY_HOSTS}
    good = (
        charset == "utf8mb4"
        and sorted(hosts) == sorted(_MY_HOSTS)
        and global_powers == 0
        and set(per_database) == wanted
        and all(per_database[key] >= _MY_PRIVILEGES for key in wanted)
        and _my_can_log_in(user, database, password)
    )
    if good:
        return "ok"
    if check:
        return f"to set up: user {user}, database {database}"
    # Least privilege: a user of the loopback addresses that can do nothing beyond its
    # own database (every other grant revoked, any other host's user dropped).
    sql = [
        f"CREATE DATABASE IF NOT EXISTS `{database}` "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
        f"ALTER DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
    ]
    sql += [f"DROP USER {_account(user, host)};" for host in hosts if host not in _MY_HOSTS]
    for host in _MY_HOSTS:
        account = _account(user, host)
        sql += [
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}';",
            f"ALTER USER {account} IDENTIFIED BY '{password}';",
            f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account};",
            f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account};",
        ]
    _mariadb("\n".join(sql) + "\n", secret=password)
    if not _my_can_log_in(user, database, password):
        raise SystemExit(f"user {user} still cannot log in to {database} over 127.0.0.1")
    return f"set up user {user}, database {database}"


def _cnf_settings(path: str) -> dict[str, str]:
    """``key = value`` lines of the [mariadbd] group of a MariaDB option file."""
    settings: dict[str, str] = {}
    group = ""
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            group = line.strip("[]").strip()
        elif group == "mariadbd" and "=" in line:
            key, _, value = line.partition("=")
            settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def _normal(key: str, value: str) -> object:
    value = value.strip().upper()
    if key == "sql_mode":
        return frozenset(part for part in value.split(",") if part)
    return {"ON": "1", "OFF": "0", "TRUE": "1", "FALSE": "0"}.get(value, value)


def _settings_differ(path: str) -> list[str]:
    settings = _cnf_settings(path)
    for key in settings:
        if not re.match(r"^[a-z_]+$", key):
            raise SystemExit(f"{path}: setting {key!r} is not a MariaDB variable name")
    if not settings:
        return []
    (running,) = _mariadb("SELECT " + ", ".join(f"@@global.{k}" for k in settings) + ";")
    # one column per setting, in order (no zip(strict=): the host may run Python 3.9)
    return [
        f"{key} is {running[index]}, not {want}"
        for index, (key, want) in enumerate(settings.items())
        if _normal(key, want) != _normal(key, running[index])
    ]


def cmd_mariadb_settings(path: str, check: bool) -> str:
    differ = _settings_differ(path)
    if not differ:
        return "ok"
    if check:
        return "to restart: " + "; ".join(differ)
    subprocess.run(["systemctl", "restart", "mariadb"], check=True, cwd="/")
    still = _settings_differ(path)
    if still:
        raise SystemExit(f"mariadb restarted with {path} and still: " + "; ".join(still))
    return "restarted mariadb: " + "; ".join(differ)


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
    elif command == "mariadb" and len(rest) == 4:
        print(cmd_mariadb(rest, check))
    elif command == "mariadb-settings" and len(rest) == 1:
        print(cmd_mariadb_settings(rest[0], check))
    else:
        print(f"usage: see {__file__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
