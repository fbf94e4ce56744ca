"""Calling Jixiao from Python with grpcio, using only server reflection.

No generated code is needed: the message types are read from the server.
Run against a running suite:

    python3 tests/python/caller_guide.py --addr 127.0.0.1:50051 --token "$TOKEN"

It lists the services, checks health, creates a cycle (retrying safely with
the same request_id), reads error details, and pages through units.
"""

import argparse
import sys
import uuid

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status


class Client:
    """Calls any RPC by its full name, with types from reflection."""

    def __init__(self, channel, token):
        self.channel = channel
        self.metadata = [("authorization", f"Bearer {token}")]
        self.pool = descriptor_pool.DescriptorPool(
            ProtoReflectionDescriptorDatabase(channel)
        )

    def message(self, full_name, **fields):
        cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
        return cls(**fields)

    def call(self, service, method, **fields):
        svc = self.pool.FindServiceByName(service)
        m = svc.methods_by_name[method]
        request = self.message(m.input_type.full_name, **fields)
        response_cls = message_factory.GetMessageClass(m.output_type)
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        return stub(request, metadata=self.metadata, timeout=10)


def error_details(err):
    """The reason and the bad fields of a failed call (AIP-193)."""
    status = rpc_status.from_call(err)
    reason, fields = "", []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [(v.field, v.description) for v in bad.field_violations]
    return reason, fields


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True)
    parser.add_argument("--cycle", default="2030")
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)

    # 1. Health: no token needed.
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service="jixiao.plans.v1.PlansService"))
    print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(status.status))

    client = Client(channel, args.token)

    # 2. Reflection: what the server offers.
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    print("services:", ", ".join(sorted(services)))

    # 3. Create a cycle; the request_id makes a retry safe.
    request_id = str(uuid.uuid4())
    fields = dict(
        cycle_id=args.cycle,
        cycle=client.message("jixiao.plans.v1.Cycle", year=int(args.cycle), title=f"{args.cycle} evaluation"),
        request_id=request_id,
    )
    first = client.call("jixiao.plans.v1.PlansService", "CreateCycle", **fields)
    again = client.call("jixiao.plans.v1.PlansService", "CreateCycle", **fields)
    print("created:", first.name, "phase", first.phase, "retry returned the same:", first == again)

    # 4. Errors carry a reason and name the bad fields.
    try:
        client.call("jixiao.plans.v1.PlansService", "CreateCycle", cycle_id="Bad Id",
                    cycle=client.message("jixiao.plans.v1.Cycle", year=1800))
        print("error: the invalid cycle was accepted")
        return 1
    except grpc.RpcError as err:
        reason, bad = error_details(err)
        print("invalid:", err.code().name, reason, [f for f, _ in bad])

    # 5. Pagination: follow next_page_token until it is empty.
    names, token = [], ""
    while True:
        page = client.call("jixiao.plans.v1.PlansService", "ListCycles", page_size=1, page_token=token)
        names += [c.name for c in page.cycles]
        token = page.next_page_token
        if not token:
            break
    print("cycles:", ", ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
