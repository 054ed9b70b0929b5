/**
 * Number and address text rules of the listings (reference d.3, f.2–f.5):
 * print_largenum, the signed-difference sort quirks, name cuts.
 */
import t from 'tap';
import { printLargenum, serviceNameText, tunInfoText, timeoutText, daemonText } from '../../src/cli/ipvsadm/format.js';
import { glibcMergeSort, sortDests, sortServices } from '../../src/cli/ipvsadm/sort.js';
import type { DestEntry, ServiceEntry } from '../../src/ctl/types.js';
import { zeroStats } from './fake-api.js';

t.test('print_largenum table (d.3)', async (t) => {
  const rows: Array<[number, string, string]> = [
    [0, '        0', '        0'],
    [99_999_999, ' 99999999', ' 99999999'],
    [100_000_000, '  100000K', ' 100000000'],
    [999_999_999, '  999999K', ' 999999999'],
    [1_000_000_000, '    1000M', ' 1000000000'],
    [99_999_999_999, '   99999M', ' 99999999999'],
    [100_000_000_000, '     100G', ' 100000000000'],
    [99_999_999_999_999, '   99999G', ' 99999999999999'],
    [100_000_000_000_000, '     100T', ' 100000000000000'],
  ];
  for (const [v, def, exact] of rows) {
    t.equal(printLargenum(v, false), def, `${v}`);
    t.equal(printLargenum(v, true), exact, `${v} --exact`);
  }
  // Integer division truncates.
  t.equal(printLargenum(123_999_999, false), '  123999K');
  // T keeps growing past the 8 columns.
  t.equal(printLargenum(1e18, false), ' 1000000T');
});

function svc(p: Partial<ServiceEntry>): ServiceEntry {
  return {
    af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0, schedName: 'wlc', flags: 0, timeout: 0,
    netmask: '255.255.255.255', pe: '', numDests: 0, stats: zeroStats(), dests: [], ...p,
  };
}

function dest(addr: string, port = 80, af: 4 | 6 = 4): DestEntry {
  return {
    af, addr, port, fwdMethod: 3, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
    activeConns: 0, inactConns: 0, persistConns: 0, stats: zeroStats(),
  };
}

t.test('service order: fwmark, family, protocol, address (signed difference), port', async (t) => {
  const list = [
    svc({ fwmark: 5, protocol: 0, addr: '0.0.0.0', port: 0 }),
    svc({ addr: '192.168.0.1' }),
    svc({ protocol: 17, addr: '1.1.1.1' }),
    svc({ af: 6, addr: '2001:db8::1' }),
    svc({ addr: '10.0.0.1', port: 443 }),
    svc({ addr: '10.0.0.1', port: 80 }),
  ];
  const order = sortServices(list).map((s) => `${s.fwmark}/${s.af}/${s.protocol}/${s.addr}:${s.port}`);
  // 10.0.0.1 - 192.168.0.1 is a positive signed 32-bit difference: 10.0.0.1 sorts after it.
  t.same(order, [
    '0/4/6/192.168.0.1:80', '0/4/6/10.0.0.1:80', '0/4/6/10.0.0.1:443', '0/4/17/1.1.1.1:80',
    '0/6/6/2001:db8::1:80', '5/4/0/0.0.0.0:0',
  ]);
});

t.test('a fwmark of 2^31 or more sorts before the non-fwmark services (signed difference)', async (t) => {
  const order = sortServices([svc({}), svc({ fwmark: 0x80000001, protocol: 0, addr: '0.0.0.0', port: 0 })]);
  t.equal(order[0]!.fwmark, 0x80000001);
});

t.test('dest order: 200.0.0.5 before 10.0.0.5; port breaks ties', async (t) => {
  const order = sortDests([dest('10.0.0.5', 81), dest('10.0.0.5', 80), dest('200.0.0.5')]).map((d) => `${d.addr}:${d.port}`);
  t.same(order, ['200.0.0.5:80', '10.0.0.5:80', '10.0.0.5:81']);
});

t.test('non-transitive comparisons follow glibc merge order, not a stable sort', async (t) => {
  // 10 < 100 < 192 but 192 < 10: the answer depends on the merge pattern.
  const cmp = (a: number, b: number) => (((a - b) >>> 0) | 0);
  const addrs = [0x0a000001, 0x64000001, 0xc0a80001];
  t.same(glibcMergeSort(addrs, cmp), [0x0a000001, 0x64000001, 0xc0a80001]);
  // [192] merged with the sorted [10, 100]: 192 - 10 is negative as an int, so 192 goes first.
  t.same(glibcMergeSort([0xc0a80001, 0x64000001, 0x0a000001], cmp), [0xc0a80001, 0x0a000001, 0x64000001]);
});

t.test('service identity text: FWM with %d, IPv6 suffix, 33-character cut for IPv4 only', async (t) => {
  t.equal(serviceNameText(svc({ fwmark: 100, protocol: 0 }), null), 'FWM  100');
  t.equal(serviceNameText(svc({ fwmark: 100, protocol: 0, af: 6 }), null), 'FWM  100 IPv6');
  t.equal(serviceNameText(svc({ fwmark: 0xffffffff, protocol: 0 }), null), 'FWM  -1');
  t.equal(serviceNameText(svc({ protocol: 132, port: 3868 }), null), 'SCTP 10.0.0.1:3868');
  t.equal(serviceNameText(svc({ protocol: 50 }), null), '?    10.0.0.1:80');
  const names = { host: () => 'a-very-long-host-name.example.com', service: () => 'http' };
  t.equal(serviceNameText(svc({}), names), 'TCP  a-very-long-host-name.exampl');
  t.equal(serviceNameText(svc({ af: 6, addr: '2001:db8::1' }), names), 'TCP  [a-very-long-host-name.example.com]:http');
});

t.test('tunnel info column', async (t) => {
  const d = dest('10.0.0.2');
  t.equal(tunInfoText(d), null, 'not a tunnel: n/a');
  d.fwdMethod = 2;
  t.equal(tunInfoText(d), 'ipip');
  Object.assign(d, { tunType: 1, tunPort: 6080, tunFlags: 2 });
  t.equal(tunInfoText(d), 'gue:6080:r+c');
  Object.assign(d, { tunType: 2, tunFlags: 0 });
  t.equal(tunInfoText(d), 'gre:-c');
});

t.test('timeout and daemon lines (f.8)', async (t) => {
  t.equal(timeoutText({ tcp: 900, tcpFin: 120, udp: 300 }), 'Timeout (tcp tcpfin udp): 900 120 300\n');
  t.equal(daemonText([
    { state: 'backup', mcastIfn: 'eth1', syncId: 2, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 },
    { state: 'master', mcastIfn: 'eth0', syncId: 0, syncMaxlen: 1472, mcastGroup: '224.0.0.81', mcastPort: 8848, mcastTtl: 1 },
  ]), 'master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n' +
    'backup sync daemon (mcast=eth1, syncid=2)\n');
  t.equal(daemonText([]), '');
});
