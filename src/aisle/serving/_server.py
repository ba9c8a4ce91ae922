"""How the service is run: uvicorn's fastest installed HTTP parser and event loop.

``aisle serve`` and ``benchmarks/bench_serving.py`` (for the service and for the framework
floor alike) take their uvicorn settings from here, so they always match.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["uvicorn_options"]


def uvicorn_options() -> dict[str, Any]:
    """``http`` and ``loop`` for ``uvicorn.run``: httptools and uvloop when installed (the ``serve``
    extra installs both with ``uvicorn[standard]``), else uvicorn's pure-Python h11 and asyncio."""
    have = importlib.util.find_spec
    return {
        "http": "httptools" if have("httptools") is not None else "h11",
        "loop": "uvloop" if have("uvloop") is not None else "asyncio",
        "access_log": False,
        "server_header": True,
        "date_header": True,
    }

