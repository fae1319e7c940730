"""The suite's etcd fixture itself: a first start whose port another process took
meanwhile moves to fresh ports; a restart keeps its ports."""
from __future__ import annotations

import socket

import pytest

from etcd_server import HOST, EtcdServer


def test_a_port_taken_before_the_first_start_is_replaced():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = EtcdServer()
        server.client_port = taken  # as if another process had bound it after free_port()
        try:
            server.start()
            assert server.client_port != taken and server.running
            server.etcdctl("put", "k", "v")
            ports = server.client_port, server.peer_port
            server.restart()
            assert (server.client_port, server.peer_port) == ports
            assert server.etcdctl("get", "k", "--print-value-only").stdout.strip() == "v"
        finally:
            server.close()


def test_a_restart_whose_port_is_taken_fails_instead_of_moving():
    server = EtcdServer()
    try:
        server.start()
        server.stop()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind((HOST, server.client_port))
            squatter.listen()
            with pytest.raises(RuntimeError, match="address already in use"):
                server.start()
    finally:
        server.close()
