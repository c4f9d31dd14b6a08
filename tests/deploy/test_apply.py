"""Server-side apply: wire format against a recording HTTP server, errors, and a real API server.

The recording server is a real socket speaking plain HTTP; it checks what our client sends
(method, path, content type, fieldManager, force, body) and stores objects so dry-run diffs
can be exercised. A real kube-apiserver is used only when SEDMA_TEST_KUBECONFIG is set.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sedma.deploy.apply import FIELD_MANAGER, api_client, apply_objects, dry_run, project
from sedma.deploy.loader import load_cluster, load_workflow
from sedma.deploy.manifests import compile_plan
from sedma.deploy.planner import plan
from sedma.errors import BackendUnavailable, ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"


def _objects(namespace: str = "default") -> list[dict[str, Any]]:
    res = plan(
        load_workflow(EXAMPLES / "workflow.yaml"), load_cluster(EXAMPLES / "cluster.yaml"), memory=None
    )
    return [o for pair in compile_plan(res, namespace=namespace).values() for o in pair]


class _Recorder(http.server.BaseHTTPRequestHandler):
    store: dict[str, Any]
    calls: list[dict[str, Any]]

    def _reply(self, code: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        if path in self.store:
            self._reply(200, self.store[path])
        else:
            self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

    def do_PATCH(self) -> None:
        url = urllib.parse.urlparse(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(
            {
                "path": url.path,
                "query": urllib.parse.parse_qs(url.query),
                "content_type": self.headers["Content-Type"],
                "body": body,
            }
        )
        created = url.path not in self.store
        self.store[url.path] = {**body, "status": {}}
        self._reply(201 if created else 200, self.store[url.path])

    def log_message(self, *args: object) -> None:
        pass


def _kubeconfig(tmp_path: Path, server: str) -> str:
    text = f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}"}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
users: [{{name: u, user: {{token: test-token}}}}]
"""
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    return str(path)


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("H", (_Recorder,), {"store": {}, "calls": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_address[1]}"), handler
    server.shutdown()
    server.server_close()


def test_server_side_apply_wire_format(recorder: tuple[str, type[_Recorder]]) -> None:
    kubeconfig, handler = recorder
    objs = _objects()
    changes = apply_objects(api_client(kubeconfig), objs)
    assert [c.action for c in changes] == ["created"] * len(objs)
    assert len(handler.calls) == len(objs)
    for call, obj in zip(handler.calls, objs, strict=True):
        assert call["content_type"] == "application/apply-patch+yaml"
        assert call["query"]["fieldManager"] == [FIELD_MANAGER] and call["query"]["force"] == ["true"]
        plural = "deployments" if obj["kind"] == "Deployment" else "services"
        assert call["path"].endswith(f"/namespaces/default/{plural}/{obj['metadata']['name']}")
        assert call["body"] == obj
    again = apply_objects(api_client(kubeconfig), objs)
    assert {c.action for c in again} == {"configured"}


def test_dry_run_diffs_against_live_objects(recorder: tuple[str, type[_Recorder]]) -> None:
    kubeconfig, handler = recorder
    objs = _objects()
    client = api_client(kubeconfig)
    assert {c.action for c in dry_run(client, objs)} == {"create"}
    apply_objects(client, objs)
    n_calls = len(handler.calls)
    assert {c.action for c in dry_run(client, objs)} == {"unchanged"}
    live_path = next(p for p in handler.store if "/deployments/" in p)
    handler.store[live_path]["spec"]["replicas"] = 3
    changed = [c for c in dry_run(client, objs) if c.action == "change"]
    assert len(changed) == 1 and "-  replicas: 3" in changed[0].diff and "+  replicas: 1" in changed[0].diff
    assert len(handler.calls) == n_calls  # a dry run never writes


def test_dry_run_without_cluster_prints_whole_objects() -> None:
    changes = dry_run(None, _objects())
    assert all(c.action == "create" and "apiVersion" in c.diff for c in changes)


def test_unreachable_cluster_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = api_client(_kubeconfig(tmp_path, f"http://127.0.0.1:{port}"))
    client.configuration.retries = 0
    with pytest.raises(BackendUnavailable, match="unreachable") as err:
        apply_objects(client, _objects()[:1])
    assert "\n" not in str(err.value)


def test_missing_kubeconfig_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig"):
        api_client(str(tmp_path / "absent"))


def test_project_keeps_only_fields_we_set() -> None:
    live = {"a": 1, "b": {"c": 2, "d": 3}, "l": [{"x": 1, "y": 2}], "status": {}}
    assert project(live, {"b": {"c": 9}, "l": [{"x": 0}]}) == {"b": {"c": 2}, "l": [{"x": 1}]}


@pytest.mark.k8s
def test_apply_to_a_real_api_server() -> None:
    kubeconfig = os.environ.get("SEDMA_TEST_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("no Kubernetes API server: SEDMA_TEST_KUBECONFIG is unset")
    client = api_client(kubeconfig)
    objs = _objects(namespace=os.environ.get("SEDMA_TEST_NAMESPACE", "default"))
    first = apply_objects(client, objs)
    assert {c.action for c in first} <= {"created", "configured"}
    assert {c.action for c in dry_run(client, objs)} == {"unchanged"}
