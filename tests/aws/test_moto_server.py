"""The moto server fixture itself: 127.0.0.1 only, atomic conditional writes, and reset."""

from __future__ import annotations

import socket
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from servers.moto import MotoServer, running_moto


def test_the_session_server_listens_on_loopback_only(moto_server: MotoServer) -> None:
    host = urllib.parse.urlsplit(moto_server.endpoint_url).hostname
    assert host == "127.0.0.1"
    port = urllib.parse.urlsplit(moto_server.endpoint_url).port
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    for address in addresses - {"127.0.0.1", "::1"}:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
            sock.settimeout(0.5)
            assert sock.connect_ex((address, port)) != 0, f"reachable on {address}"


def test_reset_forgets_every_resource() -> None:
    with running_moto() as server:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="reset-me")
        s3.put_object(Bucket="reset-me", Key="k", Body=b"1", IfNoneMatch="*")
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket="reset-me", Key="k", Body=b"2", IfNoneMatch="*")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        server.reset()
        assert s3.list_buckets()["Buckets"] == []
