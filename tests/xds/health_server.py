#!/usr/bin/env python3
"""Serves the standard grpc.health.v1.Health service (SERVING for "") on a
port: the backend of the proxyless gRPC interop test.

    health_server.py --port 50051

Prints `listening on HOST:PORT` once bound (--port 0 picks a free port) and
serves until SIGTERM or SIGINT. With --xds, the server is xDS-managed: it
fetches its Listener (`grpc/server?xds.resource.listening_address=
HOST:PORT`) from the control plane named in GRPC_XDS_BOOTSTRAP and applies
its RBAC filters, but ignores the Listener's TLS settings and serves
plaintext, so RBAC sees no caller identity. --xds-mtls also uses those
settings: callers need certificates from the same trust bundle.
"""

import argparse
import signal
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    args = parse_args()
    xds = args.xds or args.xds_mtls
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), xds=xds)

    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    address = f"{args.host}:{args.port}"
    if args.xds_mtls:
        credentials = grpc.xds_server_credentials(grpc.insecure_server_credentials())
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    server.start()
    # An xDS-managed server binds once its Listener arrives, and reports no
    # port here; it needs a fixed --port, which names its Listener.
    print(f"listening on {args.host}:{port if port > 0 else args.port}", flush=True)

    stop = lambda *_: server.stop(grace=1)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.wait_for_termination()
    return 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="0.0.0.0", help="default 0.0.0.0; [::] for IPv6")
    parser.add_argument("--xds", action="store_true", help="xDS-managed, plaintext")
    parser.add_argument("--xds-mtls", action="store_true", help="xDS-managed, with its mTLS")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
