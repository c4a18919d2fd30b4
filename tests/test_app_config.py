"""The web app's server settings (``.streamlit/config.toml``): a page left running listens on this
machine only, sends no usage statistics and takes small uploads, however it is started."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_app_browser import free_port, wait_until_up

CONFIG = REPO / ".streamlit" / "config.toml"
PROC_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTENING = "0A"  # the state column of /proc/net/tcp


def test_the_repository_config_binds_to_loopback_and_keeps_the_page_quiet():
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    assert 1 <= config["server"]["maxUploadSize"] <= 50
    assert config["server"]["enableXsrfProtection"] and not config["server"]["enableStaticServing"]
    assert config["client"]["showErrorDetails"] == "type"  # no tracebacks with server paths


def address_of(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host order) in plain form."""
    raw = b"".join(bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, len(hex_address), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def listening_addresses(port: int) -> set[str]:
    """The local addresses that sockets listen on at ``port``, from the kernel's tables."""
    found = set()
    for table in PROC_TABLES:
        for line in table.read_text().splitlines()[1:] if table.is_file() else []:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == LISTENING and int(local_port, 16) == port:
                found.add(address_of(address))
    return found


@pytest.mark.skipif(not PROC_TABLES[0].is_file(), reason="reads the listening sockets from Linux's /proc/net/tcp")
def test_streamlit_run_from_another_folder_listens_on_loopback_only(tmp_path):
    """No --server.address flag, started outside the repository, with a home of its own (no
    user-wide config): the config beside app.py alone keeps the server off the network."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
         "--server.port", str(port)],
        cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", server)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert "0.0.0.0" not in output and "Network URL" not in output
