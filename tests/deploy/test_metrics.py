from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from sedma.deploy.metrics import Sample, fetch, observe, parse_prometheus, render
from sedma.errors import BackendUnavailable, InputError

TEXT = """\
# HELP sedma_node_up Node readiness.
# TYPE sedma_node_up gauge
sedma_node_up{node="n1"} 1
sedma_node_up{node="n2"} 0 1700000000000
sedma_node_cpu_utilisation{node="n1"} 0.5
sedma_node_memory_utilisation{node="n1"} 0.7
sedma_workflow_throughput{workflow="qa"} 120.5
sedma_edge_data_gb{src="a",dst="b"} 3e0
odd_metric{path="C:\\\\x",quote="say \\"hi\\"",brace="}"} +Inf
plain 4
"""


def test_parse_text_format_with_escapes_timestamps_and_special_values() -> None:
    s = parse_prometheus(TEXT)
    assert len(s) == 8
    odd = next(x for x in s if x.name == "odd_metric")
    assert odd.labels == {"path": "C:\\x", "quote": 'say "hi"', "brace": "}"} and odd.value == float("inf")
    assert s[1].value == 0.0 and s[-1] == Sample("plain", {}, 4.0)


def test_observation_collects_what_the_controller_reads() -> None:
    obs = observe(parse_prometheus(TEXT), workflow="qa")
    assert obs.throughput == 120.5 and obs.up == {"n1": True, "n2": False}
    assert obs.edges == {("a", "b"): 3.0}
    assert obs.utilisation(["n1", "n2"]) == pytest.approx(0.6)


def test_render_round_trips() -> None:
    s = parse_prometheus(TEXT)
    assert parse_prometheus(render(s)) == s


@pytest.mark.parametrize("bad", ['m{a="1" 2', "m", '{a="b"} 1', "m abc", "m{a=b} 1"])
def test_malformed_lines_name_the_line(bad: str) -> None:
    with pytest.raises(InputError, match="metrics:2"):
        parse_prometheus("ok 1\n" + bad + "\n")


@pytest.fixture
def endpoint() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = TEXT.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_fetch_reads_a_real_http_endpoint(endpoint: str) -> None:
    assert observe(fetch(endpoint), workflow="qa").throughput == 120.5


def test_unreachable_endpoint_is_one_line_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendUnavailable, match="unreachable"):
        fetch(f"http://127.0.0.1:{port}/metrics", timeout=2)
    with pytest.raises(InputError):
        fetch("file:///etc/passwd")
