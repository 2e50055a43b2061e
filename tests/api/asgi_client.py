"""A synchronous test client that calls an ASGI app in-process through httpx's ASGITransport.

Starlette's TestClient does not work with every httpx release (0.28 dropped the argument it
passes), and the two gradio environments carry different ones; ASGITransport works with both.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class AsgiClient:
    def __init__(self, app: Any, base_url: str = "http://testserver", headers: dict | None = None):
        self.app = app
        self.base_url = base_url
        self.headers = dict(headers or {})

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._request(method, url, **kwargs))

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=self.base_url, headers=self.headers) as client:
            response = await client.request(method, url, **kwargs)
            await response.aread()
            return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)
