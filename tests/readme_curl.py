"""A stand-in for curl, with httpx, for tests/test_readme.py on a machine without curl:
the options the README's walkthrough uses (-s, -X, -H, -d, -w with %{http_code})."""

from __future__ import annotations

import argparse
import sys

import httpx


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="curl")
    parser.add_argument("url")
    parser.add_argument("-s", "--silent", action="store_true")
    parser.add_argument("-X", "--request", default=None)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("-d", "--data", default=None)
    parser.add_argument("-w", "--write-out", default="")
    given = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in given.header)
    method = given.request or ("POST" if given.data is not None else "GET")
    try:
        answer = httpx.request(
            method,
            given.url,
            headers={k.strip(): v.strip() for k, v in headers.items()},
            content=given.data,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        print(f"curl: {exc}", file=sys.stderr)
        return 7
    sys.stdout.write(answer.text)
    sys.stdout.write(
        given.write_out.replace("%{http_code}", str(answer.status_code)).replace("\\n", "\n")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
