from __future__ import annotations

from runtime_helpers import MakeApp


def test_one_trusted_proxy_takes_the_last_hop(make_app: MakeApp) -> None:
    client = make_app("production").test_client()
    # The client forged the first entry; nginx appended the address it really saw.
    forged = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}
    data = client.get("/remote", headers=forged, environ_base={"REMOTE_ADDR": "127.0.0.1"}).json
    assert data == {"remote_addr": "203.0.113.7", "scheme": "https"}


def test_two_trusted_proxies(make_app: MakeApp) -> None:
    client = make_app("production", env={"TRUSTED_PROXIES": "2"}).test_client()
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.1, 10.0.0.2"}
    assert client.get("/remote", headers=headers).json["remote_addr"] == "198.51.100.1"


def test_no_proxy_ignores_forwarded_headers(make_app: MakeApp) -> None:
    client = make_app("development").test_client()
    headers = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    data = client.get("/remote", headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.9"}).json
    assert data == {"remote_addr": "192.0.2.9", "scheme": "http"}


def test_access_log_has_the_client_address(make_app: MakeApp, capsys: object) -> None:
    import pytest

    assert isinstance(capsys, pytest.CaptureFixture)
    client = make_app("production").test_client()
    capsys.readouterr()
    client.get("/", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.8"})
    out = capsys.readouterr().out
    assert '"remote_addr":"203.0.113.8"' in out and "6.6.6.6" not in out
