/**
 * End to end through `ulvs daemon` (NAT): UDP through the VIP, persistence (-p),
 * draining with weight 0 while a long connection finishes, deleting a destination,
 * and `ipvsadm -C` in the middle of traffic. Veth checksum offload on and off.
 */
import t from 'tap';
import { buildLab } from '../../src/lab/lab-topology.js';
import {
  E2E_SKIP, OFFLOAD_MODES, ForwardingGuard, configure, countBy, ipvsadmOk, nameOf, parseConns, parseList, parseStats,
} from './helpers.js';

t.test('NAT services end to end', E2E_SKIP, async (t) => {
  const topo = await buildLab({ servers: 3, clientAliases: 3 });
  t.teardown(() => topo.teardown());
  const guard = new ForwardingGuard();
  const rs = (i: number, port = topo.httpPort) => `${topo.rsAddrs[i]}:${port}`;

  for (const [m, mode] of OFFLOAD_MODES.entries()) {
    await t.test(mode.name, async (t) => {
      await topo.setOffload(mode.on);
      // One virtual port per case (mapped to the servers' own port by NAT), so no case
      // revives another's trashed destinations and their counters.
      const base = 8300 + 100 * m;
      const tcpService = (port: number, extra = '') => [
        `-A -t ${topo.vip}:${port} -s rr${extra}`,
        ...[0, 1, 2].map((i) => `-a -t ${topo.vip}:${port} -r ${rs(i)} -m`),
      ];

      await t.test('UDP through the VIP', async (t) => {
        if (!guard.ok(t)) return;
        const port = base + 1;
        await configure(t, topo, [
          `-A -u ${topo.vip}:${port} -s rr`,
          ...[0, 1, 2].map((i) => `-a -u ${topo.vip}:${port} -r ${rs(i, topo.udpPort)} -m`),
        ]);
        const recs = await topo.udp(6, { port });
        guard.check(t, 'UDP', recs, topo);
        t.same(recs.map((r) => r.server), ['rs3', 'rs2', 'rs1', 'rs3', 'rs2', 'rs1'], 'each datagram from a new port is a new connection, rr order');
        const s = parseStats(await ipvsadmOk(t, topo, ['-Ln', '--stats', '--exact']))[0]!;
        t.equal(s.proto, 'UDP', 'a UDP service');
        t.equal(s.conns, 6, 'Conns = datagrams sent');
        t.equal(s.inPkts, 6, 'InPkts = datagrams sent');
        t.equal(s.outPkts, 6, 'OutPkts = replies');
        // IPv4 20 + UDP 8 + "who" (3) in; "rsN who" (7) out.
        t.equal(s.inBytes, 6 * 31, 'InBytes = 6 × 31-byte IP packets');
        t.equal(s.outBytes, 6 * 35, 'OutBytes = 6 × 35-byte IP packets');
        const conns = parseConns(await ipvsadmOk(t, topo, ['-Lnc'])).filter((c) => c.virtual === `${topo.vip}:${port}`);
        t.equal(conns.length, 6, '-Lnc lists the six UDP connections');
        t.ok(conns.every((c) => c.proto === 'UDP' && c.source.startsWith(`${topo.client}:`)), 'UDP, from the client');
        t.same(countBy(conns.map((c) => nameOf(topo, c.destination))), { rs1: 2, rs2: 2, rs3: 2 }, 'to the servers that answered');
      });

      await t.test('persistence (-p) keeps a client on one server', async (t) => {
        if (!guard.ok(t)) return;
        const port = base + 2;
        await configure(t, topo, tcpService(port, ' -p 60'));
        t.match(await ipvsadmOk(t, topo, ['-Ln']), `TCP  ${topo.vip}:${port} rr persistent 60`, 'listed as persistent');
        const recs = await topo.curl(6, { port });
        guard.check(t, 'persistence', recs, topo);
        const first = recs[0]!.server;
        t.same(recs.map((r) => r.server), Array(6).fill(first), `all six requests went to ${first}`);
        // A template has client port 0; its state is NONE, or ASSURED once reused (kernel ≥ 5.x).
        const tpl = parseConns(await ipvsadmOk(t, topo, ['-Lnc']))
          .filter((c) => c.source === `${topo.client}:0` && c.virtual === `${topo.vip}:${port}`);
        t.equal(tpl.length, 1, '-Lnc shows one persistence template for the client');
        t.ok(tpl[0] && ['NONE', 'ASSURED'].includes(tpl[0].state), `in a template state (${tpl[0]?.state})`);
        t.equal(tpl[0] && nameOf(topo, tpl[0].destination), first, 'pointing at that server');
        const others = await topo.curl(2, { from: topo.clientAliases, port });
        const per = new Map<string, Set<string | null>>();
        for (const r of others) per.set(r.from, (per.get(r.from) ?? new Set()).add(r.server));
        t.ok([...per.values()].every((s) => s.size === 1 && !s.has(null)), 'other clients stick to their servers too');
        t.same(new Set(others.map((r) => r.server)).size, 3, 'and the templates were scheduled round robin over all servers');
      });

      await t.test('weight 0 drains: no new connections, the long one finishes', async (t) => {
        if (!guard.ok(t)) return;
        const port = base + 3;
        await configure(t, topo, tcpService(port));
        const session = await topo.session({ port });
        const x = session.first;
        const xi = topo.rsNames.indexOf(x);
        await ipvsadmOk(t, topo, ['-e', '-t', `${topo.vip}:${port}`, '-r', rs(xi), '-m', '-w', '0']);
        const d = parseList(await ipvsadmOk(t, topo, ['-Ln']))[0]!.dests.find((e) => nameOf(topo, e.addr) === x);
        t.same(d && [d.weight, d.active], [0, 1], `${x}: weight 0 with its long connection still active`);
        const recs = await topo.curl(6, { port });
        guard.check(t, 'drain', recs, topo);
        t.equal(recs.filter((r) => r.server === x).length, 0, `no new connection went to ${x}`);
        t.same(Object.keys(countBy(recs.map((r) => r.server))).sort(), topo.rsNames.filter((n) => n !== x), 'the others took them all');
        t.equal(await session.request(), x, `the long connection is still served by ${x}`);
        await session.close();
      });

      await t.test('deleting a destination', async (t) => {
        if (!guard.ok(t)) return;
        const port = base + 4;
        await configure(t, topo, tcpService(port));
        const before = await topo.curl(3, { port });
        guard.check(t, 'delete', before, topo);
        t.same(new Set(before.map((r) => r.server)).size, 3, 'all three servers answer first');
        await ipvsadmOk(t, topo, ['-d', '-t', `${topo.vip}:${port}`, '-r', rs(1)]);
        const listed = parseList(await ipvsadmOk(t, topo, ['-Ln']))[0]!;
        t.same(listed.dests.map((e) => nameOf(topo, e.addr)), ['rs1', 'rs3'], 'rs2 is no longer listed');
        const after = await topo.curl(6, { port });
        t.same(countBy(after.map((r) => r.server)), { rs1: 3, rs3: 3 }, 'new connections go to rs1 and rs3 only');
      });

      await t.test('ipvsadm -C in the middle of traffic', async (t) => {
        if (!guard.ok(t)) return;
        const port = base + 5;
        await configure(t, topo, tcpService(port));
        const loop = topo.lab.spawn('client', 'sh', ['-c',
          `while :; do curl -s -m 1 -H 'Connection: close' http://${topo.vip}:${port}/ || echo failed; done`]);
        try {
          await loop.waitFor(/(hello from \S+\n[^]*){5}/, 10_000).catch((e: Error) => t.fail(`traffic before -C: ${e.message}`));
          const clear = await topo.ipvsadm(['-C']);
          t.equal(clear.code, 0, '-C succeeds while connections are being made');
          await new Promise((r) => setTimeout(r, 1500));
          const list = await topo.ipvsadm(['-Ln']);
          t.equal(list.code, 0, 'the director still answers the CLI');
          t.same(parseList(list.stdout), [], 'with an empty table');
        } finally {
          await loop.stop();
        }
        t.ok(topo.daemon?.running(), 'the daemon did not crash');
        await configure(t, topo, tcpService(port + 50));
        const recs = await topo.curl(3, { port: port + 50 });
        t.same(new Set(recs.map((r) => r.server)).size, 3, 'a new service works right after');
      });
    });
  }
});
