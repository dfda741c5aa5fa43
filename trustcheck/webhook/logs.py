"""The webhook's logs: JSON lines on stderr, one per review (:class:`ReviewLog`)."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any, Literal

import orjson


class _Clock:
    """RFC 3339 UTC times with milliseconds (the seconds formatted once a second)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def stamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's
    ``fields`` (``extra={"fields": {...}}``); exceptions as ``error`` and
    ``traceback``."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self._clock.stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            doc["error"] = f"{type(exc).__name__}: {exc}"
            doc["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(doc, default=str).decode()


class ReviewLog:
    """The review log: one JSON line per review, in the layout of :class:`JsonFormatter`
    (``"msg": "review"``), written in batches (it is on the hot path).

    Lines are written when ``limit`` bytes are waiting, by :meth:`flush` (the server
    calls it every ``interval`` seconds and at shutdown), and at once for denials.
    ``stream`` None: ``sys.stderr`` at the time of writing.
    """

    def __init__(self, stream: Any = None, *, limit: int = 64 << 10, interval: float = 0.25):
        self.stream = stream
        self.limit = limit
        self.interval = interval
        self._parts: list[bytes] = []
        self._size = 0
        self._clock = _Clock()
        self._lock = threading.Lock()

    def write(self, fields: Mapping[str, Any], *, urgent: bool = False) -> None:
        doc = {
            "time": self._clock.stamp(time.time()),
            "level": "info",
            "logger": "trustcheck.webhook.review",
            "msg": "review",
            **fields,
        }
        line = orjson.dumps(doc, default=str) + b"\n"
        with self._lock:
            self._parts.append(line)
            self._size += len(line)
            full = self._size >= self.limit
        if full or urgent:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            parts, self._parts, self._size = self._parts, [], 0
        if not parts:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            stream.write(b"".join(parts).decode())
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not take reviews down


#: ``logs.level``
LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")


def configure_logging(level: LogLevel = "info", stream: Any = None) -> None:
    """JSON lines on stderr for trustcheck and uvicorn."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
