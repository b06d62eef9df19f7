"""vlmref.datasets.images against real files and a real HTTP server on 127.0.0.1 (no network beyond loopback)."""

from __future__ import annotations

import base64
import io
import os
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from vlmref.datasets.images import (
    ImageOptions,
    classify_image_ref,
    fetch_url,
    image_size,
    load_image,
    open_image,
    resolve_image_path,
)
from vlmref.errors import ImageLoadError, TemplateInputError
from vlmref.templates.media import image_hw

FAST = ImageOptions(timeout=2.0, retries=1, backoff=0.01)


def png_bytes(width: int = 8, height: int = 6, color=(10, 200, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png_bytes()


# --------------------------------------------------------------------------------------------- HTTP server


class Handler(BaseHTTPRequestHandler):
    """Routes by path; ``server.hits`` counts requests per full path (query included)."""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def send_body(self, body: bytes, *, status: int = 200, length: bool = True, ctype: str = "image/png") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] += 1
            hits = self.server.hits[self.path]
        route = self.path.split("?")[0]
        try:
            if route == "/image.png":
                self.send_body(PNG)
            elif route == "/flaky.png":
                self.send_body(PNG) if hits > 1 else self.send_error(500)
            elif route == "/broken.png":
                self.send_error(500)
            elif route == "/slow.png":
                time.sleep(0.8)
                self.send_body(PNG)
            elif route == "/big.png":
                self.send_body(b"\x89PNG" + b"\0" * 4096, length="nolength" not in self.path)
            elif route == "/corrupt.png":
                self.send_body(b"<html>not an image</html>", ctype="text/html")
            elif route == "/short.png":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(PNG[:10])
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, size cap): expected


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.hits = Counter()
    httpd.lock = threading.Lock()
    httpd.handle_error = lambda request, address: None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("VLMREF_CACHE", str(root))
    return root


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def reason_of(call, *args, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        call(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------------------------- URLs


def test_url_is_downloaded_once_then_served_from_the_cache(server, cache_root) -> None:
    link = url(server, "/image.png?case=cache")
    image = load_image(link, options=FAST)
    assert image.mode == "RGB" and image.size == (8, 6) and image.getpixel((0, 0)) == (10, 200, 30)
    assert image_size(link, options=FAST) == (6, 8)
    path = fetch_url(link, FAST)
    assert server.hits["/image.png?case=cache"] == 1
    assert Path(path).is_relative_to(cache_root / "images") and Path(path).read_bytes() == PNG


def test_cache_is_keyed_by_url(server) -> None:
    first, second = url(server, "/image.png?case=key1"), url(server, "/image.png?case=key2")
    assert fetch_url(first, FAST) != fetch_url(second, FAST)
    fetch_url(first, FAST)
    assert server.hits["/image.png?case=key1"] == 1 and server.hits["/image.png?case=key2"] == 1


def test_without_cache_every_load_downloads_and_nothing_is_written(server, cache_root, tmp_path) -> None:
    options = ImageOptions(cache=False, cache_dir=str(tmp_path / "unused"))
    link = url(server, "/image.png?case=nocache")
    assert load_image(link, options=options).size == (8, 6)
    assert load_image(link, options=options).size == (8, 6)
    assert server.hits["/image.png?case=nocache"] == 2
    assert not (tmp_path / "unused").exists() and not (cache_root / "images").exists()
    temporary = fetch_url(link, options)
    try:
        assert Path(temporary).read_bytes() == PNG
    finally:
        os.unlink(temporary)


def test_cache_dir_option_overrides_the_default(server, tmp_path) -> None:
    path = fetch_url(url(server, "/image.png?case=dir"), ImageOptions(cache_dir=str(tmp_path / "mine")))
    assert Path(path).is_relative_to(tmp_path / "mine")


def test_404_is_unreachable_without_retries(server) -> None:
    err = reason_of(load_image, url(server, "/nothing.png"), options=ImageOptions(retries=3, backoff=0.01))
    assert err.reason == "unreachable" and "404" in str(err)
    assert server.hits["/nothing.png"] == 1


def test_500_is_retried_and_the_retry_succeeds(server) -> None:
    assert load_image(url(server, "/flaky.png?case=a"), options=FAST).size == (8, 6)
    assert server.hits["/flaky.png?case=a"] == 2


def test_500_on_every_attempt_is_unreachable(server) -> None:
    err = reason_of(fetch_url, url(server, "/broken.png"), ImageOptions(retries=2, backoff=0.01))
    assert err.reason == "unreachable" and "500" in str(err) and "3 attempts" in str(err)
    assert server.hits["/broken.png"] == 3


def test_slow_server_times_out_after_all_attempts(server) -> None:
    started = time.monotonic()
    err = reason_of(load_image, url(server, "/slow.png?case=t"), options=ImageOptions(timeout=0.3, retries=1,
                                                                                       backoff=0.01))
    assert err.reason == "timeout" and "2 attempts" in str(err) and "0.3 s" in str(err)
    assert time.monotonic() - started < 5  # bounded, not a tight speed check


def test_oversized_body_with_content_length(server) -> None:
    err = reason_of(fetch_url, url(server, "/big.png?case=len"), ImageOptions(max_bytes=1000))
    assert err.reason == "too_large" and "Content-Length" in str(err)
    assert server.hits["/big.png?case=len"] == 1  # not retried


def test_oversized_body_without_content_length_is_capped_while_streaming(server) -> None:
    err = reason_of(fetch_url, url(server, "/big.png?case=nolength"), ImageOptions(max_bytes=1000))
    assert err.reason == "too_large" and "max_bytes=1000" in str(err)


def test_corrupt_body_is_reported_and_not_cached(server) -> None:
    link = url(server, "/corrupt.png")
    err = reason_of(load_image, link, options=FAST)
    assert err.reason == "corrupt" and "text/html" in str(err)
    reason_of(load_image, link, options=FAST)
    assert server.hits["/corrupt.png"] == 2


def test_body_shorter_than_content_length_is_retried_then_unreachable(server) -> None:
    err = reason_of(fetch_url, url(server, "/short.png"), ImageOptions(retries=1, backoff=0.01))
    assert err.reason == "unreachable" and server.hits["/short.png"] == 2


def test_refused_connection_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = reason_of(fetch_url, f"http://127.0.0.1:{port}/x.png", ImageOptions(retries=1, backoff=0.01))
    assert err.reason == "unreachable" and "2 attempts" in str(err)


def test_url_with_spaces_is_quoted(server) -> None:
    err = reason_of(fetch_url, url(server, "/no such.png"), FAST)
    assert err.reason == "unreachable" and server.hits["/no%20such.png"] == 1


# --------------------------------------------------------------------------------------------- other sources


def test_base64_and_data_uris() -> None:
    text = base64.b64encode(PNG).decode()
    assert classify_image_ref(text) == "base64"
    assert load_image(text).size == (8, 6)
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert load_image(wrapped).size == (8, 6)
    assert load_image(base64.urlsafe_b64encode(PNG).decode()).size == (8, 6)
    assert classify_image_ref(f"data:image/png;base64,{text}") == "data_uri"
    assert image_size(f"data:image/png;base64,{text}") == (6, 8)
    assert image_size(f"data:;base64,{text}") == (6, 8)


def test_bad_base64_and_data_uris() -> None:
    assert reason_of(load_image, "data:image/png;base64,@@@@").reason == "invalid_base64"
    assert reason_of(load_image, "data:image/png;base64").reason == "invalid_base64"
    assert reason_of(load_image, f"data:text/plain;base64,{base64.b64encode(PNG).decode()}").reason == "unsupported"
    assert reason_of(load_image, "data:image/png;base64," + base64.b64encode(b"x" * 64).decode()).reason == "corrupt"
    assert reason_of(load_image, "A" * 300 + "!").reason == "invalid_base64"  # too long for a path name
    assert reason_of(load_image, base64.b64encode(PNG).decode(), options=ImageOptions(max_bytes=10)).reason == (
        "too_large"
    )


def test_error_ref_is_short_for_huge_strings() -> None:
    payload = "data:image/png;base64," + "A" * 2_000_000 + "!"
    err = reason_of(load_image, payload)
    assert len(str(err)) < 300 and err.ref.startswith("data:image/png;base64,AAAA") and "2000023 chars" in err.ref


def test_pil_passthrough() -> None:
    original = Image.new("RGBA", (5, 3), (0, 0, 255, 255))
    assert classify_image_ref(original) == "pil"
    assert open_image(original) is original and image_size(original) == (3, 5)
    rgb = load_image(original)
    assert rgb is not original and rgb.mode == "RGB" and original.mode == "RGBA"


@pytest.mark.parametrize("ref", [123, b"\x89PNG", None, ["a.png"]])
def test_other_types_are_unsupported(ref) -> None:
    assert reason_of(load_image, ref).reason == "unsupported"


def test_relative_path_with_base_dir_and_home(tmp_path, monkeypatch) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "cat.png").write_bytes(PNG)
    assert classify_image_ref("imgs/cat.png", str(tmp_path)) == "path"
    assert load_image("imgs/cat.png", base_dir=str(tmp_path)).size == (8, 6)
    assert load_image(tmp_path / "imgs" / "cat.png").size == (8, 6)
    assert resolve_image_path(str(tmp_path / "x.png"), "/elsewhere") == str(tmp_path / "x.png")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_image_path("~/imgs/cat.png", "/elsewhere") == str(tmp_path / "imgs" / "cat.png")
    assert image_size("~/imgs/cat.png") == (6, 8)
    (tmp_path / "abcd").write_bytes(PNG)  # a valid-base64 name that exists is a file
    assert classify_image_ref("abcd", str(tmp_path)) == "path"


@pytest.mark.parametrize("ref", ["missing.png", "imgs/missing", "nofile", "abcdefgh", "   "])
def test_missing_files_are_missing_not_invalid_base64(ref, tmp_path) -> None:
    assert classify_image_ref(ref, str(tmp_path)) == "path"
    err = reason_of(load_image, ref, base_dir=str(tmp_path))
    assert err.reason == "missing"


def test_missing_message_names_the_resolved_path(tmp_path) -> None:
    err = reason_of(image_size, "a/b.jpg", base_dir=str(tmp_path))
    assert str(tmp_path / "a" / "b.jpg") in str(err) and "base_dir" in str(err)
    assert reason_of(load_image, str(tmp_path)).reason == "missing"  # a directory


def test_corrupt_and_truncated_files(tmp_path) -> None:
    (tmp_path / "bad.png").write_bytes(b"definitely not an image")
    assert reason_of(load_image, "bad.png", base_dir=str(tmp_path)).reason == "corrupt"
    noisy = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert image_size("cut.png", base_dir=str(tmp_path)) == (200, 200)  # the header is intact
    assert reason_of(load_image, "cut.png", base_dir=str(tmp_path)).reason == "corrupt"
    (tmp_path / "big.png").write_bytes(buffer.getvalue())
    err = reason_of(load_image, "big.png", base_dir=str(tmp_path), options=ImageOptions(max_bytes=1000))
    assert err.reason == "too_large" and "max_bytes=1000" in str(err)


# --------------------------------------------------------------------------------------------- decoding


def test_exif_orientation_6_is_applied_and_image_size_agrees(tmp_path, monkeypatch) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 0, 0)).save(tmp_path / "rot.jpg", "JPEG", exif=exif.tobytes())
    Image.new("RGB", (40, 20), (200, 0, 0)).save(tmp_path / "rot.png", "PNG", exif=exif.tobytes())
    for name in ("rot.jpg", "rot.png"):
        path = str(tmp_path / name)
        assert load_image(path).size == (20, 40)  # (w, h): turned upright
        with monkeypatch.context() as patch:  # image_size must not decode pixels
            patch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels decoded"))
            assert image_size(path) == (40, 20)  # (h, w) of the upright image
        assert image_hw(path, None, "llava-next") == (40, 20)


def craft_png_header(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR claims ``width`` x ``height`` (CRC fixed so PIL trusts the header)."""
    data = bytearray(png_bytes(1, 1))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_is_refused_from_the_header(tmp_path) -> None:
    (tmp_path / "bomb.png").write_bytes(craft_png_header(100_000, 100_000))
    (tmp_path / "wide.png").write_bytes(craft_png_header(9000, 9000))
    err = reason_of(image_size, "bomb.png", base_dir=str(tmp_path))
    assert err.reason == "too_many_pixels"
    huge_limit = ImageOptions(max_pixels=10**12)  # our guard allows it, PIL's own hard limit does not
    assert reason_of(load_image, "bomb.png", base_dir=str(tmp_path), options=huge_limit).reason == "too_many_pixels"
    err = reason_of(load_image, "wide.png", base_dir=str(tmp_path))
    assert err.reason == "too_many_pixels" and "9000x9000" in str(err)
    small_limit = ImageOptions(max_pixels=40)
    assert reason_of(image_size, base64.b64encode(PNG).decode(), options=small_limit).reason == "too_many_pixels"


def save(image: Image.Image, path: Path, fmt: str = "PNG", **kwargs) -> str:
    image.save(path, fmt, **kwargs)
    return str(path)


def test_modes_become_rgb_with_alpha_over_white(tmp_path) -> None:
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 128))
    out = load_image(save(rgba, tmp_path / "rgba.png"))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0))[2] == 255 and 120 <= out.getpixel((1, 0))[0] <= 135  # half blue over white

    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    out = load_image(save(palette, tmp_path / "p.png", transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (0, 255, 0)

    assert load_image(save(Image.new("LA", (1, 1), (0, 0)), tmp_path / "la.png")).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(save(Image.new("L", (1, 1), 77), tmp_path / "l.png")).getpixel((0, 0)) == (77, 77, 77)
    cmyk = load_image(save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), tmp_path / "c.jpg", "JPEG", quality=100))
    red, green, blue = cmyk.getpixel((0, 0))
    assert cmyk.mode == "RGB" and red > 240 and green < 15 and blue < 15
    deep = load_image(save(Image.new("I;16", (1, 1), 65535), tmp_path / "deep.png"))
    assert deep.getpixel((0, 0)) == (255, 255, 255)
    assert load_image(save(Image.new("I;16", (1, 1), 32768), tmp_path / "mid.png")).getpixel((0, 0))[0] == 128


def test_open_image_is_lazy_and_keeps_the_mode(tmp_path) -> None:
    path = save(Image.new("RGBA", (3, 2)), tmp_path / "a.png")
    with open_image(path) as image:
        assert image.mode == "RGBA" and image.size == (3, 2)


# --------------------------------------------------------------------------------------------- templates


def test_image_hw_delegates_for_every_kind(server, tmp_path) -> None:
    text = base64.b64encode(PNG).decode()
    assert image_hw(text, None, "t") == (6, 8)
    assert image_hw(f"data:image/png;base64,{text}", None, "t") == (6, 8)
    assert image_hw(url(server, "/image.png?case=hw"), None, "t") == (6, 8)
    (tmp_path / "a.png").write_bytes(PNG)
    assert image_hw("a.png", str(tmp_path), "t") == (6, 8)
    with pytest.raises(TemplateInputError) as info:
        image_hw("gone.png", str(tmp_path), "llava-next")
    assert info.value.field == "images" and "file not found" in str(info.value)
    with pytest.raises(TemplateInputError, match="unsupported|expected a path"):
        image_hw(42, None, "t")
