"""`python app.py` serves the studio on the port given by Gradio's environment variables."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

from .conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_every_tab(tmp_path):
    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               TASKMASTER_WORK_DIR=str(tmp_path), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        body = None
        while time.time() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "no answer in 120 s"
        for tab in ("Persona", "Data", "Train", "Evaluate", "Arena", "Publish"):
            assert f'"{tab}"' in body
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
