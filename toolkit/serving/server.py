"""The HTTP server: aiohttp routes over a `PredictionService` and a `Batcher`, its limits, an optional
bearer token, `/metrics`, and a graceful stop on SIGTERM.

| route | answers |
|---|---|
| `POST /predict` `{"texts": [...], "min_labels": N, "max_labels": N}` | 200 `{"predictions": [...]}`, one record per text, as `predict` writes it |
| `GET /health` | 200 `{"status": "ok", "task", "run"}` once the model is loaded; 503 `{"status": "loading"}` before |
| `GET /metrics` | Prometheus' text format (`toolkit.serving.metrics`) |

Anything wrong is `{"error": "one line"}` with its status: 400 (not UTF-8, not
JSON), 401 (the token missing or wrong), 404, 405, 413 (body, text or text count
over the limits), 415 (not JSON), 422 (JSON of the wrong shape, a decision rule
that does not fit the run), 500 (the model call failed; the server goes on),
503 with `Retry-After` (the queue is full, or the model is still loading).

The server listens before the model is loaded, so `/health` says when it is
ready; the model loads in the thread that runs every model call. SIGTERM (or
SIGINT) closes the listening socket, answers every request already received
(each is in the queue or in the model call), then stops the model thread and
returns.
"""

import asyncio
import hmac
import ipaddress
import json
import logging
import signal
import time
from collections.abc import Callable
from typing import Optional

from aiohttp import web

from toolkit.serving import ServeError
from toolkit.serving.batcher import Batcher, QueueFull
from toolkit.serving.limits import ServeLimits
from toolkit.serving.metrics import CONTENT_TYPE, ServerMetrics
from toolkit.serving.model import PredictionService
from toolkit.serving.validation import RequestError, check_content_type, parse_predict_body

__all__ = ["Server", "serve", "TOKEN_VARIABLE"]

logger = logging.getLogger("toolkit")

#: The environment variable `serve` reads the bearer token from when `--token` is not given.
TOKEN_VARIABLE = "ZLPR_SERVE_TOKEN"
#: The routes, by path (the `path` label of the metrics; any other path counts as `other`).
ROUTES = {"/predict": "POST", "/health": "GET", "/metrics": "GET"}
_ROUTE_LIST = ", ".join(f"{method} {path}" for path, method in ROUTES.items())


def _json_response(status: int, data: dict, headers: Optional[dict] = None) -> web.Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return web.Response(status=status, body=body, content_type="application/json", charset="utf-8", headers=headers)


def _shown(path: str) -> str:
    """A request path for an error message: quoted, and cut when long."""
    return repr(path if len(path) <= 80 else path[:77] + "...")


def is_loopback(host: str) -> bool:
    """Whether `host` is reached only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """One run served over HTTP (see the module docstring).

    Args:
        service: the run's model side (`PredictionService`).
        limits: sizes, queue and batching (`ServeLimits`; None: its defaults).
        token: requests to `/predict` and `/metrics` must carry
            `Authorization: Bearer <token>` (None: no token; `/health` never needs one).
        log: where the server's lines go.

    In a program: `await server.start(host, port)` (returns the URL), then
    `await server.stop()`; `serve` does both around SIGTERM.
    """

    def __init__(
        self,
        service: PredictionService,
        *,
        limits: Optional[ServeLimits] = None,
        token: Optional[str] = None,
        log: Callable[[str], None] = logger.info,
    ):
        self.service = service
        self.limits = limits = limits or ServeLimits()
        self.token = token or None
        self.log = log
        self.in_progress = 0
        self.load_error: Optional[BaseException] = None
        self.url: Optional[str] = None
        self.metrics = ServerMetrics(
            queue_depth=lambda: self.batcher.depth, in_progress=lambda: self.in_progress, ready=lambda: service.ready
        )
        self.batcher = Batcher(
            service.predict,
            max_batch_texts=limits.max_batch_texts,
            max_wait_ms=limits.max_wait_ms,
            queue_size=limits.queue_size,
            metrics=self.metrics,
        )
        self._runner: Optional[web.AppRunner] = None
        self._loading: Optional[asyncio.Task] = None
        self.failed = asyncio.Event()

    # --- starting and stopping ----------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._answer])
        app.router.add_post("/predict", self._predict)
        app.router.add_get("/health", self._health, allow_head=False)
        app.router.add_get("/metrics", self._metrics, allow_head=False)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> str:
        """Listen on `host:port` (0: a free port) and start loading the model; returns the URL.
        `ServeError` when the address cannot be listened on."""
        await self.batcher.start()
        self._runner = web.AppRunner(
            self.application(), handle_signals=False, access_log=None, shutdown_timeout=self.limits.shutdown_timeout_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            await self.batcher.close()
            raise ServeError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{site.port}"
        if not is_loopback(host) and self.token is None:
            self.log(
                f"warning: listening on {host} without a token: anyone who reaches this machine can use the model "
                f"(give --token or {TOKEN_VARIABLE})"
            )
        self._loading = asyncio.create_task(self._load())
        return self.url

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            await self.batcher.in_worker(self.service.load)
        except Exception as error:  # a damaged model: the caller stops the server and says why
            self.load_error = error
            self.failed.set()
            return
        self.log(f"model loaded in {time.perf_counter() - started:.1f} s: ready")

    async def stop(self) -> None:
        """Stop listening, answer every request received (within `shutdown_timeout_s`), stop the model thread."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.batcher.close()
        if self._loading is not None:
            await self._loading

    # --- answering ---------------------------------------------------------------

    @web.middleware
    async def _answer(self, request: web.Request, handler) -> web.StreamResponse:
        """Every answer: the token, errors as one JSON line with their status, the metrics."""
        started = time.perf_counter()
        path = request.path if request.path in ROUTES else "other"
        counted = path == "/predict"
        self.in_progress += counted
        try:
            if self.token is not None and path != "/health":
                self._check_token(request)
            response = await handler(request)
        except RequestError as error:
            response = _json_response(error.status, {"error": error.message}, error.headers)
        except web.HTTPException as error:  # aiohttp's router: no such path, or another method
            response = self._router_error(request, error)
        except Exception as error:
            logger.exception("error answering %s %s", request.method, request.path)
            message = " ".join(f"{type(error).__name__}: {error}".split())
            response = _json_response(500, {"error": f"internal error: {message}"})
        finally:
            self.in_progress -= counted
        if response.status == 413:
            response.force_close()  # the rest of a body too large is not read
        self.metrics.requests.inc(path, str(response.status))
        self.metrics.request_seconds.observe(time.perf_counter() - started, path)
        return response

    def _check_token(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="zlpr"'}
        if not given:
            raise RequestError(401, "missing Authorization: Bearer <token>", challenge)
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode("utf-8", "surrogateescape"), self.token.encode("utf-8")
        ):
            raise RequestError(401, "wrong token (Authorization: Bearer <token>)", challenge)

    @staticmethod
    def _router_error(request: web.Request, error: web.HTTPException) -> web.Response:
        if error.status == 404:
            message = f"no such path {_shown(request.path)}; the server answers {_ROUTE_LIST}"
        elif error.status == 405:
            message = f"{request.method} is not allowed on {request.path}; use {ROUTES[request.path]}"
        else:
            message = error.reason
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return _json_response(error.status, {"error": message}, headers)

    def _retry_later(self, message: str) -> RequestError:
        return RequestError(503, message, {"Retry-After": str(self.limits.retry_after_s)})

    async def _predict(self, request: web.Request) -> web.Response:
        if not self.service.ready:
            raise self._retry_later("the model is still loading; retry shortly (GET /health says when it is ready)")
        content_type = request.headers.get("Content-Type")
        check_content_type(content_type)
        limit = self.limits.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise RequestError(413, f"the body has {declared} bytes; at most {limit}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestError(413, f"the body has more than {limit} bytes; at most {limit}") from None
        except ConnectionError:  # the client went away in the middle of its body: nobody to answer
            raise RequestError(400, "the connection closed before the whole body came") from None
        parsed = parse_predict_body(body, content_type, self.limits)
        key = self.service.rule_key(parsed.rule)
        try:
            records = await self.batcher.submit(parsed.texts, key)
        except QueueFull as full:
            raise self._retry_later(f"overloaded: {full}; retry after {self.limits.retry_after_s} s") from None
        except Exception as error:
            logger.exception("the model call failed")
            message = " ".join(f"{type(error).__name__}: {error}".split())
            raise RequestError(500, f"the model call failed: {message}") from None
        return _json_response(200, {"predictions": records})

    async def _health(self, request: web.Request) -> web.Response:
        if self.service.ready:
            return _json_response(200, {"status": "ok", **self.service.describe()})
        if self.load_error is not None:
            return _json_response(503, {"status": "failed", "error": str(self.load_error)})
        return _json_response(503, {"status": "loading"}, {"Retry-After": str(self.limits.retry_after_s)})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    # --- the command ----------------------------------------------------------------

    async def serve_until_signal(self, host: str, port: int) -> None:
        """Start, run until SIGTERM or SIGINT (or a model that fails to load), then stop gracefully;
        re-raises the load's error."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        received = []

        def on_signal(number):
            received.append(signal.Signals(number).name)
            stop.set()

        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, on_signal, number)
        try:
            url = await self.start(host, port)
            service = self.service
            self.log(f"serving {service.pipeline.run_folder.path} ({service.task}): loading its model")
            self.log(f"listening on {url} ({_ROUTE_LIST}); SIGTERM stops it")
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self.failed.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            if received:
                busy = self.in_progress
                self.log(f"{received[0]}: answering the {busy} request(s) in flight, then stopping")
            await self.stop()
        finally:
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(number)
        if self.load_error is not None:
            raise self.load_error
        self.log("stopped")


def serve(
    run_dir,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: Optional[str] = None,
    limits: Optional[ServeLimits] = None,
    rule: Optional[dict] = None,
    log: Callable[[str], None] = logger.info,
) -> None:
    """Serve a run folder's best model until SIGTERM or SIGINT (`python -m toolkit serve`).

    `rule` changes the run's decision rule for every request (`{"min_labels": 1}`,
    classification runs; `Pipeline.decision_rule`). Raises the errors of a run
    that cannot be served (`ConfigError`, `SavedModelError`) and `ServeError`
    (the address is in use, say).
    """
    from toolkit.pipeline import Pipeline

    pipeline = Pipeline.from_run(run_dir, log=log)
    settings = pipeline.decision_rule(rule or {}, spell=lambda name: "--" + name.replace("_", "-"))
    server = Server(PredictionService(pipeline, settings=settings), limits=limits, token=token, log=log)
    asyncio.run(server.serve_until_signal(host, port))
