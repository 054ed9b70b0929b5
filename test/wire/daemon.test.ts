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
