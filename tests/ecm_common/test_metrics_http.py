"""The shared /metrics server over real loopback sockets: load, idle clients, HEAD, encodings."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecm_common.errors import ConfigError
from ecm_common.metrics_http import MetricsServer, metrics_app
from generator.metrics import GeneratorMetrics

# About 100 KiB, so a response takes several socket writes.
EXPOSITION = (
    "# HELP ecm_test_calls_total Calls.\n# TYPE ecm_test_calls_total counter\n"
    + "".join(f'ecm_test_calls_total{{tower="TOWER_{i}"}} {i}\n' for i in range(2500))
).encode()
GZIPPED = gzip.compress(EXPOSITION)
TIMEOUT_S = 10.0


def start(**kw: int) -> MetricsServer:
    """A started server over the fixed exposition on an ephemeral loopback port."""
    app = metrics_app("ECM test", lambda: EXPOSITION, lambda: "fine", lambda: GZIPPED)
    srv = MetricsServer(app, "127.0.0.1", 0, **kw)
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    """One server shared by the tests that only send requests."""
    srv = start()
    yield srv
    srv.stop()


def request(
    srv: MetricsServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one request on a new connection.

    Only the given headers are sent: no Accept-Encoding unless asked.
    """
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT_S)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(srv: MetricsServer, data: bytes) -> bytes:
    """Everything the server sends back to raw request bytes, until it closes the connection."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_fifty_parallel_clients_all_get_the_whole_exposition(server: MetricsServer) -> None:
    clients = 50
    start_line = threading.Barrier(clients)
    results: list[tuple[int, dict[str, str], bytes] | BaseException] = []
    lock = threading.Lock()

    def client(encoding: str) -> None:
        try:
            start_line.wait(timeout=TIMEOUT_S)
            answer: tuple[int, dict[str, str], bytes] | BaseException = request(
                server, "GET", "/metrics", {"Accept-Encoding": encoding}
            )
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            answer = exc
        with lock:
            results.append(answer)

    threads = [
        threading.Thread(target=client, args=("gzip" if i % 2 else "identity",))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == clients
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    for status, headers, body in (r for r in results if not isinstance(r, BaseException)):
        assert status == 200
        assert int(headers["content-length"]) == len(body)
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        assert body == EXPOSITION
    gzipped = sum(
        1 for r in results if not isinstance(r, BaseException) and "content-encoding" in r[1]
    )
    assert gzipped == clients // 2


def test_sockets_that_send_nothing_hold_no_worker_and_are_closed_after_the_idle_timeout() -> None:
    srv = start(idle_timeout_s=1, threads=2)
    idle: list[socket.socket] = []
    try:
        # Many more silent or half-sent connections than worker threads.
        for i in range(30):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT_S)
            if i % 3 == 0:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            idle.append(sock)
        # Other clients are served while those are still open.
        for _ in range(5):
            status, _, body = request(srv, "GET", "/metrics")
            assert (status, body) == (200, EXPOSITION)
        # The server closes every idle one by itself (recv sees end of stream, not our timeout).
        for sock in idle:
            assert sock.recv(1024) == b""
        assert request(srv, "GET", "/healthz")[0] == 200
    finally:
        for sock in idle:
            sock.close()
        srv.stop()


def test_head_sends_the_get_headers_and_no_body(server: MetricsServer) -> None:
    for encoding, expected in (("identity", EXPOSITION), ("gzip", GZIPPED)):
        ask = f"HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {encoding}\r\nConnection: close\r\n\r\n"
        got = raw(server, f"HEAD /metrics {ask}".encode())
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b""
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (ln.partition(":") for ln in head.decode().split("\r\n")[1:])
        )
        assert int(fields["content-length"]) == len(expected)
        _, get_headers, get_body = request(server, "GET", "/metrics", {"Accept-Encoding": encoding})
        assert get_body == expected
        for name in ("content-type", "content-length", "vary"):
            assert fields[name] == get_headers[name]
        assert fields.get("content-encoding") == get_headers.get("content-encoding")


# Accept-Encoding value -> whether the answer is gzip (RFC 9110 12.5.3, q-values included).
ACCEPT_ENCODING = [
    (None, False),  # no header: no coding
    ("", False),  # empty: the client wants no coding
    ("gzip", True),
    ("GZIP", True),  # tokens are case-insensitive
    ("x-gzip", True),  # the same coding (RFC 9110 8.4.1.3)
    ("gzip, deflate, br", True),
    ("gzip;q=0", False),
    ("gzip; Q=0.000", False),
    ("gzip;q=0.001", True),
    ("gzip;q=0.5", True),  # identity not named: it comes last
    ("gzip;q=0.5, identity", False),  # identity weighs more
    ("gzip;q=0.5, identity;q=0.4", True),
    ("identity;q=0, gzip", True),
    ("identity;q=0", False),  # nothing acceptable: an answer without coding interoperates
    ("*", True),
    ("*;q=0", False),
    ("*;q=0, identity", False),
    ("gzip;q=0, *", False),  # named gzip beats the wildcard
    ("*;q=0.5, identity;q=0.6", False),
    ("*;q=0.5, identity;q=0.4", True),
    ("br, deflate", False),
    ("gzip;q=abc", False),  # an invalid weight drops the element
    ("gzip;q=1.5", False),
    (" , gzip ;q=1 ,", True),  # empty list elements and spaces are allowed
]


@pytest.mark.parametrize(("header", "gzipped"), ACCEPT_ENCODING)
def test_accept_encoding_is_honoured_with_q_values(
    server: MetricsServer, header: str | None, gzipped: bool
) -> None:
    status, headers, body = request(
        server, "GET", "/metrics", {} if header is None else {"Accept-Encoding": header}
    )
    assert status == 200
    assert headers["vary"] == "Accept-Encoding"
    assert headers.get("content-encoding") == ("gzip" if gzipped else None)
    assert (gzip.decompress(body) if gzipped else body) == EXPOSITION


def test_other_paths_are_404_and_other_methods_405(server: MetricsServer) -> None:
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "GET", "/metrics/x")[0] == 404
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = request(server, method, "/metrics")
        assert status == 405
        assert headers["allow"] == "GET, HEAD"
    status, headers, body = request(server, "GET", "/healthz")
    assert (status, body) == (200, b"ok: fine\n")
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'href="/metrics"' in body and b"fine" in body


def test_a_request_too_large_is_refused(server: MetricsServer) -> None:
    status, _, body = request(server, "GET", "/metrics", {"X-Padding": "a" * 64 * 1024})
    assert status == 431, body


def test_a_port_in_use_is_one_clear_error(server: MetricsServer) -> None:
    with pytest.raises(ConfigError) as info:
        MetricsServer(metrics_app("x", bytes, str), "127.0.0.1", server.port)
    assert str(info.value) == f"cannot listen on 127.0.0.1:{server.port}: Address already in use"
    assert info.value.exit_code == 2


def test_an_address_not_on_this_machine_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"^cannot listen on 192\.0\.2\.1:0: "):
        MetricsServer(metrics_app("x", bytes, str), "192.0.2.1", 0)


def test_the_generator_serves_its_registry_through_the_same_server() -> None:
    metrics = GeneratorMetrics()
    metrics.generated.inc(7)
    srv = metrics.serve(0, "127.0.0.1")
    try:
        status, headers, body = request(srv, "GET", "/metrics", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        text = gzip.decompress(body).decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["ecm_generator_calls_generated"].samples[0].value == 7
        metrics.generated.inc(1)  # rendered at each scrape
        body = request(srv, "GET", "/metrics")[2]
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["ecm_generator_calls_generated"].samples[0].value == 8
        with pytest.raises(ConfigError, match="already in use"):
            GeneratorMetrics().serve(srv.port, "127.0.0.1")
    finally:
        srv.stop()
