"""The cost of one gRPC message pair on this machine without any Freshet code (not a test).

    .venv/bin/python -m tests.bench.grpc_floor [--round-trips 3000] [--size 1024] [--out FILE]

What it answers: how much of the CPU a synchronously acknowledged record costs a Freshet process
is gRPC's own (its C core, its threads, grpc.aio's poller thread and the event loop's wake-ups)
rather than Freshet's Python. A server process answers every message of a grpc.aio
bidirectional stream with the same bytes (the leader's pattern with a follower, the follower's
with its leader: one read and one write per exchange); a client process on the same kind of
event loop as a node (uvloop) writes `--size` bytes and waits for the answer, `--round-trips`
times after 300 warm-up round trips. Reports the round trip's p50/p99 and the CPU µs per round
trip of each process (client: its own process time over the loop; server: /proc), and the cores
other jobs kept busy meanwhile. A Freshet process that sends and receives N messages per record
cannot spend less than about N/2 times the per-side figure.

Prints ONE JSON line (and writes it to --out when given). The server process is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import grpc

from tests.bench.broker_vs_jetstream import busy_cores, free_base_port, machine_ticks, proc_cpu_s

_METHOD = "/freshet.bench.Floor/Echo"
_WARM_UP = 300


def _same(data: bytes) -> bytes:
    return data


async def _serve(port: int) -> None:
    async def echo(request_iterator, context) -> None:
        while True:
            message = await context.read()
            if message is grpc.aio.EOF:
                return
            await context.write(message)

    handler = grpc.stream_stream_rpc_method_handler(echo, _same, _same)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("freshet.bench.Floor", {"Echo": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


async def _ping(port: int, round_trips: int, size: int) -> dict:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(_METHOD, _same, _same)()
        message = b"x" * size
        for _ in range(_WARM_UP):
            await call.write(message)
            await call.read()
        latencies = []
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for _ in range(round_trips):
            sent = time.perf_counter()
            await call.write(message)
            await call.read()
            latencies.append(time.perf_counter() - sent)
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        await call.done_writing()
    latencies.sort()
    return {
        "rtt_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "rtt_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "client_cpu_us_per_round_trip": round(cpu / round_trips * 1e6, 1),
        "wall_s": round(wall, 2),
    }


def measure(round_trips: int = 3000, size: int = 1024) -> dict:
    """One ping-pong run (module docstring): latencies and CPU per round trip of each side."""
    import uvloop

    port = free_base_port(24600)
    server = subprocess.Popen([sys.executable, "-m", "tests.bench.grpc_floor", "--serve", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the echo server did not start (exit {server.poll()})")
        server_before, ticks_before, wall_before = proc_cpu_s(server.pid), machine_ticks(), time.monotonic()
        client_before = time.process_time()
        result = uvloop.run(_ping(port, round_trips, size))
        server_cpu = proc_cpu_s(server.pid) - server_before
        # Warm-up included in both: the server's /proc figure cannot exclude it.
        both = server_cpu + time.process_time() - client_before
        wall = time.monotonic() - wall_before
    finally:
        server.kill()
        server.wait(10)
    result["server_cpu_us_per_round_trip"] = round(server_cpu / (round_trips + _WARM_UP) * 1e6, 1)
    result["other_cores_busy"] = round(max(0.0, busy_cores(ticks_before, machine_ticks()) - both / wall), 2)
    result.update(round_trips=round_trips, size=size)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round-trips", type=int, default=3000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)   # the echo server's own process
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve(args.serve))
        return
    line = json.dumps(measure(args.round_trips, args.size))
    if args.out:
        pathlib.Path(args.out).write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
