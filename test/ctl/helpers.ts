/**
 * An in-process daemon (the real Daemon class, listening on a unique abstract
 * socket) and a way to run ipvsadm against it through the socket client, each
 * run on its own connection as separate `ulvsadm` invocations would be.
 */
import { randomBytes } from 'node:crypto';
import { Daemon, type DaemonOptions } from '../../src/ctl/daemon.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { socketAddress, type SocketAddress } from '../../src/ctl/protocol.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';

export function uniqueName(tag = 'ctl'): string {
  return `ulvs-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface InProcessDaemon {
  daemon: Daemon;
  address: SocketAddress;
  logs: string[];
  /** Runs ipvsadm with `args` over a new connection. */
  run(args: string[], opts?: { stdin?: string; argv0?: string }): Promise<RunResult>;
  /** A new socket client (caller closes it). */
  client(): SocketIpvsApi;
  stop(): Promise<void>;
}

export async function startInProcess(opts: Omit<DaemonOptions, 'socket' | 'log'> = {}): Promise<InProcessDaemon> {
  const name = uniqueName();
  const logs: string[] = [];
  const daemon = await Daemon.start({ capacity: 4096, ...opts, socket: name, log: (l) => logs.push(l) });
  const address = socketAddress(name);
  return {
    daemon, address, logs,
    client: () => new SocketIpvsApi(address),
    async run(args, o = {}) {
      const api = new SocketIpvsApi(address);
      let stdout = '';
      let stderr = '';
      const io = {
        stdout: (s: string) => { stdout += s; },
        stderr: (s: string) => { stderr += s; },
        readStdin: async () => o.stdin ?? '',
      };
      try {
        const status = await runIpvsadm(o.argv0 ?? 'ipvsadm', args, io, api, numericResolver);
        return { status, stdout, stderr };
      } finally {
        api.close();
      }
    },
    stop: () => daemon.stop(),
  };
}

/** ipvsadm's default dest line: `  -> %-28s %-7s %-6d %-10u %-10u`. */
export function destLine(addr: string, fwd: string, weight: number, active = 0, inactive = 0): string {
  return `  -> ${addr.padEnd(28)} ${fwd.padEnd(7)} ${String(weight).padEnd(6)} ${String(active).padEnd(10)} ${String(inactive).padEnd(10)}`;
}

export const BANNER = 'IP Virtual Server version 1.2.1 (size=4096)';
export const TITLE = [
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
];
