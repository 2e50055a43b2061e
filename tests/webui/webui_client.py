"""A small stdlib-only HTTP client for a running WebUI, and PNG writing/reading without PIL.

Used by ``check_webui.py``; kept apart so the checks read as a list of steps.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.error
import urllib.request
import uuid
import zlib

API = "/train-tools/v1"


class CheckFailed(AssertionError):
    pass


class WebUI:
    def __init__(self, url: str, user: str | None = None, password: str | None = None, timeout: float = 1800):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.auth = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.auth = f"Basic {token}"

    def call(self, method: str, path: str, payload=None, raw: bytes | None = None, content_type: str = "",
             auth: bool = True) -> tuple[int, bytes]:
        data, headers = raw, {}
        if payload is not None:
            data, content_type = json.dumps(payload).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if auth and self.auth:
            headers["Authorization"] = self.auth
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, payload=None, expect=(200, 201), **kwargs):
        status, body = self.call(method, path, payload, **kwargs)
        if status not in expect:
            raise CheckFailed(f"{method} {path} -> {status}: {body[:500].decode('utf-8', 'replace')}")
        return json.loads(body) if body else None

    def upload(self, path: str, files: list[tuple[str, bytes]]):
        boundary = uuid.uuid4().hex
        parts = []
        for name, data in files:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                         f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, answer = self.call("POST", path, raw=body, content_type=f"multipart/form-data; boundary={boundary}")
        if status != 200:
            raise CheckFailed(f"upload -> {status}: {answer[:500].decode('utf-8', 'replace')}")
        return json.loads(answer)


def png_bytes(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG whose pixel (x, y) is ``pixel(x, y)``."""
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_pixels(data: bytes) -> bytes:
    """Decoded pixel bytes of a non-interlaced 8-bit PNG (what the WebUIs return)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise CheckFailed("not a PNG")
    pos, idat, width, height, channels = 8, b"", 0, 0, 3
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or interlace:
                raise CheckFailed(f"unsupported PNG (depth {depth}, interlace {interlace})")
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    out, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], (previous[i - channels] if i >= channels else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                best = min((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))[2]
                line[i] = (line[i] + best) & 255
        out += line
        previous = line
    return bytes(out)


class NaNImage(CheckFailed):
    """The WebUI refused an image whose U-Net output was all NaN (A1111's NaN check)."""


def txt2img(webui: WebUI, prompt: str, seed: int = 1234) -> bytes:
    status, body = webui.call("POST", "/sdapi/v1/txt2img", {
        "prompt": prompt, "negative_prompt": "", "steps": 2, "width": 64, "height": 64, "seed": seed,
        "sampler_name": "Euler", "cfg_scale": 7, "batch_size": 1, "n_iter": 1})
    if status == 500 and b"NansException" in body:
        raise NaNImage(f"all-NaN U-Net output for {prompt!r}")
    if status != 200:
        raise CheckFailed(f"POST /sdapi/v1/txt2img -> {status}: {body[:300].decode('utf-8', 'replace')}")
    return png_pixels(base64.b64decode(json.loads(body)["images"][0]))


def answers(webui: WebUI) -> bool:
    try:
        return webui.call("GET", f"{API}/")[0] == 200
    except OSError:
        return False


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CheckFailed(message)
        time.sleep(0.5)
