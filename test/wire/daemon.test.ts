/**
 * `ulvs daemon`'s packet-I/O life cycle: which interfaces it serves by default,
 * refusing bad --interface values, the nftables table on every way out (SIGTERM,
 * an unhandled signal, SIGKILL followed by the next start's sweep).
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { BIN, DAEMON_ENV, WIRE_SKIP } from './helpers.js';

async function tables(lab: Lab, ns: string): Promise<string[]> {
  const r = await lab.exec(ns, 'nft', ['list', 'tables'], { allowFail: true });
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => /^table inet ulvs_\d+$/.test(l)).map((l) => l.slice('table inet '.length));
}

/** The AF_PACKET sockets of process `pid` as `ss -0 -e -m -p` shows them: local address, rcvbuf, sndbuf, full text. */
async function packetSockets(lab: Lab, ns: string, pid: number): Promise<Array<{ local: string; rb: number; tb: number; text: string }>> {
  const r = await lab.exec(ns, 'ss', ['-H', '-0', '-e', '-m', '-p']);
  // One socket per line that does not start with white space, its details on the indented lines after it.
  const blocks = r.stdout.split(/\n(?=\S)/).filter((b) => b.includes(`pid=${pid},`));
  return blocks.map((text) => {
    const f = text.trim().split(/\s+/);
    return { local: f[3] ?? '', rb: Number(/\brb(\d+)/.exec(text)?.[1]), tb: Number(/\btb(\d+)/.exec(text)?.[1]), text };
  });
}

t.test('ulvs daemon and its interfaces', WIRE_SKIP, async (t) => {
  const lab = Lab.create('daemon');
  t.teardown(() => lab.teardown());
  await lab.addNs('d');
  await lab.addNs('p');
  await lab.addNs('empty');
  await lab.veth({ ns: 'd', ifname: 'a0', addrs: ['10.1.0.1/24'] }, { ns: 'p', ifname: 'pa' });
  await lab.veth({ ns: 'd', ifname: 'b0' }, { ns: 'p', ifname: 'pb' });
  const daemon = (ns: string, args: string[] = []) => lab.spawn(ns, process.execPath, [BIN, 'daemon', '--capacity', '1024', ...args], DAEMON_ENV);

  await t.test('no --interface: every non-loopback interface, one ready line, clean SIGTERM', async (t) => {
    const p = daemon('d');
    const m = await p.waitFor(/^ulvs: director ready .*$/m, 15_000);
    t.match(m[0], /afpacket on a0,b0, nft table (ulvs_\d+)\)$/);
    const table = /nft table (ulvs_\d+)/.exec(m[0])![1]!;
    t.same(await tables(lab, 'd'), [table], 'its table is installed');
    t.equal(p.output().split('\n').filter((l) => l.includes('director ready')).length, 1, 'exactly one ready line');
    p.child.kill('SIGTERM');
    t.same(await p.exited(), { code: 0, signal: null });
    t.same(await tables(lab, 'd'), [], 'and removed at exit');
  });

  await t.test('--interface picks; unknown or non-Ethernet interfaces are refused', async (t) => {
    const p = daemon('d', ['--interface', 'b0']);
    t.match((await p.waitFor(/^ulvs: director ready .*$/m, 15_000))[0], /afpacket on b0, /);
    await p.stop();
    const bad = daemon('d', ['--interface', 'nosuch0']);
    t.same(await bad.exited(), { code: 1, signal: null }, 'exit 1');
    t.match(bad.output(), /^ulvs: interface nosuch0: .*No such device/m);
    const lo = daemon('d', ['--interface', 'lo']);
    t.same(await lo.exited(), { code: 1, signal: null });
    t.match(lo.output(), /interface lo is not an Ethernet interface/);
    const be = daemon('d', ['--backend', 'dpdk']);
    t.same(await be.exited(), { code: 2, signal: null }, 'bad --backend: usage error');
  });

  await t.test('--batch, --busy-poll, --rcvbuf, --sndbuf and --fanout-group reach the sockets', async (t) => {
    const p = daemon('d', ['--batch', '16', '--busy-poll', '50', '--rcvbuf', '3M', '--sndbuf', '1536K', '--fanout-group', '7']);
    const m = await p.waitFor(/^ulvs: director ready .*$/m, 15_000);
    t.match(m[0], /afpacket on a0,b0, nft table ulvs_\d+, batch 16, busy-poll 50 µs, fanout group 7, rcvbuf 3145728, sndbuf 1572864\)$/,
      'the ready line names the settings that are not the defaults');
    const socks = await packetSockets(lab, 'd', p.pid);
    const rx = (ifname: string) => socks.filter((s) => s.local === `*:${ifname}`);
    for (const [k, ifname] of ['a0', 'b0'].entries()) {
      // A fanout group belongs to one device: the second interface's is the next group.
      const group = rx(ifname).filter((s) => s.text.includes(`fanout(id:${7 + k},type:hash`));
      const other = rx(ifname).filter((s) => !/fanout\(/.test(s.text));
      t.equal(group.length, 1, `${ifname}: one socket in fanout group ${7 + k}`);
      t.equal(group[0]?.rb, 6 << 20, `${ifname}: its receive buffer is --rcvbuf, doubled by the kernel`);
      t.equal(other.length, 1, `${ifname}: one neighbour socket outside the group`);
    }
    const tx = socks.filter((s) => !s.local.startsWith('*:'));
    t.same(tx.map((s) => s.tb), [3 << 20], 'the tx socket\'s send buffer is --sndbuf, doubled');
    await p.stop();

    const d = daemon('d', ['--interface', 'a0']);
    await d.waitFor(/director ready/, 15_000);
    const dflt = await packetSockets(lab, 'd', d.pid);
    t.same(dflt.filter((s) => s.local === '*:a0').map((s) => [s.rb, /fanout\(/.test(s.text)]), [[64 << 20, false]],
      'without the options: one rx socket, 32 MiB asked, no fanout');
    await d.stop();
  });

  await t.test('a namespace with only lo: a director without packet I/O', async (t) => {
    const p = daemon('empty');
    t.match((await p.waitFor(/^ulvs: director ready .*$/m, 15_000))[0], /no packet I\/O\)$/);
    t.same(await tables(lab, 'empty'), [], 'nothing installed');
    await p.stop();
  });

  await t.test('an unhandled signal still removes the table; after SIGKILL the next start sweeps it', async (t) => {
    const p = daemon('d');
    await p.waitFor(/director ready/, 15_000);
    t.equal((await tables(lab, 'd')).length, 1);
    p.child.kill('SIGHUP');
    const ex = await p.exited();
    t.not(ex.code, 0, `SIGHUP ends the daemon (${JSON.stringify(ex)})`);
    t.same(await tables(lab, 'd'), [], 'table removed on SIGHUP');

    const k = daemon('d');
    await k.waitFor(/director ready/, 15_000);
    const left = await tables(lab, 'd');
    t.equal(left.length, 1);
    // SIGKILL the daemon itself (the `ip netns exec` child execs into node, so this is its pid).
    process.kill(k.pid, 'SIGKILL');
    await k.exited();
    t.same(await tables(lab, 'd'), left, 'SIGKILL leaves the table behind');
    const next = daemon('d');
    const m = await next.waitFor(/^ulvs: director ready .*$/m, 15_000);
    const mine = /nft table (ulvs_\d+)/.exec(m[0])![1]!;
    t.same(await tables(lab, 'd'), [mine], 'the next daemon swept the dead one\'s table');
    await next.stop();
  });
});
