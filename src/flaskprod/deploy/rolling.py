"""A rolling release over several app hosts behind the balancer (docs/deploy.md,
"Several hosts").

The revision is read once; the migrations and ``--release`` commands run once, on the
first app host; then one app host at a time: marked ``down`` in the balancer's include
(``nginx -t``, reload, the balancer's old workers drained: no request is in flight to
it), released by the one release pipeline (its own slot switch), checked ready from
the balancer through its private address, put back. A host whose release fails is put
back on its old release and the roll stops there: the hosts before it run the new
release, the hosts after it keep the old one (exit 7, one line naming the host and the
step). Migrations must stay backwards compatible for one release, as for any
zero-downtime deploy.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flaskprod.deploy.ship import DeployFailed, rollback_host
from flaskprod.deploy.ssh_target import SshTarget, StepFailed, swap_include, wait_gone
from flaskprod.kit.balancer_site import app_hosts_path, app_hosts_upstream
from flaskprod.release.pipeline import Echo

if TYPE_CHECKING:
    from flaskprod.deploy.remote import Remote
    from flaskprod.deploy.roles import Placement
    from flaskprod.spec.model import Spec

#: Run on the balancer by python3: GET the ready path of an app host through its
#: private address (as the balancer's nginx reaches it) until 200 or the time is up.
READY_FROM_BALANCER = r"""
import http.client, sys, time
address, path, host, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline, last = time.monotonic() + seconds, "no answer"
while time.monotonic() < deadline:
    # straight to the host (no proxy from the environment, no redirect followed)
    conn = http.client.HTTPConnection(address, 80, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
        answer = conn.getresponse()
        body = answer.read(200).decode(errors="replace")
        if answer.status == 200:
            print("ready"); sys.exit(0)
        last = f"{path} answered {answer.status}: {body}"
    except OSError as error:
        last = f"{path}: {error}"
    finally:
        conn.close()
    time.sleep(0.2)
print(last); sys.exit(1)
"""

#: What a host of the roll does: release (or roll back) on that host; ``first``: the
#: first app host (the one that runs the migrations).
HostStep = Callable[["Remote", bool], object]


@dataclass
class Balancer:
    """The balancer's include of app hosts, rewritten to take one out and back."""

    remote: Remote
    spec: Spec
    placement: Placement
    echo: Echo

    def _sh(self, script: str, step: str, *, input: bytes | None = None) -> str:
        # the release target's runner: one line naming the host and the step on failure
        return SshTarget(self.remote, self.spec, self.echo).sh(script, step, input=input)

    def out(self, down: tuple[str, ...], step: str) -> float:
        """The app hosts with these addresses ``down``, the others up; returns once the
        balancer's workers of before the reload exited (none still talks to a host
        taken out). Seconds it took."""
        began = time.monotonic()
        text = app_hosts_upstream(self.placement.app_addresses, down)
        drain = self.spec.server.graceful_timeout + 10
        script = (
            f"{swap_include(app_hosts_path(self.spec))}\n"
            'pids=$(ps -o pid= --ppid "$(cat /run/nginx.pid)" | tr "\\n" " ")\n'
            "systemctl reload nginx\n"
            f"{wait_gone('$pids', drain)}"
        )
        self._sh(script, step, input=text.encode())
        return time.monotonic() - began

    def ready(self, address: str, timeout: float = 60.0) -> None:
        argv = ["python3", "-c", READY_FROM_BALANCER, address, self.spec.http.ready_path]
        argv += [self.spec.app.domains[0], str(timeout)]
        script = " ".join(shlex.quote(word) for word in argv)
        self._sh(script, "ready from the balancer")


def roll(
    app_remotes: Mapping[str, Remote],
    balancer: Balancer,
    host_step: HostStep,
    echo: Echo,
    *,
    undo: Callable[[Remote], object] | None = None,
) -> dict[str, float]:
    """``host_step`` on each app host in turn, out of the balancer while it runs.
    Returns the seconds each host took (out, release, ready, back in). ``undo``: how a
    host that switched but is not ready through the balancer goes back (its rollback)."""
    placement = balancer.placement
    done: list[str] = []
    seconds: dict[str, float] = {}
    hosts = list(app_remotes)
    for index, host in enumerate(hosts):
        remote = app_remotes[host]
        address = placement.address(host)
        began = time.monotonic()
        drained = balancer.out((address,), f"{host} out of the balancer")
        echo(f"{host}: out of the balancer (drained in {drained:.1f}s)")
        switched = False
        try:
            host_step(remote, index == 0)
            switched = True
            balancer.ready(address)
        except (DeployFailed, StepFailed) as error:
            step = error.step if isinstance(error, DeployFailed) else "ready from the balancer"
            for line in getattr(error, "lines", [])[-5:]:
                echo(f"  | {line}")
            if switched and undo is not None:
                echo(f"{host}: not ready through the balancer: back to its old release")
                try:
                    undo(remote)
                except DeployFailed as failed:  # e.g. a first release: none to go back to
                    echo(f"{host}: {failed.message}")
            balancer.out((), f"{host} back in the balancer")
            kept = ", ".join(hosts[index:])
            new = ", ".join(done) if done else "no host"
            reason = error.message
            for prefix in (f"{host}: {step}: ", f"{remote.label}: {step}: ", f"{host}: "):
                reason = reason.removeprefix(prefix)
            raise DeployFailed(
                step,
                f"{host}: {step}: {reason}; the roll stopped: {new} run the new "
                f"release, {kept} the old one (all in the balancer)",
                getattr(error, "lines", []),
            ) from None
        balancer.out((), f"{host} back in the balancer")
        seconds[host] = round(time.monotonic() - began, 1)
        echo(f"{host}: back in the balancer ({seconds[host]:.1f}s out)")
        done.append(host)
    return seconds


def rollback_all(
    app_remotes: Mapping[str, Remote], balancer: Balancer, echo: Echo, *, to: str | None
) -> dict[str, float]:
    """``flaskprod rollback`` over several hosts: rolling, the same way."""
    spec = balancer.spec

    def back(remote: Remote, _first: bool) -> object:
        return rollback_host(remote, spec, echo, to=to)

    return roll(app_remotes, balancer, back, echo)
