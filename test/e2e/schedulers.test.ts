/**
 * End to end through `ulvs daemon` (NAT): short curl connections from the client
 * to the VIP, and the real servers that actually answered must follow each
 * scheduler (rr, wrr, lc, sh, mh); `ipvsadm -Ln --stats` must count the traffic
 * and `-Lnc` list the connections. Every case runs with veth checksum offload on
 * (the director sees partial checksums) and off.
 */
import t from 'tap';
import { buildLab } from '../../src/lab/lab-topology.js';
import {
  E2E_SKIP, OFFLOAD_MODES, ForwardingGuard, answered, configure, countBy, ipvsadmOk, nameOf, parseConns, parseList, parseStats,
} from './helpers.js';

const ALIASES = 40;

t.test('NAT schedulers end to end', E2E_SKIP, async (t) => {
  const topo = await buildLab({ servers: 3, clientAliases: ALIASES });
  t.teardown(() => topo.teardown());
  const guard = new ForwardingGuard();
  const [rs1, rs2, rs3] = topo.rsAddrs.map((a) => `${a}:${topo.httpPort}`) as [string, string, string];

  for (const [m, mode] of OFFLOAD_MODES.entries()) {
    await t.test(mode.name, async (t) => {
      await topo.setOffload(mode.on);
      // Every case gets its own virtual port (NAT maps it to the servers' port 80): a service
      // re-created with the same address would revive its trashed destinations together with
      // their counters and connections, like the kernel's dest trash.
      let port = 0;
      let vip = '';
      /** -A plus one -a per real server, added rs1, rs2, rs3 (so the director's list is rs3, rs2, rs1). */
      const service = (sched: string, weights = [1, 1, 1]) => {
        port = 8100 + 100 * m + ['rr', 'wrr', 'lc', 'sh', 'mh'].indexOf(sched);
        vip = `${topo.vip}:${port}`;
        return [`-A -t ${vip} -s ${sched}`, ...[rs1, rs2, rs3].map((r, i) => `-a -t ${vip} -r ${r} -m -w ${weights[i]}`)];
      };

      await t.test('rr: kernel order (newest destination first), stats and connection list', async (t) => {
        if (!guard.ok(t)) return;
        await configure(t, topo, service('rr'));
        const order = parseList(await ipvsadmOk(t, topo, ['-Ln', '--nosort']))[0]?.dests.map((d) => nameOf(topo, d.addr));
        t.same(order, ['rs3', 'rs2', 'rs1'], '-Ln --nosort lists the newest destination first, like the kernel');
        const recs = await topo.curl(9, { port });
        guard.check(t, 'rr', recs, topo);
        t.same(recs.map((r) => r.server), ['rs3', 'rs2', 'rs1', 'rs3', 'rs2', 'rs1', 'rs3', 'rs2', 'rs1'],
          'rr walks the list in that order');

        const stats = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']));
        t.equal(stats.length, 1, 'one service');
        const s = stats[0]!;
        t.equal(s.conns, 9, 'Conns = requests');
        t.same(s.dests.map((d) => [nameOf(topo, d.addr), d.conns]).sort(), [['rs1', 3], ['rs2', 3], ['rs3', 3]], 'Conns per real server');
        // A short HTTP exchange is SYN, ACK, request, FIN, ACK (and maybe more) each way.
        t.ok(s.inPkts >= 9 * 4 && s.inPkts <= 9 * 12, `InPkts plausible (${s.inPkts} for 9 connections)`);
        t.ok(s.outPkts >= 9 * 3 && s.outPkts <= 9 * 12, `NAT OutPkts counted (${s.outPkts})`);
        t.ok(s.inBytes >= s.inPkts * 40 && s.inBytes <= s.inPkts * 1500, `InBytes plausible (${s.inBytes})`);
        // Every response carries at least "hello from rsN\n" plus HTTP headers.
        t.ok(s.outBytes >= s.outPkts * 40 + 9 * 60 && s.outBytes <= s.outPkts * 1500, `OutBytes plausible (${s.outBytes})`);
        for (const k of ['conns', 'inPkts', 'outPkts', 'inBytes', 'outBytes'] as const) {
          t.equal(s.dests.reduce((a, d) => a + d[k], 0), s[k], `${k}: the real servers add up to the service`);
        }

        const conns = parseConns(await ipvsadmOk(t, topo, ['-Lnc']));
        for (const r of answered(recs)) {
          const c = conns.find((x) => x.proto === 'TCP' && x.source === r.local);
          t.ok(c, `-Lnc lists the connection from ${r.local}`);
          if (!c) continue;
          t.equal(c.virtual, vip, 'to the VIP');
          t.equal(nameOf(topo, c.destination), r.server, 'on the server that answered');
          t.not(c.state, 'ESTABLISHED', `closed connection not ESTABLISHED (${c.state})`);
        }
        const listed = parseList(await ipvsadmOk(t, topo, ['-Ln']))[0]!;
        t.same(listed.dests.map((d) => d.inactive), [3, 3, 3], 'the closed connections count as InActConn');
      });

      await t.test('wrr: answers in proportion to the weights', async (t) => {
        if (!guard.ok(t)) return;
        await configure(t, topo, service('wrr', [3, 2, 1]));
        const recs = await topo.curl(12, { port });
        guard.check(t, 'wrr', recs, topo);
        const names = recs.map((r) => r.server);
        t.same(countBy(names), { rs1: 6, rs2: 4, rs3: 2 }, 'two full cycles of weights 3:2:1');
        t.same(countBy(names.slice(0, 6)), { rs1: 3, rs2: 2, rs3: 1 }, 'the first cycle alone is 3:2:1');
        t.same(names.slice(6), names.slice(0, 6), 'and the cycle repeats');
        // Kernel quirk (ip_vs_wrr_dest_changed): after `-a rs1 -w 3` alone, gcd = 3 so mw = cw = 1;
        // later -a only clamp cw, so the first pass takes every weight >= 1 (list order rs3, rs2, rs1).
        t.same(names.slice(0, 6), ['rs3', 'rs2', 'rs1', 'rs1', 'rs2', 'rs1'], 'in the kernel\'s order after incremental -a');
        const s = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']))[0];
        t.equal(s?.conns, 12, 'Conns = requests');
      });

      await t.test('lc: new connections avoid the server with active connections', async (t) => {
        if (!guard.ok(t)) return;
        await configure(t, topo, service('lc'));
        const warm = await topo.curl(6, { port });
        guard.check(t, 'lc', warm, topo);
        t.same(countBy(warm.map((r) => r.server)), { rs1: 2, rs2: 2, rs3: 2 }, 'sequential short connections spread evenly');
        // Two long connections make two servers "busy" (an active connection weighs 256 inactive ones).
        const a = await topo.session({ port });
        const b = await topo.session({ port });
        t.not(a.first, b.first, `the two long connections went to different servers (${a.first}, ${b.first})`);
        const idle = topo.rsNames.find((n) => n !== a.first && n !== b.first)!;
        const list = parseList(await ipvsadmOk(t, topo, ['-Ln']))[0]!;
        t.same(list.dests.filter((d) => d.active === 1).map((d) => nameOf(topo, d.addr)).sort(), [a.first, b.first].sort(),
          'ActiveConn shows the long connections');
        const recs = await topo.curl(6, { port });
        t.same(recs.map((r) => r.server), Array(6).fill(idle), `every new connection went to the idle ${idle}`);
        t.equal(await a.request(), a.first, 'the long connections keep their servers');
        await a.close();
        await b.close();
      });

      await t.test('sh: one client always reaches the same server', async (t) => {
        if (!guard.ok(t)) return;
        await configure(t, topo, service('sh'));
        const from = topo.clientAliases.slice(0, 12);
        const first = await topo.curl(3, { from, port });
        guard.check(t, 'sh', first, topo);
        const byClient = new Map<string, Set<string | null>>();
        for (const r of first) byClient.set(r.from, (byClient.get(r.from) ?? new Set()).add(r.server));
        t.ok([...byClient.values()].every((s) => s.size === 1 && !s.has(null)), 'each client got one server for all its requests');
        const again = await topo.curl(1, { from, port });
        t.same(again.map((r) => r.server), from.map((a) => [...byClient.get(a)!][0]), 'and the same server again later');
        t.ok(new Set(first.map((r) => r.server)).size >= 2, 'different clients are spread over several servers');
      });

      await t.test('mh: stable per client, roughly even across clients', async (t) => {
        if (!guard.ok(t)) return;
        await configure(t, topo, service('mh'));
        const recs = await topo.curl(2, { from: topo.clientAliases, port });
        guard.check(t, 'mh', recs, topo);
        const per = new Map<string, Array<string | null>>();
        for (const r of recs) per.set(r.from, [...(per.get(r.from) ?? []), r.server]);
        t.ok([...per.values()].every((s) => s.length === 2 && s[0] !== null && s[0] === s[1]), 'each client kept its server');
        const c = countBy([...per.values()].map((s) => s[0]!));
        t.same(Object.keys(c).sort(), ['rs1', 'rs2', 'rs3'], 'every server got clients');
        // 40 clients over 3 equal servers: 13.3 each on average; a fair hash puts ≥ 5 on each.
        t.ok(Object.values(c).every((k) => k >= 5), `roughly even: ${JSON.stringify(c)}`);
        const s = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']))[0];
        t.equal(s?.conns, 2 * ALIASES, 'Conns = requests');
      });
    });
  }
});
