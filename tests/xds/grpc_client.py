#!/usr/bin/env python3
"""Calls grpc.health.v1.Health/Check through gRPC's xDS resolver, as a
proxyless client that takes its configuration from Palisade.

    GRPC_XDS_BOOTSTRAP=bootstrap.json grpc_client.py --target xds:///orders.shop

The bootstrap (`palisadectl bootstrap grpc`) carries the node and the TLS
credentials for the control plane connection. The call itself uses insecure
channel credentials, so gRPC ignores the security settings of the xDS
clusters and talks plaintext to the endpoint it picks.

Prints the health status and exits 0 when it is SERVING; otherwise prints
the error to stderr and exits 1. With --csds-dump (and grpcio-csds
installed), also prints to stderr what the xDS client received, with ACKED
or NACKED for each resource.
"""

import argparse
import importlib
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Envoy messages that a CSDS dump may hold, so that it can print them.
ENVOY_MODULES = [
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
]


def main():
    args = parse_args()
    if args.target.startswith("xds:") and not os.environ.get("GRPC_XDS_BOOTSTRAP"):
        print("error: GRPC_XDS_BOOTSTRAP is not set", file=sys.stderr)
        return 1

    with grpc.insecure_channel(args.target) as channel:
        code = check(channel, args)
        if args.csds_dump:
            print(csds_dump(), file=sys.stderr)
    return code


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="e.g. xds:///orders.shop")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="fail at once while the channel is not ready, instead of waiting up to --timeout",
    )
    parser.add_argument(
        "--csds-dump", action="store_true", help="print the xDS client's configuration to stderr"
    )
    return parser.parse_args()


def check(channel, args):
    """One Health/Check for the whole server (service "")."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = stub.Check(
            health_pb2.HealthCheckRequest(service=""),
            timeout=args.timeout,
            wait_for_ready=not args.fail_fast,
        )
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1

    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


def csds_dump():
    """The xDS client's resources and their status, as JSON."""
    try:
        import grpc_csds
        from envoy.service.status.v3 import csds_pb2
        from google.protobuf import json_format
    except ImportError as error:
        return f"no CSDS dump: {error} (pip install grpcio-csds)"

    for module in ENVOY_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    servicer = grpc_csds.ClientStatusDiscoveryServiceServicer
    response = servicer.FetchClientStatus(csds_pb2.ClientStatusRequest(), None)
    try:
        return json_format.MessageToJson(response)
    except (TypeError, KeyError):
        # An Any of a type not imported above cannot print as JSON.
        return str(response)


if __name__ == "__main__":
    sys.exit(main())
