"""compose.yaml is valid under the Compose Specification's JSON schema (there is no
Docker engine here), after variables are interpolated as `docker compose` does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[?-])(?P<arg>[^}]*))?\})")


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$ rules."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def load_compose(kit: Any, env: dict[str, str]) -> dict[str, Any]:
    text = interpolate(kit.path("deploy/compose.yaml").read_text(), env)
    data: dict[str, Any] = yaml.safe_load(text)
    return data


SECRETS = {"SECRET_KEY": "s" * 48, "POSTGRES_PASSWORD": "pg-pass", "REDIS_PASSWORD": "r-pass"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def test_compose_is_valid(kit: Any, validator: jsonschema.protocols.Validator) -> None:
    data = load_compose(kit, SECRETS)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_schema_can_fail(kit: Any, validator: jsonschema.protocols.Validator) -> None:
    data = load_compose(kit, SECRETS)
    data["services"]["web"]["depends_on"]["db"]["condition"] = "service_ready"
    data["services"]["web"]["restart_policy"] = "always"
    assert len(list(validator.iter_errors(data))) >= 2


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_secrets_are_required(kit: Any, missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(MissingVariable, match=f"^{missing}: set {missing} in .env$"):
        load_compose(kit, env)


def test_compose_shape(kit: Any) -> None:
    data = load_compose(kit, SECRETS)
    assert "version" not in data
    services = data["services"]
    assert set(services) == {"nginx", "web", "migrate", "db", "redis"}
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"nginx"}
    assert data["networks"]["backend"]["internal"] is True
    for name in ("db", "redis"):
        assert services[name]["networks"] == ["backend"]
        assert "healthcheck" in services[name]
    web = services["web"]
    assert web["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert web["depends_on"]["db"] == {"condition": "service_healthy"}
    assert web["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["nginx"]["depends_on"]["web"] == {"condition": "service_healthy"}
    assert services["migrate"]["command"][-2:] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert web["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert "pg_isready" in services["db"]["healthcheck"]["test"][1]
    redis = services["redis"]["command"]
    assert redis[redis.index("--requirepass") + 1] == SECRETS["REDIS_PASSWORD"]
    assert redis[redis.index("--maxmemory") + 1] == kit.spec.redis.maxmemory
    assert redis[redis.index("--maxmemory-policy") + 1] == kit.spec.redis.maxmemory_policy
    assert all(s.get("restart") for s in services.values())
