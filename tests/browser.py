"""Load an HTML file in headless Chromium and report what its images did, with the standard library only.

Chromium is driven over the DevTools Protocol on --remote-debugging-pipe: the browser reads commands on
fd 3 and writes replies and events on fd 4, each a JSON message ended by a NUL byte.
"""

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")

# Waits for every image to settle (load or error) so the answer does not depend on decode timing.
_PROBE = """
(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.complete ? null :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  return {
    title: document.title,
    figures: document.querySelectorAll('figure').length,
    images: imgs.map(i => ({src: i.getAttribute('src').slice(0, 40), alt: i.alt, complete: i.complete,
                            naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight})),
  };
})()
"""


def find() -> str | None:
    """The first Chromium-like binary on PATH, or None."""
    for name in NAMES:
        if path := shutil.which(name):
            return path
    return None


class _Pipe:
    """One DevTools session over the two pipes; every read is bounded by the caller's deadline."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer = b""
        self.next_id = 0

    def _message(self) -> dict:
        while b"\0" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("no answer from the browser in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        wanted = self.send(method, params, session)
        while (message := self._message()).get("id") != wanted:
            pass  # events and other replies are not needed here
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    def wait_event(self, method: str, session: str) -> dict:
        while True:
            message = self._message()
            if message.get("method") == method and message.get("sessionId") == session:
                return message["params"]


def inspect(html: Path, timeout: float = 60.0, binary: str | None = None) -> dict:
    """Open `html` as a file:// page, wait for its load event and for every image to settle.

    Returns {"title", "figures", "images": [{"src" (first 40 characters), "alt", "complete",
    "naturalWidth", "naturalHeight"}]}. Raises TimeoutError past `timeout` seconds; the browser and
    its children are always killed.
    """
    binary = binary or find()
    if binary is None:
        raise FileNotFoundError(f"none of {', '.join(NAMES)} on PATH")
    deadline = time.monotonic() + timeout
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def wire_fds():
        # Copy above 4 first so that neither dup2 overwrites the other pipe end.
        a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with tempfile.TemporaryDirectory(prefix="impressions-browser-", ignore_cleanup_errors=True) as profile:
        log = Path(profile) / "stderr.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                 f"--user-data-dir={profile}/data", "--no-first-run", "--no-default-browser-check",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=(3, 4), preexec_fn=wire_fds, start_new_session=True,
            )  # fmt: skip
        # The child holds its own copies; closing ours lets a dead browser show up as end of file.
        os.close(to_browser_r)
        os.close(from_browser_w)
        try:
            pipe = _Pipe(to_browser_w, from_browser_r, deadline)
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.call("Page.enable", session=session)
            pipe.call("Page.navigate", {"url": Path(html).resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired", session)
            reply = pipe.call("Runtime.evaluate", {"expression": _PROBE, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)  # fmt: skip
            if "exceptionDetails" in reply:
                raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
            return reply["result"]["value"]
        except (TimeoutError, RuntimeError) as e:
            tail = log.read_text(errors="replace")[-2000:]
            raise type(e)(f"{e}; browser stderr:\n{tail}") from e
        finally:
            _kill(proc)
            os.close(to_browser_w)
            os.close(from_browser_r)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the browser's whole process group (renderers, zygote) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def broken(result: dict) -> list[dict]:
    """The images that did not load: not complete or no natural width."""
    return [i for i in result["images"] if not i["complete"] or i["naturalWidth"] <= 0]
