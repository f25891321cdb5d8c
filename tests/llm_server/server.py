"""Test LLM server on 127.0.0.1: OpenAI ``POST /v1/chat/completions`` and Anthropic
``POST /v1/messages``, answering with the drawn world's ground-truth concepts.

Failure modes are scripted per request (``server.script("429", times=2)``) or per class
(``when_class=...``): 429 with Retry-After, 500, slow (beyond the client's timeout),
malformed JSON, refusal, empty content, 401 (echoing the presented key, as real APIs echo
a masked one). ``delay`` answers every request after a fixed time (the benchmark).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "429", "500", "slow", "malformed", "refusal", "empty", "401", "prose", "json")
_QUOTED = re.compile(r"\"([^\"]+)\"")


def _world_concepts() -> dict[str, dict[str, list[str]]]:
    """class name -> {kind: [concepts]} for every class of every drawn world."""
    from ceir_sdk.worlds import World

    table: dict[str, dict[str, list[str]]] = {}
    for name in ("world10", "world100_20"):
        world = World(name)
        for class_name in [*world.fine_names, *world.class_names]:
            table.setdefault(class_name, world.oracle.class_concepts(class_name))
    return table


@dataclass
class _Scripted:
    mode: str
    when_class: str | None


class LLMTestServer:
    def __init__(
        self,
        *,
        delay: float = 0.0,
        require_key: str | None = None,
        retry_after: str = "1",
        slow_seconds: float = 3.0,
        default_mode: str = "ok",
    ) -> None:
        self.delay = delay
        self.require_key = require_key
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.default_mode = default_mode
        self.requests: list[dict[str, Any]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._script: deque[_Scripted] = deque()
        self._concepts = _world_concepts()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------
    def script(self, mode: str, times: int = 1, *, when_class: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {MODES}")
        with self._lock:
            self._script.extend(_Scripted(mode, when_class) for _ in range(times))

    def _next_mode(self, class_name: str | None) -> str:
        with self._lock:
            for item in list(self._script):
                if item.when_class is None or item.when_class == class_name:
                    self._script.remove(item)
                    return item.mode
        return self.default_mode

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> LLMTestServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name="llm-test-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, mode: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if mode is None or r["mode"] == mode)

    # -- answers -------------------------------------------------------------
    def answer_text(self, class_name: str | None, kind: str, mode: str) -> str:
        concepts = self._concepts.get(class_name or "", {}).get(kind) or ["an unknown object"]
        if mode == "prose":
            return f"The {kind} of a {class_name} are: " + ", ".join(concepts[:-1]) + f" and {concepts[-1]}."
        if mode == "json":
            return "```json\n" + json.dumps({"concepts": concepts}) + "\n```"
        return "\n".join(f"- {c}" for c in concepts)


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    if not messages:
        return ""
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        return " ".join(block.get("text", "") for block in content if isinstance(block, dict))
    return str(content)


def _kind_of(text: str) -> str:
    lowered = text.lower()
    if "superclass" in lowered:
        return "superclasses"
    if "around" in lowered:
        return "around"
    return "features"


class _Handler(BaseHTTPRequestHandler):
    server_state: LLMTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_POST(self) -> None:
        state = self.server_state
        with state._lock:
            state._in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state._in_flight)
        try:
            self._handle(state)
        finally:
            with state._lock:
                state._in_flight -= 1

    def _handle(self, state: LLMTestServer) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        anthropic = self.path.rstrip("/").endswith("/messages")
        if not anthropic and not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        text = _last_user_text(body)
        quoted = _QUOTED.findall(text)
        class_name = quoted[-1] if quoted else None
        kind = _kind_of(text)
        mode = state._next_mode(class_name)
        presented = (
            self.headers.get("x-api-key", "") if anthropic
            else self.headers.get("Authorization", "").removeprefix("Bearer ")
        )
        if state.require_key is not None and presented != state.require_key and mode == state.default_mode:
            mode = "401"  # scripted failures come first, so a test can see a retry before the 401
        with state._lock:
            state.requests.append({
                "api": "anthropic" if anthropic else "openai",
                "class": class_name, "kind": kind, "mode": mode, "model": body.get("model"),
                "temperature": body.get("temperature"), "time": time.monotonic(),
            })
        if state.delay:
            time.sleep(state.delay)
        self._reply(state, anthropic, body, class_name, kind, mode, presented)

    def _error(
        self, anthropic: bool, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if anthropic:
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            payload = {"error": {"message": message, "type": kind, "code": kind}}
        self._send(status, payload, headers)

    def _reply(
        self, state: LLMTestServer, anthropic: bool, body: dict[str, Any], class_name: str | None,
        kind: str, mode: str, presented: str,
    ) -> None:
        if mode == "401":
            # Real APIs echo (a masked form of) the key; echo it whole to test redaction.
            self._error(anthropic, 401, "authentication_error", f"Incorrect API key provided: {presented}")
            return
        if mode == "429":
            self._error(anthropic, 429, "rate_limit_error", "Rate limit reached", {"retry-after": state.retry_after})
            return
        if mode == "500":
            self._error(anthropic, 500, "api_error", "Internal server error")
            return
        if mode == "malformed":
            self._send(200, None, raw=b'{"id": "broken", "choices": [')
            return
        if mode == "slow":
            time.sleep(state.slow_seconds)
        model = str(body.get("model", "test-model"))
        if mode == "refusal":
            content: str | None = "I'm sorry, but I can't help with that request."
        elif mode == "empty":
            content = ""
        else:
            content = state.answer_text(class_name, kind, mode)
        usage_in, usage_out = len(json.dumps(body)) // 4, len(content or "") // 4
        if anthropic:
            self._send(200, {
                "id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": content}] if content else [],
                "stop_reason": "refusal" if mode == "refusal" else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
            })
            return
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if mode == "refusal":
            message = {"role": "assistant", "content": None, "refusal": content}
        self._send(200, {
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                      "total_tokens": usage_in + usage_out},
        })
