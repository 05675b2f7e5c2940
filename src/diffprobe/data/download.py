"""Resumable downloads for pooch: what arrived before an interruption is kept and the rest is asked for.

pooch starts an interrupted download again from the first byte. ``ResumableDownloader`` plugs into
pooch's extension point for that (``pooch.retrieve(url, ..., downloader=ResumableDownloader(part))``):
the bytes go to a ``.part`` file that outlives a failed call, and the next call asks the server for the
rest with an HTTP ``Range`` request. pooch still checks the SHA-256 of the whole file, and deletes it
if it differs, so a part that does not belong to the file can cost one download but never passes.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import requests
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class ResumableDownloader:
    """A pooch downloader that resumes from ``part`` (the file the bytes are written to until complete).

    Called with (url, output_file, pooch) as pooch calls its downloaders: asks for the bytes after those
    already in ``part`` (``Range: bytes=N-``); a 206 answer starting at N is appended, any other success
    (200: the server ignores ranges, or the file changed) restarts the part with the whole file. When the
    transfer completes, the part becomes ``output_file``. A transfer cut off raises (urllib3's
    ``ProtocolError``) and leaves every byte that arrived in the part, for the next call.
    """

    def __init__(self, part: str | Path, *, progressbar: bool = True, timeout_s: float = 60.0,
                 chunk_bytes: int = 1 << 20):
        self.part = Path(part)
        self.progressbar = progressbar
        self.timeout_s = timeout_s
        self.chunk_bytes = chunk_bytes

    def __call__(self, url: str, output_file: str, pooch: object = None) -> None:  # noqa: ARG002 - pooch's signature
        offset = self.part.stat().st_size if self.part.exists() else 0
        response = self._get(url, offset)
        if offset and response.status_code == 416:  # the part is not a prefix of the file (e.g. longer): restart
            response.close()
            offset = 0
            response = self._get(url, offset)
        with response:
            response.raise_for_status()
            resumed = offset > 0 and response.status_code == 206 and _range_start(response) == offset
            if resumed:
                log.info("%s: resuming after %d bytes", url, offset)
            elif offset:
                log.info("%s: the server sent the whole file again (no range support); restarting", url)
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            self.part.parent.mkdir(parents=True, exist_ok=True)
            with open(self.part, "ab" if resumed else "wb") as out, \
                    tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=Path(url.split("?")[0]).name or "download", disable=not self.progressbar) as bar:
                # read1: what has arrived, so a connection cut off mid-chunk keeps every byte it delivered.
                while chunk := response.raw.read1(self.chunk_bytes):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(self.part, output_file)

    def _get(self, url: str, offset: int) -> requests.Response:
        # identity: ranges count the bytes of the file itself, not of a compressed transfer of it.
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        return requests.get(url, headers=headers, stream=True, timeout=self.timeout_s)


def _range_start(response: requests.Response) -> int | None:
    """The first byte a 206 answer holds (``Content-Range: bytes START-END/TOTAL``)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None
