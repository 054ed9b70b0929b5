/**
 * The lab itself, without our data plane: the kernel-dnat variant (nftables
 * `numgen inc mod 2` round robin) and the direct client→server path carry real
 * traffic with offload on and off; teardown leaves nothing behind; `ulvs lab
 * up|status|down` builds a lab that outlives the command and removes it again.
 */
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { buildLab, processRunning, ULVS_BIN } from '../../src/lab/lab-topology.js';
import { run } from '../../src/lab/netns.js';
import { E2E_SKIP, OFFLOAD_MODES, countBy } from './helpers.js';

const alive = processRunning;

t.test('kernel-dnat lab and the direct path', E2E_SKIP, async (t) => {
  const topo = await buildLab({ director: 'kernel-dnat', servers: 2, direct: true, clientAliases: 2 });
  let torn = false;
  t.teardown(() => (torn ? undefined : topo.teardown()));
  t.equal(topo.ns.rs.length, 2, 'two real servers');
  t.same(topo.rsAddrs, ['10.0.1.1', '10.0.1.2'], 'real servers on 10.0.1.0/24');
  const nft = await topo.exec('director', 'nft', ['list', 'ruleset']);
  t.match(nft.stdout, /numgen inc mod 2/, 'the director round-robins with numgen inc mod 2');

  for (const mode of OFFLOAD_MODES) {
    await t.test(mode.name, async (t) => {
      await topo.setOffload(mode.on);
      const eth = await topo.exec('rs1', 'ethtool', ['-k', 'eth0']);
      t.match(eth.stdout, new RegExp(`tx-checksumming: ${mode.on ? 'on' : 'off'}`), 'rs1 eth0 offload as set');

      const recs = await topo.curl(8);
      t.equal(recs.length, 8, 'eight requests made');
      t.same(countBy(recs.map((r) => r.server)), { rs1: 4, rs2: 4 }, 'DNAT spreads them evenly');
      t.ok(recs.every((r, i) => i === 0 || r.server !== recs[i - 1]!.server), 'and alternates (numgen inc)');
      t.equal(new Set(recs.map((r) => r.local)).size, 8, 'each request was its own connection');
      t.ok(recs.every((r) => r.local.startsWith('10.0.0.1:')), 'from the client address on c0');

      const aliasRecs = await topo.curl(1, { from: topo.clientAliases });
      t.same(aliasRecs.map((r) => r.local.split(':')[0]), topo.clientAliases, 'extra client addresses are usable sources');
      t.ok(aliasRecs.every((r) => r.server !== null), 'and get answers');

      const udp = await topo.udp(4);
      t.same(countBy(udp.map((r) => r.server)), { rs1: 2, rs2: 2 }, 'UDP through the VIP is spread too');

      const direct = await topo.curl(3, { host: '10.0.1.2' });
      t.same(direct.map((r) => r.server), ['rs2', 'rs2', 'rs2'], 'the direct path reaches rs2 itself');
      t.ok(direct.every((r) => r.local.startsWith('10.0.1.100:')), 'from c1, bypassing the director');
    });
  }

  await t.test('a long connection keeps its server', async (t) => {
    const s = await topo.session();
    t.equal(await s.request(), s.first, 'second request on the same connection');
    await s.close();
  });

  await t.test('teardown removes every namespace and process', async (t) => {
    const pids = topo.processes.map((p) => p.pid);
    t.ok(pids.length >= 2, 'servers were running');
    await topo.teardown();
    torn = true;
    t.same(topo.lab.remaining(), [], 'no namespace left');
    t.same(pids.filter(alive), [], 'no process left');
  });
});

t.test('ulvs lab up / status / down', E2E_SKIP, async (t) => {
  const prefix = `ulvs-up${process.pid}-`;
  const cli = (args: string[]) => run(process.execPath, [ULVS_BIN, 'lab', ...args, '--prefix', prefix], { timeoutMs: 60_000, allowFail: true });
  t.teardown(() => cli(['down']));
  const ours = () => readdirSync('/var/run/netns').filter((n) => n.startsWith(prefix)).sort();

  const up = await cli(['up', '--servers', '2', '--direct']);
  t.equal(up.code, 0, `up exits 0 ${up.stderr}`);
  t.match(up.stdout, `ip netns exec ${prefix}client`, 'prints how to enter the namespaces');
  t.match(up.stdout, 'ulvs lab down', 'and how to remove the lab');
  t.same(ours(), ['client', 'director', 'rs1', 'rs2', 'sw'].map((s) => prefix + s), 'the namespaces outlive the command');

  const again = await cli(['up']);
  t.equal(again.code, 1, 'a second up fails');
  t.match(again.stderr, 'already up', 'saying why');

  const st = await cli(['status']);
  t.equal(st.code, 0, 'status exits 0');
  const pids = [...st.stdout.matchAll(/pid (\d+)\s+running/g)].map((m) => Number(m[1]));
  t.match(st.stdout, /ulvs daemon\s+pid \d+\s+running/, 'the daemon still runs after `up` exited');
  t.match(st.stdout, /tun-decap on rs2\s+pid \d+\s+running/, 'tun-decap runs on the real servers');
  t.ok(pids.length >= 5, 'daemon, servers and tun-decaps are listed');

  const ls = await run('ip', ['netns', 'exec', `${prefix}director`, process.execPath, ULVS_BIN, 'ipvsadm', '-A', '-t', '10.0.0.100:80'], { allowFail: true });
  t.equal(ls.code, 0, 'ipvsadm in the director namespace reaches the detached daemon');
  const list = await run('ip', ['netns', 'exec', `${prefix}director`, process.execPath, ULVS_BIN, 'ipvsadm', '-Ln'], { allowFail: true });
  t.match(list.stdout, /TCP {2}10\.0\.0\.100:80 wlc/, 'and the daemon keeps the service');
  const direct = await run('ip', ['netns', 'exec', `${prefix}client`, 'curl', '-s', '-m', '3', 'http://10.0.1.1/'], { allowFail: true });
  t.equal(direct.stdout, 'hello from rs1\n', 'the real servers answer (direct path)');
  const vipOnLo = await run('ip', ['-n', `${prefix}rs1`, '-4', '-o', 'addr', 'show', 'dev', 'lo']);
  t.match(vipOnLo.stdout, '10.0.0.100/32', 'the VIP is on the real servers\' lo (ready for DR/TUN)');

  const down = await cli(['down']);
  t.equal(down.code, 0, 'down exits 0');
  t.same(ours(), [], 'every namespace is gone');
  await new Promise((r) => setTimeout(r, 300));
  t.same(pids.filter(alive), [], 'every process is gone');
  t.notOk(existsSync(`/run/ulvs-lab/${prefix.replace(/-$/, '')}`), 'the state directory is gone');
  const down2 = await cli(['down']);
  t.match(down2.stdout, 'no lab is up', 'a second down says there is nothing to remove');
});
