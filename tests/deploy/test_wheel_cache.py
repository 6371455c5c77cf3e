"""flaskprod's wheel for servers (flaskprod.deploy.wheels) built by two processes at
once into one cache, as two deploys or two test workers do: both get the wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BUILD = (
    "import sys; from pathlib import Path; "
    "from flaskprod.deploy.wheels import flaskprod_wheel; "
    "print(flaskprod_wheel(Path(sys.argv[1])))"
)


def test_two_processes_building_the_wheel_at_once_both_get_it(tmp_path: Path) -> None:
    builds = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [build.communicate(timeout=240) for build in builds]
    for build, (out, err) in zip(builds, results, strict=True):
        assert build.returncode == 0, err
        wheel = Path(out.strip())
        assert wheel.is_file() and wheel.name.startswith("flaskprod-")
    # one wheel folder, no building folder left behind
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == ["flaskprod"]
    assert not list(tmp_path.glob("*.building*"))
