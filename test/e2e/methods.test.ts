/**
 * End to end through `ulvs daemon` with the other forwarding methods: DR (the real
 * servers have the VIP on lo, arp_ignore=1/arp_announce=2) and TUN (IPIP to the
 * real servers, decapsulated there by `ulvs tun-decap`). Replies go from the real
 * servers to the client without the director rewriting them, so OutPkts stays 0.
 * Veth checksum offload on and off.
 */
import t from 'tap';
import { buildLab, type LabTopology } from '../../src/lab/lab-topology.js';
import {
  E2E_SKIP, OFFLOAD_MODES, ForwardingGuard, answered, configure, ipvsadmOk, nameOf, parseConns, parseList, parseStats,
  type StatsRow,
} from './helpers.js';

/** Packets each real server's tun-decap has injected so far (it prints its stats on SIGUSR1). */
async function tunInjected(topo: LabTopology): Promise<number[]> {
  const procs = topo.processes.filter((p) => p.what.startsWith('tun-decap on ') && p.running());
  const marks = procs.map((p) => p.output().length);
  for (const p of procs) process.kill(p.pid, 'SIGUSR1');
  return Promise.all(procs.map(async (p, i) => {
    const deadline = Date.now() + 3000;
    for (;;) {
      const m = /^stats frames=\d+ injected=(\d+)/m.exec(p.output().slice(marks[i]));
      if (m) return Number(m[1]);
      if (Date.now() > deadline) return -1;
      await new Promise((r) => setTimeout(r, 20));
    }
  }));
}

const METHODS = [
  { name: 'DR', flag: '-g', forward: 'Route' },
  { name: 'TUN', flag: '-i', forward: 'Tunnel' },
] as const;

t.test('DR and TUN end to end', E2E_SKIP, async (t) => {
  const topo = await buildLab({ servers: 3, directReturn: true, tunDecap: true });
  t.teardown(() => topo.teardown());
  const guard = new ForwardingGuard();
  const vip = `${topo.vip}:${topo.httpPort}`;

  for (const mode of OFFLOAD_MODES) {
    await t.test(mode.name, async (t) => {
      await topo.setOffload(mode.on);
      for (const method of METHODS) {
        await t.test(`${method.name}, rr`, async (t) => {
          if (!guard.ok(t)) return;
          // DR and TUN need the servers' own port, so every case uses VIP:80 and re-adding a
          // destination revives it from the trash with its counters: compare dest counters by delta.
          await configure(t, topo, [
            `-A -t ${vip} -s rr`,
            ...topo.rsAddrs.map((a) => `-a -t ${vip} -r ${a}:${topo.httpPort} ${method.flag}`),
          ]);
          const listed = parseList(await ipvsadmOk(t, topo, ['-Ln', '--nosort']))[0]!;
          t.same(listed.dests.map((d) => d.forward), [method.forward, method.forward, method.forward], `listed as ${method.forward}`);
          const statsBefore = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']))[0]!;
          const injectedBefore = await tunInjected(topo);
          const recs = await topo.curl(9);
          guard.check(t, method.name, recs, topo);
          t.same(recs.map((r) => r.server), ['rs3', 'rs2', 'rs1', 'rs3', 'rs2', 'rs1', 'rs3', 'rs2', 'rs1'],
            'every request answered, in rr order (newest destination first)');

          const s = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']))[0]!;
          t.equal(s.conns, 9, 'Conns = requests');
          t.ok(s.inPkts >= 9 * 4 && s.inPkts <= 9 * 12, `InPkts plausible (${s.inPkts})`);
          t.equal(s.outPkts, 0, 'OutPkts 0: replies bypass the director\'s table');
          t.equal(s.outBytes, 0, 'OutBytes 0');
          t.ok(s.inBytes >= s.inPkts * 40 && s.inBytes <= s.inPkts * 1500, `InBytes plausible (${s.inBytes})`);
          const delta = (d: StatsRow) => d.conns - (statsBefore.dests.find((b) => b.addr === d.addr)?.conns ?? 0);
          t.same(s.dests.map((d) => [nameOf(topo, d.addr), delta(d)]).sort(), [['rs1', 3], ['rs2', 3], ['rs3', 3]],
            'Conns per real server grew by 3 each');

          const injected = (await tunInjected(topo)).map((n, i) => n - injectedBefore[i]!);
          t.equal(injected.length, 3, 'tun-decap runs on the three real servers');
          if (method.name === 'TUN') {
            t.ok(injected.every((n) => n >= 3 * 4), `each real server decapsulated its share of the packets (${injected.join(', ')})`);
          } else {
            t.same(injected, [0, 0, 0], 'DR sends no tunnelled packets');
          }

          const conns = parseConns(await ipvsadmOk(t, topo, ['-Lnc']));
          for (const r of answered(recs)) {
            const c = conns.find((x) => x.proto === 'TCP' && x.source === r.local);
            t.ok(c && c.virtual === vip && nameOf(topo, c.destination) === r.server,
              `-Lnc lists ${r.local} → ${r.server}`);
          }
        });
      }
    });
  }
});
