#!/usr/bin/env python3
"""A webhook receiver for the alert end-to-end test: listens on 127.0.0.1:PORT, checks each
POST's X-Vigil-Signature (t=SECONDS,v1=HEX of HMAC-SHA256(secret, "SECONDS." + body)) as
docs/alerts.md tells receivers to, and appends one line per request to OUT: the body when the
signature verifies, "BAD-SIGNATURE" otherwise. Answers 200 to good requests, 401 to bad ones.
Usage: webhook_receiver.py PORT SECRET_FILE OUT"""
import hashlib
import hmac
import http.server
import sys

port, secret_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
secret = open(secret_file, "rb").read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("X-Vigil-Signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        expected = hmac.new(secret, parts.get("t", "").encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        good = hmac.compare_digest(expected, parts.get("v1", ""))
        with open(out, "ab") as f:
            f.write((body if good else b"BAD-SIGNATURE") + b"\n")
        self.send_response(200 if good else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
