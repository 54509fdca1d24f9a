"""A real S3-compatible server on loopback for tests and benchmarks: moto in server mode, as a subprocess.

Requests are counted from the server's own access log (one line per HTTP
request), so a test counts what really crossed the wire. Before any test
trusts the server for races, :meth:`S3Server.check_conditional_writes` proves
that it answers 412 to a second create-only write (``If-None-Match: *``) and
to a stale ``If-Match``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

_REQUEST = re.compile(rb'"(GET|PUT|POST|DELETE|HEAD) ')

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-value-42", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """``python -m moto.server`` on 127.0.0.1; :attr:`endpoint` is its URL."""

    def __init__(self, log_dir: Path, *, enforce_auth: bool = False) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.update(CREDENTIALS)
        if enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto then checks every request's credentials
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto server exited: {self.log_path.read_text(errors='replace')}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")

    def requests(self) -> int:
        """HTTP requests the server has answered so far."""
        self._log.flush()
        time.sleep(0.05)
        return len(_REQUEST.findall(self.log_path.read_bytes()))

    def client(self):  # -> botocore client
        """A boto3 client on the server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def new_bucket(self) -> str:
        """Create a fresh bucket; return its name."""
        name = "b-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def check_conditional_writes(self) -> None:
        """Raise unless the server refuses a second create-only write and a stale If-Match with 412."""
        from botocore.exceptions import ClientError

        c = self.client()
        bucket = self.new_bucket()
        c.put_object(Bucket=bucket, Key="probe", Body=b"1", IfNoneMatch="*")
        for kwargs in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}):
            try:
                c.put_object(Bucket=bucket, Key="probe", Body=b"2", **kwargs)
            except ClientError as err:
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status != 412:
                    raise RuntimeError(f"conditional write answered {status}, not 412") from err
            else:
                raise RuntimeError(f"the S3 server ignored {kwargs}: races cannot be tested against it")
        if c.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"1":
            raise RuntimeError("a refused conditional write still changed the object")

    def stop(self) -> None:
        """Stop the server."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
