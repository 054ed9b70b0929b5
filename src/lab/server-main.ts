/**
 * A tiny real server for labs, run inside a namespace by servers.ts:
 *   node server-main.js --name rs1 [--http PORT] [--udp PORT] [--host ADDR]
 * HTTP answers every request with "hello from <name>\n"; UDP echoes each datagram
 * back prefixed with "<name> ". Prints "ready" once every socket listens, and exits
 * cleanly on SIGTERM/SIGINT.
 */
import { createServer } from 'node:http';
import { createSocket } from 'node:dgram';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const name = arg('name') ?? 'server';
const host = arg('host') ?? '::';
const closers: Array<() => void> = [];
const pending: Array<Promise<void>> = [];

const httpPort = arg('http');
if (httpPort) {
  const body = `hello from ${name}\n`;
  const srv = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-server': name });
    res.end(body);
  });
  srv.keepAliveTimeout = 60_000;
  pending.push(new Promise((resolve, reject) => {
    srv.once('error', reject);
    // backlog 4096: short-connection load would overflow the default 511.
    srv.listen({ port: Number(httpPort), host, backlog: 4096, ipv6Only: false }, () => resolve());
  }));
  closers.push(() => { srv.close(); srv.closeAllConnections(); });
}

const udpPort = arg('udp');
if (udpPort) {
  const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  const prefix = Buffer.from(`${name} `);
  udp.on('message', (msg, rinfo) => {
    udp.send(Buffer.concat([prefix, msg]), rinfo.port, rinfo.address);
  });
  pending.push(new Promise((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(Number(udpPort), host, () => resolve());
  }));
  closers.push(() => udp.close());
}

try {
  await Promise.all(pending);
} catch (e) {
  process.stderr.write(`server-main: ${(e as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(`ready name=${name} http=${httpPort ?? '-'} udp=${udpPort ?? '-'}\n`);
const stop = () => {
  for (const c of closers) c();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
