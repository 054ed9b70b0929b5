import t from 'tap';
import { FWD_DROUTE, FWD_MASQ, PROTO_SCTP, PROTO_TCP, PROTO_UDP, type Service } from '../../src/svc/types.js';
import { formatIp } from '../../src/util/ip.js';
import { dst, fwm, makeTable, proto, svcCfg, tcp, words } from './helpers.js';

const name = (s: Service | null) => (s === null ? null : s.fwmark ? `fwm ${s.fwmark}/${s.af}` : `${s.protocol} ${formatIp(s.addr)}:${s.port}`);

t.test('exact lookups by protocol, address and port', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 80)));
  table.addService(svcCfg(proto(PROTO_UDP, '10.0.0.1', 53)));
  table.addService(svcCfg(proto(PROTO_SCTP, '10.0.0.1', 80)));
  const vip = words('10.0.0.1');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 80, 0)), '6 10.0.0.1:80');
  t.equal(name(table.findService(4, PROTO_SCTP, vip, 80, 0)), '132 10.0.0.1:80');
  t.equal(name(table.findService(4, PROTO_UDP, vip, 53, 0)), '17 10.0.0.1:53');
  t.equal(table.findService(4, PROTO_UDP, vip, 80, 0), null);
  t.equal(table.findService(4, PROTO_TCP, vip, 81, 0), null);
  t.equal(table.findService(4, PROTO_TCP, words('10.0.0.2'), 80, 0), null);
  t.equal(table.findService(6, PROTO_TCP, vip, 80, 0), null, 'family is part of the key');
  t.equal(table.findService(0, PROTO_TCP, vip, 80, 0), null, 'a non-IP frame matches nothing');
  const dirty = Uint32Array.of(vip[0]!, 0xdead, 0xbeef, 7);
  t.equal(name(table.findService(4, PROTO_TCP, dirty, 80, 0)), '6 10.0.0.1:80', 'IPv4 ignores words 1..3');
});

t.test('IPv6 services', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('2001:db8::1', 443)));
  table.addService(svcCfg(tcp('2001:db8::1:0:0:1', 443)));
  t.equal(name(table.findService(6, PROTO_TCP, words('2001:db8::1', ), 443, 0)), '6 2001:db8::1:443');
  t.equal(name(table.findService(6, PROTO_TCP, words('2001:db8::1:0:0:1'), 443, 0)), '6 2001:db8::1:0:0:1:443');
  // Same XOR fold as 2001:db8::1, different address.
  t.equal(table.findService(6, PROTO_TCP, words('2001:db8:0:0:1::1:1'), 443, 0), null);
  t.equal(table.findService(6, PROTO_TCP, words('2001:db8::2'), 443, 0), null);
});

t.test('fwmark services come first when the packet has a mark', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 80)));
  table.addService(svcCfg(fwm(1, 4)));
  table.addService(svcCfg(fwm(2, 6)));
  const vip = words('10.0.0.1');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 80, 1)), 'fwm 1/4', 'fwmark beats the exact match');
  t.equal(name(table.findService(4, PROTO_UDP, words('192.0.2.9'), 9, 1)), 'fwm 1/4', 'any protocol and address');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 80, 2)), '6 10.0.0.1:80', 'mark of another family: falls back');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 80, 3)), '6 10.0.0.1:80', 'unknown mark: falls back');
  t.equal(name(table.findService(6, PROTO_TCP, words('2001:db8::1'), 80, 2)), 'fwm 2/6');
  t.equal(table.findService(4, PROTO_TCP, vip, 80, 0) !== null, true);
});

t.test('FTP data: TCP ports 20 and >= 1024 fall back to the port-21 service', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 21)));
  table.addService(svcCfg(tcp('10.0.0.1', 8080)));
  table.addService(svcCfg(proto(PROTO_UDP, '10.0.0.2', 21)));
  const vip = words('10.0.0.1');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 20, 0)), '6 10.0.0.1:21');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 1024, 0)), '6 10.0.0.1:21');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 40000, 0)), '6 10.0.0.1:21');
  t.equal(table.findService(4, PROTO_TCP, vip, 1023, 0), null, 'privileged ports other than 20 do not');
  t.equal(table.findService(4, PROTO_TCP, vip, 80, 0), null);
  t.equal(name(table.findService(4, PROTO_TCP, vip, 8080, 0)), '6 10.0.0.1:8080', 'an exact service wins');
  t.equal(table.findService(4, PROTO_UDP, words('10.0.0.2'), 2000, 0), null, 'only for TCP');
  t.equal(table.findService(4, PROTO_TCP, words('10.0.0.3'), 2000, 0), null, 'same address only');

  const low = makeTable([], { unprivilegedPortStart: 500 });
  low.table.addService(svcCfg(tcp('10.0.0.1', 21)));
  t.equal(name(low.table.findService(4, PROTO_TCP, vip, 600, 0)), '6 10.0.0.1:21', 'follows ip_unprivileged_port_start');
});

t.test('port-zero services catch every port, after exact and FTP lookups', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 0)));
  table.addService(svcCfg(tcp('10.0.0.1', 443)));
  const vip = words('10.0.0.1');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 22, 0)), '6 10.0.0.1:0');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 443, 0)), '6 10.0.0.1:443');
  t.equal(table.findService(4, PROTO_UDP, vip, 22, 0), null, 'per protocol');
  table.addService(svcCfg(tcp('10.0.0.1', 21)));
  t.equal(name(table.findService(4, PROTO_TCP, vip, 2000, 0)), '6 10.0.0.1:21', 'FTP before port zero');
  t.equal(name(table.findService(4, PROTO_TCP, vip, 22, 0)), '6 10.0.0.1:0');
  table.delService(tcp('10.0.0.1', 0));
  t.equal(table.findService(4, PROTO_TCP, vip, 22, 0), null);
});

t.test('NAT real servers by address and port', async (t) => {
  const { table } = makeTable();
  const k = tcp('10.0.0.1', 80);
  table.addService(svcCfg(k));
  table.addService(svcCfg(fwm(9)));
  table.addDest(k, dst('10.1.0.1', 8080, { fwdMethod: FWD_MASQ }));
  table.addDest(k, dst('10.1.0.2', 80, { fwdMethod: FWD_DROUTE }));
  table.addDest(fwm(9), dst('10.1.0.3', 25, { fwdMethod: FWD_MASQ }));
  const rs = (a: string, port: number, p = PROTO_TCP) => {
    const d = table.findRealServer(4, p, words(a), port);
    return d === null ? null : `${formatIp(d.addr)}:${d.port}`;
  };
  t.equal(rs('10.1.0.1', 8080), '10.1.0.1:8080');
  t.equal(rs('10.1.0.1', 8080, PROTO_UDP), null, 'protocol of the service');
  t.equal(rs('10.1.0.1', 80), null);
  t.equal(rs('10.1.0.2', 80), null, 'DR dests are not NAT real servers');
  t.equal(rs('10.1.0.3', 25, PROTO_UDP), '10.1.0.3:25', 'fwmark services match any protocol');
  table.editDest(k, dst('10.1.0.1', 8080, { fwdMethod: FWD_DROUTE }));
  t.equal(rs('10.1.0.1', 8080), null, 'gone when it stops masquerading');
  table.editDest(k, dst('10.1.0.1', 8080, { fwdMethod: FWD_MASQ }));
  t.equal(rs('10.1.0.1', 8080), '10.1.0.1:8080');
  table.delDest(k, dst('10.1.0.1', 8080));
  t.equal(rs('10.1.0.1', 8080), null, 'gone when deleted');
});

t.test('version moves on every change', async (t) => {
  const { table } = makeTable();
  const k = tcp('10.0.0.1', 80);
  const seen = [table.version];
  const step = (f: () => void) => { f(); seen.push(table.version); };
  step(() => table.addService(svcCfg(k)));
  step(() => table.editService(svcCfg(k, { schedName: 'rr' })));
  step(() => table.addDest(k, dst('10.1.0.1', 80)));
  step(() => table.editDest(k, dst('10.1.0.1', 80, { weight: 4 })));
  step(() => table.delDest(k, dst('10.1.0.1', 80)));
  step(() => table.zero(null));
  step(() => table.delService(k));
  for (let i = 1; i < seen.length; i++) t.ok(seen[i]! > seen[i - 1]!, `change ${i}`);
});

t.test('services() and serviceById for the data plane', async (t) => {
  const { table } = makeTable();
  const a = table.addService(svcCfg(tcp('10.0.0.1', 80)));
  const b = table.addService(svcCfg(fwm(4)));
  t.equal(table.serviceById(a.id), a);
  t.equal(table.serviceById(b.id), b);
  t.equal(table.serviceById(9999), undefined);
  t.equal(table.destById(9999), undefined);
  t.same(new Set(table.services()), new Set([a, b]));
});

t.test('many services: growth and deletions keep every lookup right', async (t) => {
  const { table } = makeTable();
  let seed = 7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const keys = new Map<string, ReturnType<typeof tcp>>();
  while (keys.size < 1500) {
    const v6 = rnd(3) === 0;
    const a = v6 ? `2001:db8::${rnd(40).toString(16)}:${rnd(65536).toString(16)}` : `10.${rnd(4)}.${rnd(256)}.${rnd(256)}`;
    const k = rnd(5) === 0 ? fwm(1 + rnd(100000), v6 ? 6 : 4) : proto([6, 17, 132][rnd(3)]!, a, 1 + rnd(3));
    const id = k.fwmark ? `f${k.af}/${k.fwmark}` : `${k.protocol} ${a} ${k.port}`;
    if (!keys.has(id)) {
      keys.set(id, k);
      table.addService(svcCfg(k));
    }
  }
  const live = new Set(keys.keys());
  for (const id of [...keys.keys()]) {
    if (rnd(2) === 0) {
      table.delService(keys.get(id)!);
      live.delete(id);
    }
  }
  let wrong = 0;
  for (const [id, k] of keys) {
    const w = Uint32Array.of(k.addr.w0, k.addr.w1, k.addr.w2, k.addr.w3);
    const s = k.fwmark ? table.findService(k.af, 6, w, 1, k.fwmark) : table.findService(k.af, k.protocol, w, k.port, 0);
    const found = s !== null && (k.fwmark ? s.fwmark === k.fwmark && s.af === k.af : s.fwmark === 0 && s.port === k.port && s.protocol === k.protocol);
    if (found !== live.has(id)) wrong++;
  }
  t.equal(wrong, 0);
  t.equal(table.numServices, live.size);
});
