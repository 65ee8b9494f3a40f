"""handson.serve: the service batches concurrent requests, loses none, and answers bad input with 4xx."""
import asyncio
import threading
import time

import pytest

from handson import serve


def toy_predict(calls):
    def predict_batch(texts):
        calls.append(len(texts))
        time.sleep(0.01)  # a model that takes a while, so requests pile up
        return ["pos" if "good" in t else "neg" for t in texts], [0.9 if "good" in t else 0.8 for t in texts]
    return predict_batch


@pytest.fixture(scope="module")
def server():
    calls = []
    app = serve.create_app(toy_predict(calls), max_batch_size=16, max_wait_ms=20, max_text_chars=50,
                           max_items=8)
    with serve.ServerThread(app) as running:
        yield running, calls


def test_health_and_a_single_prediction(server):
    import httpx
    running, _ = server
    assert httpx.get(f"{running.url}/health", timeout=10).json()["status"] == "ok"
    reply = httpx.post(f"{running.url}/predict", json={"texts": ["a good film", "dull"]}, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"labels": ["pos", "neg"], "scores": [0.9, 0.8]}


def test_a_burst_of_concurrent_requests_is_batched_and_nothing_is_lost(server):
    running, calls = server
    calls.clear()
    report = serve.load_test(running.url, ["good", "bad", "good plot"], n_requests=120, concurrency=24)
    assert report.sent == 120 and report.ok == 120 and report.failed == 0
    assert len(report.latencies_ms) == 120
    assert sum(calls) == 120, "every text must reach the model exactly once"
    assert max(calls) > 1, "concurrent requests should share batches"
    assert max(calls) <= 16, "no batch may exceed max_batch_size"
    summary = report.summary()
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    import httpx
    health = httpx.get(f"{running.url}/health", timeout=10).json()
    assert health["requests_in"] == health["requests_out"]


@pytest.mark.parametrize("body,status,words", [
    (b"not json", 400, "not JSON"),
    (b'{"text": ["x"]}', 422, 'missing "texts"'),
    (b'{"texts": []}', 422, "empty"),
    (b'{"texts": "just one string"}', 422, "list of strings"),
    (b'{"texts": ["ok", 3]}', 422, "texts[1] is int"),
    (b'{"texts": ["ok", null]}', 422, "texts[1] is NoneType"),
    (b'{"texts": [' + b",".join([b'"x"'] * 9) + b"]}", 413, "limit is 8"),
    (b'{"texts": ["' + b"y" * 51 + b'"]}', 413, "51 characters"),
    (b"[1, 2]", 422, 'missing "texts"'),
])
def test_bad_input_gets_a_4xx_with_a_message_and_the_server_keeps_serving(server, body, status, words):
    import httpx
    running, _ = server
    reply = httpx.post(f"{running.url}/predict", content=body, timeout=10,
                       headers={"content-type": "application/json"})
    assert reply.status_code == status
    assert words in reply.json()["error"]
    assert httpx.post(f"{running.url}/predict", json={"texts": ["good"]}, timeout=10).status_code == 200


def test_a_failing_model_is_reported_and_does_not_kill_the_worker():
    import httpx
    state = {"fail": True}

    def flaky(texts):
        if state["fail"]:
            raise RuntimeError("out of memory")
        return ["x"] * len(texts), [1.0] * len(texts)

    with serve.ServerThread(serve.create_app(flaky, max_wait_ms=0)) as running:
        reply = httpx.post(f"{running.url}/predict", json={"texts": ["a"]}, timeout=10)
        assert reply.status_code == 503 and "out of memory" in reply.json()["error"]
        state["fail"] = False
        assert httpx.post(f"{running.url}/predict", json={"texts": ["a"]}, timeout=10).json()["labels"] == ["x"]


def test_the_test_client_path_works_without_a_socket():
    from fastapi.testclient import TestClient
    calls = []
    with TestClient(serve.create_app(toy_predict(calls))) as client:
        assert client.post("/predict", json={"texts": ["good"]}).json()["labels"] == ["pos"]
        assert client.post("/predict", content=b"{").status_code == 400


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_wait_ms": -1}, {"max_text_chars": 0},
                                    {"max_items": 2.5}])
def test_create_app_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        serve.create_app(lambda t: (t, t), **kwargs)


def test_create_app_needs_a_function():
    with pytest.raises(TypeError):
        serve.create_app("model.safetensors")


def test_load_test_targets_only_this_machine_and_is_bounded():
    with pytest.raises(ValueError, match="this machine"):
        serve.load_test("http://10.0.0.1:80", ["x"])
    with pytest.raises(ValueError):
        serve.load_test("http://127.0.0.1:1", ["x"], n_requests=0)
    with pytest.raises(ValueError):
        serve.load_test("http://127.0.0.1:1", [])
    # nothing listens on port 1: every request fails fast, none hangs
    report = serve.load_test("http://127.0.0.1:1", ["x"], n_requests=3, concurrency=2, timeout_s=2)
    assert report.ok == 0 and report.failed == 3


def test_load_test_runs_inside_a_running_event_loop(server):
    running, _ = server

    async def inside():
        return serve.load_test(running.url, ["good"], n_requests=5, concurrency=2)

    assert asyncio.run(inside()).ok == 5


def test_percentiles_of_a_report():
    report = serve.LoadReport([1.0, 2.0, 3.0, 4.0], sent=4, ok=4, failed=0, wall_s=2.0)
    assert report.percentile(50) == 2.5 and report.percentile(100) == 4.0 and report.throughput == 2.0
    with pytest.raises(ValueError):
        serve.LoadReport([], 1, 0, 1, 1.0).percentile(50)


def test_no_server_threads_are_left_behind():
    before = threading.active_count()
    with serve.ServerThread(serve.create_app(toy_predict([]))):
        pass
    time.sleep(0.2)
    assert threading.active_count() <= before + 1
