/**
 * Real servers for labs: a Node HTTP + UDP server that answers with its own name
 * (server-main.ts), or nginx (Debian nginx-light) when installed; and small
 * clients (curl, a UDP request) run inside a namespace. Every server is a lab
 * process, so it is stopped at teardown even if a test forgets.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import type { Lab, LabProcess } from './netns.js';

const SERVER_MAIN = fileURLToPath(new URL('./server-main.js', import.meta.url));

export interface LabServer {
  readonly ns: string;
  readonly name: string;
  readonly proc: LabProcess;
  stop(): Promise<void>;
}

export interface NameServerOptions {
  /** What the server calls itself: HTTP body "hello from <name>\n", UDP prefix "<name> ". */
  name: string;
  httpPort?: number;
  udpPort?: number;
  /** Listen address (default "::", which also takes IPv4). */
  host?: string;
}

/** Starts the Node name server in `ns` and waits until it listens. */
export async function startNameServer(lab: Lab, ns: string, o: NameServerOptions): Promise<LabServer> {
  const args = [SERVER_MAIN, '--name', o.name];
  if (o.httpPort) args.push('--http', String(o.httpPort));
  if (o.udpPort) args.push('--udp', String(o.udpPort));
  if (o.host) args.push('--host', o.host);
  const proc = lab.spawn(ns, process.execPath, args);
  await proc.waitFor(/^ready /m, 15_000);
  return { ns: proc.ns, name: o.name, proc, stop: () => proc.stop() };
}

/** Whether nginx can be used (installed and runnable). */
export function nginxAvailable(): boolean {
  return spawnSync('nginx', ['-v'], { timeout: 5000 }).status === 0;
}

export interface NginxOptions {
  name: string;
  port?: number;
  workers?: number;
}

/**
 * Starts nginx in `ns` answering "hello from <name>\n" on `port` (default 80), with
 * its own temporary prefix (config, pid, logs, temp paths), in the foreground.
 */
export async function startNginx(lab: Lab, ns: string, o: NginxOptions): Promise<LabServer> {
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-nginx-'));
  const port = o.port ?? 80;
  const conf = `
worker_processes ${o.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type text/plain;
  server {
    listen ${port} backlog=4096 reuseport;
    listen [::]:${port} backlog=4096 reuseport;
    location / { return 200 "hello from ${o.name}\\n"; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
  const proc = lab.spawn(ns, 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off; master_process on;']);
  // nginx prints nothing when it is up: poll the port from inside the namespace.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await lab.exec(ns, 'curl', ['-s', '--max-time', '1', `http://127.0.0.1:${port}/`], { allowFail: true });
    if (r.code === 0 && r.stdout.includes(`hello from ${o.name}`)) break;
    if (proc.child.exitCode !== null || Date.now() > deadline) {
      await proc.stop();
      throw new Error(`nginx did not come up in ${ns}: ${proc.output().slice(-1000)}`);
    }
    await new Promise((r2) => setTimeout(r2, 100));
  }
  return { ns: proc.ns, name: o.name, proc, stop: () => proc.stop() };
}

/** GET `url` with curl from inside `ns`; returns the body (rejects on HTTP or network errors). */
export async function httpGet(lab: Lab, ns: string, url: string, timeoutMs = 5000): Promise<string> {
  const r = await lab.exec(ns, 'curl', ['-sS', '--fail', '--max-time', String(Math.ceil(timeoutMs / 1000)), url], {
    timeoutMs: timeoutMs + 2000,
  });
  return r.stdout;
}

/**
 * Sends one UDP datagram from inside `ns` and returns the first reply as text
 * ("" when none arrives within timeoutMs). Runs a short Node script there.
 */
export async function udpRequest(lab: Lab, ns: string, host: string, port: number, payload: string, timeoutMs = 2000): Promise<string> {
  const script = `
const s = require('node:dgram').createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});
const t = setTimeout(() => { s.close(); }, ${timeoutMs});
s.on('message', (m) => { process.stdout.write(m); clearTimeout(t); s.close(); });
s.send(Buffer.from(${JSON.stringify(payload)}), ${port}, ${JSON.stringify(host)});
`;
  const r = await lab.exec(ns, process.execPath, ['-e', script], { timeoutMs: timeoutMs + 5000 });
  return r.stdout;
}
