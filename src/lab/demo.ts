/**
 * `ulvs lab demo` (`npm run demo`): builds the lab, then runs a NAT, a DR and a
 * TUN service one after the other. Each is configured with ipvsadm commands
 * through our CLI in the director namespace, printed as an operator would type
 * them; curl from the client shows which real server answered each request; and
 * `ipvsadm -Ln --stats` shows what the director counted. The lab is removed at the
 * end, on failure (exit 1 with the reason) and on Ctrl-C (exit 130).
 */
import { buildLab, LAB_ADDR, type LabTopology } from './lab-topology.js';
import { labSupport } from './netns.js';

export interface DemoOptions {
  /** Real servers (default 3). */
  servers?: number;
  /** Requests per method in the curl loop (default 6). */
  requests?: number;
  /** Requests in the one-process burst after each loop (default 200; 0 = none). */
  burst?: number;
  /** veth checksum offload (default on, the veth default). */
  offload?: boolean;
  httpServer?: 'node' | 'nginx';
  /** Arguments for `ulvs daemon` (default: the lab's, serving d0 and d1). */
  daemonArgs?: string[];
  /** Output (default stdout). */
  out?: (text: string) => void;
  /** Failure messages (default stderr). */
  err?: (text: string) => void;
}

/** A failure the demo explains itself (no stack trace). */
export class DemoError extends Error {}

interface Method {
  title: string;
  /** ipvsadm forwarding flag. */
  flag: '-m' | '-g' | '-i';
  scheduler: string;
  /** Readies the real servers (printing what an operator would do there). */
  prepare?: (topo: LabTopology, say: (s: string) => void) => Promise<void>;
}

const METHODS: Method[] = [
  { title: 'NAT (masquerading), round robin', flag: '-m', scheduler: 'rr' },
  {
    title: 'DR (direct routing), weighted round robin', flag: '-g', scheduler: 'wrr',
    prepare: async (topo, say) => {
      say(`${rsPrompt(topo)} ip addr add ${topo.vip}/32 dev lo`);
      say(`${rsPrompt(topo)} sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2`);
      say('    (the real servers accept the VIP but never answer ARP for it: only the director does)');
      await topo.prepareDirectReturn();
    },
  },
  {
    title: 'TUN (IP-in-IP tunnelling), round robin', flag: '-i', scheduler: 'rr',
    prepare: async (topo, say) => {
      say(`${rsPrompt(topo)} ulvs tun-decap &`);
      say('    (userspace IPIP decapsulation: this kernel has no ipip module; the VIP is already on lo)');
      await topo.prepareDirectReturn();
      await topo.startTunDecap();
    },
  },
];

function rsPrompt(topo: LabTopology): string {
  return `${topo.rsNames[0]}..${topo.rsNames[topo.rsNames.length - 1]}#`;
}

function rule(title: string): string {
  const head = `── ${title} `;
  return head + '─'.repeat(Math.max(3, 72 - head.length));
}

function tally(names: Array<string | null>): string {
  const counts = new Map<string, number>();
  for (const n of names) if (n) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true })).map(([k, v]) => `${k} ×${v}`).join(', ');
}

/** Runs the demo; resolves with the exit status. */
export async function runDemo(o: DemoOptions = {}): Promise<number> {
  const out = o.out ?? ((s: string) => { process.stdout.write(s); });
  const err = o.err ?? ((s: string) => { process.stderr.write(s); });
  const say = (s = '') => out(`${s}\n`);
  const support = labSupport();
  if (!support.ok) {
    err(`ulvs lab demo: cannot build a lab here: ${support.reason.replace(/^lab tests need/, 'the lab needs')}\n`);
    return 1;
  }
  const servers = o.servers ?? 3;
  const requests = o.requests ?? 6;
  const burst = o.burst ?? 200;
  const t0 = performance.now();
  let topo: LabTopology | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    say(`\nulvs lab demo: ${sig === 'SIGINT' ? 'interrupted' : `got ${sig}`}; removing the lab`);
    // The exit hook of netns.ts tears down every lab still standing.
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    say('ulvs lab demo: NAT, DR and TUN through the userspace IPVS director');
    say();
    topo = await buildLab({
      servers, director: 'ulvs', offload: o.offload ?? true, httpServer: o.httpServer ?? 'node', daemonArgs: o.daemonArgs,
    });
    const t = topo;
    const last = t.rsAddrs.length;
    say(`Lab (network namespaces ${t.lab.prefix}*), built in ${((performance.now() - t0) / 1000).toFixed(1)} s:`);
    say(`  client     c0 ${t.client}/24                 the VIP ${t.vip} is on this subnet`);
    say(`  director   d0 ${LAB_ADDR.directorOuter}/24, d1 ${LAB_ADDR.directorInner}/24   runs \`ulvs daemon\` (pid ${t.daemon?.pid})`);
    say(`  ${`${t.rsNames[0]}..${t.rsNames[last - 1]}`.padEnd(10)} eth0 ${t.rsAddrs[0]}..${last}/24 on a bridge, gateway ${LAB_ADDR.directorInner},`);
    say(`             ${t.httpServer === 'nginx' ? 'nginx' : "Node's http server"} on port ${t.httpPort} answering "hello from <name>"`);
    say(`  veth checksum offload ${o.offload === false ? 'off' : 'on'}; commands below run with \`ip netns exec <namespace>\``);

    const ipvsadm = async (args: string[], show = true): Promise<string> => {
      if (show) say(`director# ipvsadm ${args.join(' ')}`);
      const r = await t.ipvsadm(args);
      if (r.code !== 0) {
        throw new DemoError(`\`ipvsadm ${args.join(' ')}\` failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}${daemonTail(t)}`);
      }
      return r.stdout;
    };

    for (const [k, m] of METHODS.entries()) {
      say();
      say(rule(`${k + 1}/${METHODS.length}  ${m.title}`));
      if (m.prepare) await m.prepare(t, say);
      const weights = m.scheduler === 'wrr' ? t.rsAddrs.map((_, i) => t.rsAddrs.length - i) : null;
      await ipvsadm(['-A', '-t', `${t.vip}:${t.httpPort}`, '-s', m.scheduler]);
      for (const [i, rs] of t.rsAddrs.entries()) {
        await ipvsadm(['-a', '-t', `${t.vip}:${t.httpPort}`, '-r', `${rs}:${t.httpPort}`, m.flag, ...(weights ? ['-w', String(weights[i])] : [])]);
      }
      const n = weights ? weights.reduce((a, b) => a + b, 0) : requests;
      const url = `http://${t.vip}/`;
      say(`client# for i in $(seq ${n}); do curl -s -m 2 ${url}; done`);
      const tl = performance.now();
      const loop = await t.exec('client', 'sh', ['-c',
        `for i in $(seq ${n}); do curl -s -m 2 ${url} || { echo "(request $i failed: curl exit $?)"; break; }; done`], { timeoutMs: n * 3000 + 5000 });
      const loopS = (performance.now() - tl) / 1000;
      const lines = loop.stdout.split('\n').filter(Boolean);
      for (const l of lines) say(l);
      const answered = lines.map((l) => /^hello from (\S+)$/.exec(l)?.[1] ?? null);
      const ok = answered.filter(Boolean).length;
      const failed = /^\(request (\d+) failed: curl exit (\d+)\)$/m.exec(loop.stdout);
      if (failed || ok !== n) {
        // curl exit 28 = timed out, 7 = could not connect (e.g. nobody answered ARP for the VIP).
        throw new DemoError(`${m.title}: request ${failed?.[1] ?? ok + 1} of ${n} got no answer through the director` +
          `${failed ? ` (curl exit ${failed[2]})` : ''}${daemonTail(t)}`);
      }
      say(`    ${n} requests, ${ok} answered: ${tally(answered)}  (${(n / loopS).toFixed(0)} requests/s, one curl process each)`);
      const distinct = new Set(answered).size;
      if (distinct !== t.rsAddrs.length) {
        throw new DemoError(`${m.title}: expected every real server to answer, got ${tally(answered)}`);
      }
      if (burst > 0) {
        const tb = performance.now();
        const recs = await t.curl(burst, { maxTimeS: 2 });
        const bs = (performance.now() - tb) / 1000;
        const good = recs.filter((r) => r.server !== null).length;
        say(`client# curl -s -H 'Connection: close' '${url}?n=[1-${burst}]'   # ${burst} connections from one curl process`);
        say(`    ${good} of ${burst} answered in ${bs.toFixed(2)} s (${(good / bs).toFixed(0)} requests/s): ${tally(recs.map((r) => r.server))}`);
        if (good !== burst) throw new DemoError(`${m.title}: ${burst - good} of ${burst} requests of the burst got no answer${daemonTail(t)}`);
      }
      out(await ipvsadm(['-Ln', '--stats']));
      await ipvsadm(['-C']);
    }
    say();
    say(`Done in ${((performance.now() - t0) / 1000).toFixed(1)} s; removing the lab.`);
    return 0;
  } catch (e) {
    // Our own failures explain themselves; anything else (a lab command, the daemon not
    // starting) carries its command and output in the message, which is what a user needs.
    const msg = e instanceof DemoError ? e.message : topo === null ? `could not build the lab: ${(e as Error).message}` : (e as Error).message;
    err(`\nulvs lab demo: FAILED: ${msg}\n`);
    return 1;
  } finally {
    if (topo) await topo.teardown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function daemonTail(t: LabTopology): string {
  const d = t.daemon;
  if (!d) return '';
  const state = d.running() ? 'running' : 'NOT RUNNING';
  const tail = d.output().trim().split('\n').slice(-8).map((l) => `    | ${l}`).join('\n');
  return `\n  director daemon (pid ${d.pid}) is ${state}; its last output:\n${tail || '    | (nothing)'}`;
}
