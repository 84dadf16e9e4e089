"""A TCP relay: `tcp_relay.py LISTEN_HOST:PORT TARGET_HOST:PORT` (stdlib only).

The e2e node's pods reach the loopback-only apiserver through it at the `kubernetes`
Service's address (10.0.0.1:443), which kube-proxy would have done with a DNAT rule and
route_localnet: this way the host's iptables and sysctls stay as they are. TLS passes
through untouched (the apiserver's certificate names 10.0.0.1).
"""

from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _relay(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, host: str, port: int
) -> None:
    try:
        up_r, up_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))
    finally:
        up_w.close()
        client_w.close()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(listen: str, target: str) -> None:
    (lhost, lport), (thost, tport) = _addr(listen), _addr(target)
    server = await asyncio.start_server(
        lambda r, w: _relay(r, w, thost, tport), lhost, lport, reuse_address=True
    )
    print(f"relaying {listen} -> {target}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
