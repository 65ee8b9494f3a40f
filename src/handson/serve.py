"""A small, real inference service: FastAPI + dynamic micro-batching (chapter 10).

    app = serve.create_app(predict_batch, max_batch_size=32, max_wait_ms=5)
    with serve.ServerThread(app) as server:            # uvicorn on 127.0.0.1, a free port
        report = serve.load_test(server.url, texts, n_requests=200, concurrency=32)

``predict_batch(texts: list[str]) -> (labels: list[str], scores: list[float])`` is any
batched model. Concurrent requests are queued and answered together: the batcher waits at
most ``max_wait_ms`` after the first queued text for more to arrive, and never runs more
than ``max_batch_size`` texts at once. The model runs in a worker thread, so the event
loop keeps accepting requests while a batch computes.

Bad input gets a 4xx JSON answer ``{"error": "..."}`` -- never a 500 or a dead worker:
a body that is not JSON, no or empty ``texts``, items that are not strings, more than
``max_items`` texts, or a text over ``max_text_chars`` characters.

From a saved model folder (``compress.save_for_serving``)::

    python -m handson.serve --model PATH --port 8000
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from . import validate

try:  # FastAPI resolves the endpoint's annotations in this module's namespace
    from fastapi import Request
except ImportError:  # pragma: no cover - the `chapters` extra installs it
    Request = None

PredictBatch = Callable[[list], tuple]


class BadRequest(Exception):
    """A request the service refuses, with the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def parse_request(body: bytes, *, max_items: int, max_text_chars: int) -> list[str]:
    """The texts of a ``POST /predict`` body, or ``BadRequest`` saying what is wrong."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest(400, 'the body is not JSON; send {"texts": ["...", ...]}') from None
    if not isinstance(payload, dict) or "texts" not in payload:
        raise BadRequest(422, 'missing "texts": send {"texts": ["...", ...]}')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise BadRequest(422, f'"texts" must be a list of strings, got {type(texts).__name__}')
    if not texts:
        raise BadRequest(422, '"texts" is empty; send at least one text')
    if len(texts) > max_items:
        raise BadRequest(413, f'{len(texts)} texts in one request; the limit is {max_items}')
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(422, f'texts[{i}] is {type(text).__name__}, not a string')
        if len(text) > max_text_chars:
            raise BadRequest(413, f'texts[{i}] has {len(text)} characters; the limit is {max_text_chars}')
    return texts


@dataclass
class _Job:
    texts: list
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher did: requests in and out, and the size of every batch it ran."""
    requests_in: int = 0
    requests_out: int = 0
    batch_sizes: list = field(default_factory=list)


class MicroBatcher:
    """Collects concurrent requests into batches for ``predict_batch``."""

    def __init__(self, predict_batch: PredictBatch, max_batch_size: int, max_wait_ms: float):
        self.predict_batch = predict_batch
        self.max_batch_size = validate.positive_int(max_batch_size, "max_batch_size", "MicroBatcher")
        self.max_wait_s = validate.nonnegative_number(max_wait_ms, "max_wait_ms", "MicroBatcher") / 1000
        self.queue: asyncio.Queue | None = None
        self.stats = BatchStats()
        self._task = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, texts: list) -> tuple:
        future = asyncio.get_running_loop().create_future()
        self.stats.requests_in += 1
        await self.queue.put(_Job(texts, future))
        return await future

    async def _collect(self) -> list:
        """The next batch of jobs: the first one, plus whatever arrives within the window."""
        jobs = [await self.queue.get()]
        size = len(jobs[0].texts)
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            try:
                job = self.queue.get_nowait() if timeout <= 0 else \
                    await asyncio.wait_for(self.queue.get(), timeout)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if size + len(job.texts) > self.max_batch_size:
                self.queue.put_nowait(job)  # it starts the next batch (order kept well enough)
                break
            jobs.append(job)
            size += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            texts = [t for job in jobs for t in job.texts]
            self.stats.batch_sizes.append(len(texts))
            try:
                labels, scores = await loop.run_in_executor(None, self.predict_batch, texts)
                labels, scores = list(labels), [float(s) for s in scores]
                if len(labels) != len(texts) or len(scores) != len(texts):
                    raise RuntimeError(f"predict_batch returned {len(labels)} labels for {len(texts)} texts")
            except Exception as exc:  # the model failed: every waiting request hears it
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                n = len(job.texts)
                if not job.future.done():
                    job.future.set_result((labels[start:start + n], scores[start:start + n]))
                start += n
                self.stats.requests_out += 1


def create_app(predict_batch: PredictBatch, max_batch_size: int = 32, max_wait_ms: float = 5.0,
               max_text_chars: int = 2000, max_items: int = 64):
    """A FastAPI app with ``POST /predict`` and ``GET /health`` around ``predict_batch``."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    if not callable(predict_batch):
        raise TypeError(f"create_app(predict_batch=...): expected a function texts -> (labels, scores), "
                        f"got {type(predict_batch).__name__}")
    max_text_chars = validate.positive_int(max_text_chars, "max_text_chars", "create_app")
    max_items = validate.positive_int(max_items, "max_items", "create_app")
    batcher = MicroBatcher(predict_batch, max_batch_size, max_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="handson classifier", lifespan=lifespan)
    app.state.batcher = batcher

    @app.post("/predict")
    async def predict(request: Request):
        try:
            texts = parse_request(await request.body(), max_items=max_items, max_text_chars=max_text_chars)
        except BadRequest as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        try:
            labels, scores = await batcher.submit(texts)
        except Exception as exc:  # the model failed on valid input: say so, keep serving
            return JSONResponse({"error": f"the model failed: {type(exc).__name__}: {exc}"}, status_code=503)
        return {"labels": labels, "scores": scores}

    @app.get("/health")
    async def health():
        stats = batcher.stats
        return {"status": "ok", "requests_in": stats.requests_in, "requests_out": stats.requests_out,
                "batches": len(stats.batch_sizes), "max_batch_size": batcher.max_batch_size,
                "max_wait_ms": batcher.max_wait_s * 1000}

    return app


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, app, port: int | None = None, startup_timeout: float = 30.0):
        import uvicorn
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.startup_timeout = startup_timeout

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + self.startup_timeout
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class LoadReport:
    """Latencies (ms) of a load test, with what was sent and what came back."""
    latencies_ms: list
    sent: int
    ok: int
    failed: int
    wall_s: float

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            raise ValueError("no successful requests to take a percentile of")
        k = (len(data) - 1) * q / 100
        lo, hi = int(k), min(int(k) + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed,
                "p50_ms": self.percentile(50), "p95_ms": self.percentile(95),
                "p99_ms": self.percentile(99), "mean_ms": statistics.fmean(self.latencies_ms),
                "requests_per_s": self.throughput}


def load_test(url: str, texts: Sequence[str], n_requests: int = 200, concurrency: int = 16,
              texts_per_request: int = 1, timeout_s: float = 60.0) -> LoadReport:
    """Send ``n_requests`` POSTs to ``url/predict`` from ``concurrency`` clients at once.

    Bounded in count and in time (``timeout_s`` per request), loopback URLs only.
    """
    import httpx

    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ValueError(f"load_test only targets this machine (127.0.0.1 / localhost), got {url!r}")
    n_requests = validate.positive_int(n_requests, "n_requests", "load_test")
    concurrency = validate.positive_int(concurrency, "concurrency", "load_test")
    texts_per_request = validate.positive_int(texts_per_request, "texts_per_request", "load_test")
    if not texts:
        raise ValueError("load_test(texts=...): give at least one text to send")

    async def main():
        latencies, failed = [], 0
        counter = iter(range(n_requests))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
            async def worker():
                nonlocal failed
                for i in counter:
                    batch = [texts[(i * texts_per_request + j) % len(texts)] for j in range(texts_per_request)]
                    start = time.perf_counter()
                    try:
                        response = await client.post("/predict", json={"texts": batch})
                        good = response.status_code == 200 and len(response.json()["labels"]) == len(batch)
                    except httpx.HTTPError:
                        good = False
                    if good:
                        latencies.append((time.perf_counter() - start) * 1000)
                    else:
                        failed += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, failed, time.perf_counter() - start

    latencies, failed, wall = _run_async(main())
    return LoadReport(latencies, n_requests, len(latencies), failed, wall)


def _run_async(coroutine):
    """Run a coroutine to completion, also inside Jupyter's already-running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result = {}

    def target():
        result["value"] = asyncio.run(coroutine)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result["value"]


def predictor_from_folder(path) -> PredictBatch:
    """``predict_batch`` for a model saved by ``compress.save_for_serving``."""
    from . import compress
    model, tokenizer, meta = compress.load_for_serving(path)
    names = meta["labels"]
    max_len = int(meta.get("max_len", 128))

    import torch

    @torch.inference_mode()
    def predict_batch(texts):
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        probs = torch.softmax(model(**enc).logits.float(), dim=-1)
        scores, ids = probs.max(dim=-1)
        return [names[i] for i in ids.tolist()], scores.tolist()

    return predict_batch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m handson.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="folder written by handson.compress.save_for_serving")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    import uvicorn
    app = create_app(predictor_from_folder(args.model), max_batch_size=args.max_batch_size,
                     max_wait_ms=args.max_wait_ms)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
