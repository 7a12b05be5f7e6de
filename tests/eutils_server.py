"""A local stand-in for NCBI E-utilities (127.0.0.1, ephemeral port, a thread) replaying the
recorded-style answers in tests/data/eutils/. Tests script failures (429s, 5xx, a malformed
batch) and read back every request it received."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DATA = Path(__file__).resolve().parent / "data" / "eutils"
QUERY = "focal segmental glomerulosclerosis AND rituximab"


def _read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@dataclass
class Script:
    """What the server answers; tests change it between runs."""

    searches: dict[str, str] = field(default_factory=lambda: {QUERY: "esearch_rituximab.xml"})
    fail: list[tuple[str, int]] = field(default_factory=list)  # (endpoint, status) answered first, in order
    malformed_retstarts: set[int] = field(default_factory=set)  # EFetch batches answered with broken XML
    retry_after: str = "0"


class EUtilsStandIn:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.records = {p.stem: p.read_text(encoding="utf-8") for p in sorted((DATA / "records").glob("*.xml"))}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlparse(self.path)
                endpoint = url.path.rsplit("/", 1)[-1]
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                stand_in.requests.append((endpoint, params))
                status, body, headers = stand_in.answer(endpoint, params)
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/entrez/eutils/"

    def start(self) -> "EUtilsStandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, endpoint: str) -> list[dict[str, str]]:
        return [p for e, p in self.requests if e == endpoint]

    # -- answers -----------------------------------------------------------------------

    def _search_ids(self, webenv: str) -> list[str]:
        for fixture in self.script.searches.values():
            text = _read(fixture)
            if webenv in text:
                import re

                return re.findall(r"<Id>(\d+)</Id>", text)
        return []

    def answer(self, endpoint: str, params: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        if self.script.fail and self.script.fail[0][0] == endpoint:
            _, status = self.script.fail.pop(0)
            return status, f"<html><body>error {status}</body></html>", {"Retry-After": self.script.retry_after}
        if endpoint == "einfo.fcgi":
            return 200, '<?xml version="1.0" ?><eInfoResult><DbInfo><DbName>pubmed</DbName></DbInfo></eInfoResult>', {}
        if endpoint == "esearch.fcgi":
            fixture = self.script.searches.get(params.get("term", ""), "esearch_empty.xml")
            return 200, _read(fixture), {}
        if endpoint == "efetch.fcgi":
            if "id" in params:
                ids = params["id"].split(",")
            else:
                ids = self._search_ids(params.get("WebEnv", ""))
                start = int(params.get("retstart", 0))
                ids = ids[start:start + int(params.get("retmax", 20))]
                if start in self.script.malformed_retstarts:
                    body = _read("efetch_head.xml") + "".join(self.records[i] for i in ids)
                    return 200, body[: len(body) // 2], {}  # cut mid-record: broken XML
            body = (_read("efetch_head.xml") + "".join(self.records[i] for i in ids if i in self.records)
                    + _read("efetch_tail.xml"))
            return 200, body, {}
        return 404, "unknown endpoint", {}
