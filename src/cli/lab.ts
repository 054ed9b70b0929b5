/**
 * `ulvs lab up|down|status|demo`: the network-namespace lab of lab/lab-topology.ts
 * from the command line. `up` builds it and leaves it running (namespaces
 * `ulvs-lab-*`, processes detached, logs under /run/ulvs-lab/); `down` removes it;
 * `demo` builds a private one, runs NAT, DR and TUN through it and removes it.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildLab, DEFAULT_PREFIX, destroyLab, labNamespaces, LAB_ADDR, processRunning, readLabState, ULVS_BIN, type DirectorKind,
} from '../lab/lab-topology.js';
import { runDemo } from '../lab/demo.js';
import { labSupport } from '../lab/netns.js';

const USAGE = `Usage: ulvs lab <command> [options]

Commands:
  up       build the lab and leave it running (namespaces ${DEFAULT_PREFIX}*)
  down     remove the lab built by \`ulvs lab up\`
  status   show whether a lab is up, its namespaces and processes
  demo     NAT, DR and TUN one after the other in a private lab, then clean up

Topology:
  client c0 ${LAB_ADDR.client}/24 -- d0 ${LAB_ADDR.directorOuter}/24 [director] d1 ${LAB_ADDR.directorInner}/24 -- bridge -- rs1..rsN 10.0.1.N/24
  VIP ${LAB_ADDR.vip} (on the client's subnet); the real servers' gateway is ${LAB_ADDR.directorInner}

Options:
  --servers N          real servers (default 3)
  --director KIND      up: ulvs (default; runs \`ulvs daemon\`), kernel-dnat (nftables DNAT
                       round robin), or none (a plain router)
  --nginx              nginx instead of Node's http server on the real servers (demo only)
  --direct             up: also connect the client to the bridge (c1 ${LAB_ADDR.clientDirect})
  --no-tun-decap       up: do not run \`ulvs tun-decap\` on the real servers
  --offload on|off     veth tx checksum offload (default on)
  --requests N         demo: requests per method in the curl loop (default 6)
  --burst N            demo: requests in the one-curl-process burst (default 200; 0 = none)
  --prefix P           up/down/status: namespace prefix (default ${DEFAULT_PREFIX})
  -h, --help           this text
`;

function usageError(msg: string): number {
  process.stderr.write(`ulvs lab: ${msg}\n${USAGE}`);
  return 2;
}

function intOption(v: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return Number(v);
}

export default async function labMain(args: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        servers: { type: 'string' },
        director: { type: 'string' },
        nginx: { type: 'boolean' },
        direct: { type: 'boolean' },
        'no-tun-decap': { type: 'boolean' },
        offload: { type: 'string' },
        requests: { type: 'string' },
        burst: { type: 'string' },
        prefix: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) return usageError(positionals.length === 0 ? 'missing command' : `unexpected '${positionals[1]}'`);
  const cmd = positionals[0]!;
  let servers: number;
  let requests: number;
  let burst: number;
  try {
    servers = intOption(values.servers, 'servers', 3, 1, 9);
    requests = intOption(values.requests, 'requests', 6, 1, 1000);
    burst = intOption(values.burst, 'burst', 200, 0, 100000);
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (values.offload !== undefined && values.offload !== 'on' && values.offload !== 'off') return usageError('--offload must be on or off');
  const offload = values.offload !== 'off';
  const director = (values.director ?? 'ulvs') as DirectorKind;
  if (!['ulvs', 'kernel-dnat', 'none'].includes(director)) return usageError('--director must be ulvs, kernel-dnat or none');
  const prefix = values.prefix ?? DEFAULT_PREFIX;
  if (!/^ulvs[A-Za-z0-9-]*-$/.test(prefix) || prefix.length > 20) {
    return usageError('--prefix must start with "ulvs", end with "-", use letters, digits and dashes, at most 20 characters');
  }

  switch (cmd) {
    case 'demo':
      return runDemo({ servers, requests, burst, offload, httpServer: values.nginx ? 'nginx' : 'node' });
    case 'up':
      if (values.nginx) return usageError('`up` runs the Node server (nginx would stop with this command)');
      return up({ servers, director, direct: values.direct ?? false, tunDecap: !values['no-tun-decap'], offload, prefix });
    case 'down': {
      const removed = await destroyLab(prefix);
      process.stdout.write(removed.length ? `ulvs lab: removed ${removed.join(', ')}\n` : `ulvs lab: no lab is up (no namespace ${prefix}*)\n`);
      return 0;
    }
    case 'status':
      return status(prefix);
    default:
      return usageError(`unknown command '${cmd}'`);
  }
}

interface UpOptions {
  servers: number;
  director: DirectorKind;
  direct: boolean;
  tunDecap: boolean;
  offload: boolean;
  prefix: string;
}

async function up(o: UpOptions): Promise<number> {
  const support = labSupport();
  if (!support.ok) {
    process.stderr.write(`ulvs lab: cannot build a lab here: ${support.reason.replace(/^lab tests need/, 'the lab needs')}\n`);
    return 1;
  }
  const existing = labNamespaces(o.prefix);
  if (existing.length) {
    process.stderr.write(`ulvs lab: a lab is already up (${existing.join(', ')}); remove it with: ulvs lab down\n`);
    return 1;
  }
  const t0 = performance.now();
  let topo;
  try {
    topo = await buildLab({
      servers: o.servers, director: o.director, direct: o.direct, offload: o.offload, prefix: o.prefix,
      detached: true, directReturn: true, tunDecap: o.tunDecap,
    });
  } catch (e) {
    process.stderr.write(`ulvs lab: could not build the lab: ${(e as Error).message}\n`);
    return 1;
  }
  topo.detach();
  const t = topo;
  const nodeOnPath = (process.env.PATH ?? '').split(':').some((d) => join(d, 'node') === process.execPath);
  const ulvs = `${nodeOnPath ? 'node' : process.execPath} ${ULVS_BIN}`;
  const n = t.rsNames.length;
  const lines = [
    `ulvs lab: up in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    '',
    `  ${t.ns.client.padEnd(22)} c0 ${t.client}/24${t.clientDirect ? `, c1 ${t.clientDirect}/24 (direct path to the bridge)` : ''}`,
    `  ${t.ns.director.padEnd(22)} d0 ${LAB_ADDR.directorOuter}/24, d1 ${LAB_ADDR.directorInner}/24, ${
      o.director === 'ulvs' ? `ulvs daemon (pid ${t.daemon?.pid})` : o.director === 'kernel-dnat' ? `nftables DNAT of ${t.vip}` : 'plain router'}`,
    `  ${t.ns.sw.padEnd(22)} bridge br0`,
    `  ${`${t.ns.rs[0]}..${n}`.padEnd(22)} eth0 ${t.rsAddrs[0]}..${n}/24, gateway ${LAB_ADDR.directorInner}, HTTP :${t.httpPort} and UDP :${t.udpPort} (Node name server),`,
    `  ${''.padEnd(22)} VIP ${t.vip} on lo (arp_ignore=1, arp_announce=2)${o.tunDecap ? ', ulvs tun-decap' : ''}`,
    `  logs and state: ${t.logDir}`,
    '',
    'Enter a namespace with `ip netns exec <namespace> <command>`, for example:',
  ];
  if (o.director === 'ulvs') {
    lines.push(
      `  ip netns exec ${t.ns.director} ${ulvs} ipvsadm -A -t ${t.vip}:80 -s rr`,
      ...t.rsAddrs.map((a) => `  ip netns exec ${t.ns.director} ${ulvs} ipvsadm -a -t ${t.vip}:80 -r ${a}:80 -m`),
      `  ip netns exec ${t.ns.client} curl -s http://${t.vip}/`,
      `  ip netns exec ${t.ns.director} ${ulvs} ipvsadm -Ln --stats`,
      '  (-m NAT; -g DR and -i TUN also work: the real servers are ready for them)',
    );
  } else {
    lines.push(`  ip netns exec ${t.ns.client} curl -s http://${t.vip}/`);
  }
  lines.push(`  ip netns exec ${t.ns.client} bash          # a shell inside the client`, '', 'Remove it with: ulvs lab down');
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function status(prefix: string): number {
  const names = labNamespaces(prefix);
  if (names.length === 0) {
    process.stdout.write(`ulvs lab: no lab is up (no namespace ${prefix}*)\n`);
    return 1;
  }
  const state = readLabState(prefix);
  const out = [`ulvs lab: up: ${names.join(', ')}`];
  for (const p of state?.processes ?? []) {
    const alive = processRunning(p.pid);
    out.push(`  ${p.what.padEnd(24)} pid ${String(p.pid).padEnd(8)} ${alive ? 'running' : 'EXITED'}  ${p.log ?? ''}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
