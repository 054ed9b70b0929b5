import t from 'tap';
import {
  FWD_MASQ, FWD_TUNNEL, PROTO_UDP, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS, SVC_F_HASHED,
  SVC_F_PERSISTENT, TUN_GUE,
} from '../../src/svc/types.js';
import { dst, errno, fwm, makeTable, proto, svcCfg, tcp } from './helpers.js';

t.test('service and dest entries as text records', async (t) => {
  const { table } = makeTable();
  const k = tcp('192.168.10.1', 80);
  table.addService(svcCfg(k, { schedName: 'rr', flags: SVC_F_PERSISTENT, timeout: 360, netmask: 0xffffff00, pe: 'sip' }));
  table.addDest(k, dst('192.168.10.2', 8080, { fwdMethod: FWD_MASQ, weight: 2, uThreshold: 100, lThreshold: 10 }));
  table.addDest(k, dst('2001:db8::9', 80, { fwdMethod: FWD_TUNNEL, tunType: TUN_GUE, tunPort: 6080, tunFlags: 1 }));
  const [e] = table.getServiceEntries();
  t.same(e, {
    af: 4, protocol: 6, addr: '192.168.10.1', port: 80, fwmark: 0, schedName: 'rr',
    flags: SVC_F_PERSISTENT | SVC_F_HASHED, timeout: 360, netmask: '255.255.255.0', pe: 'sip', numDests: 2,
    stats: { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 },
    dests: [
      {
        af: 6, addr: '2001:db8::9', port: 80, fwdMethod: FWD_TUNNEL, weight: 1, uThreshold: 0, lThreshold: 0,
        tunType: TUN_GUE, tunPort: 6080, tunFlags: 1, activeConns: 0, inactConns: 0, persistConns: 0,
        stats: { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 },
      },
      {
        af: 4, addr: '192.168.10.2', port: 8080, fwdMethod: FWD_MASQ, weight: 2, uThreshold: 100, lThreshold: 10,
        tunType: 0, tunPort: 0, tunFlags: 0, activeConns: 0, inactConns: 0, persistConns: 0,
        stats: { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 },
      },
    ],
  });
});

t.test('IPv6 and fwmark entries', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(proto(PROTO_UDP, '2001:db8:0:0:0:0:0:53', 53), { netmask: 64, schedName: 'none' }));
  table.addService(svcCfg(fwm(0xffffffff, 6)));
  table.addService(svcCfg(fwm(12, 4)));
  const es = table.getServiceEntries();
  const v6 = es.find((e) => e.protocol === PROTO_UDP)!;
  t.equal(v6.addr, '2001:db8::53', 'inet_ntop text');
  t.equal(v6.netmask, '64');
  t.equal(v6.schedName, 'none');
  const f6 = es.find((e) => e.fwmark === 0xffffffff)!;
  t.match(f6, { af: 6, protocol: 0, addr: '::', port: 0, netmask: '128' });
  const f4 = table.getServiceEntry(fwm(12, 4));
  t.match(f4, { af: 4, protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 12, netmask: '255.255.255.255' });
  t.equal(errno(() => table.getServiceEntry(tcp('10.9.9.9', 1))), 'ESRCH');
  t.equal(errno(() => table.getServiceEntry(fwm(13, 4))), 'ESRCH');
});

t.test('counters are reported from their zero point, rates from the estimator', async (t) => {
  const { table, clock } = makeTable();
  const k = tcp('10.0.0.1', 80);
  const svc = table.addService(svcCfg(k));
  const d = table.addDest(k, dst('10.1.0.1', 80));
  d.activeConns = 4;
  d.inactConns = 2;
  d.persistConns = 1;
  const traffic = (n: number) => {
    for (const s of [d.stats, svc.stats, table.totalStats]) {
      s.cnt[ST_CONNS] += n;
      s.cnt[ST_INPKTS] += 10 * n;
      s.cnt[ST_OUTPKTS] += 8 * n;
      s.cnt[ST_INBYTES] += 1000 * n;
      s.cnt[ST_OUTBYTES] += 6000 * n;
    }
  };
  traffic(200); // 100 conns/s over the first 2 s
  clock.t += 2;
  table.tick(clock.t);
  const e = table.getServiceEntry(k);
  t.same(e.stats, {
    conns: 200, inpkts: 2000, outpkts: 1600, inbytes: 200000, outbytes: 1200000,
    // 100/s → (25600+511)>>10 = 25; 1000/s → 250; 800/s → 200; 100000 B/s → 25000; 600000 B/s → 150000
    cps: 25, inpps: 250, outpps: 200, inbps: 25000, outbps: 150000,
  });
  t.same(e.dests[0]!.stats, e.stats, 'the only dest saw the same traffic');
  t.match(e.dests[0], { activeConns: 4, inactConns: 2, persistConns: 1 });

  table.zero(k);
  traffic(3);
  const z = table.getServiceEntry(k);
  t.same(z.stats, { conns: 3, inpkts: 30, outpkts: 24, inbytes: 3000, outbytes: 18000, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  t.equal(z.dests[0]!.stats.conns, 3, 'zeroing a service zeroes its dests');
  t.equal(table.totalStats.cnt[ST_CONNS]! - table.totalStats.zero[ST_CONNS]!, 203, 'but not the totals');
  t.equal(errno(() => table.zero(tcp('10.0.0.2', 80))), 'ESRCH');

  const other = tcp('10.0.0.1', 81);
  const s2 = table.addService(svcCfg(other));
  s2.stats.cnt[ST_CONNS] = 5;
  table.zero(null);
  t.equal(table.getServiceEntry(other).stats.conns, 0);
  t.equal(table.getServiceEntry(k).stats.conns, 0);
  t.equal(table.totalStats.cnt[ST_CONNS]! - table.totalStats.zero[ST_CONNS]!, 0, 'zero all includes the totals');
});
