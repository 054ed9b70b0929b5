/**
 * The decapsulator on hand-built frames (no namespaces needed): where the inner
 * packet is found for each tunnel kind, and which frames are refused and why.
 */
import t from 'tap';
import {
  Decapsulator, DECAP_BAD_CHECKSUM, DECAP_BAD_INNER, DECAP_GUE_CONTROL, DECAP_NOT_LOCAL, DECAP_NOT_TUNNEL,
  DECAP_OK, DECAP_OUTER_FRAGMENT, DECAP_UNSUPPORTED, DECAP_REASON_NAMES, KIND_GRE, KIND_GUE, KIND_IPIP, KIND_SIT,
  parseTunDecapArgs,
} from '../../src/lab/tun-decap.js';
import { buildTcp, buildUdp, fragmentFrame, ipPacketOf } from '../../src/packet/build.js';
import { l4ChecksumOk } from '../../src/packet/checksum.js';
import { greFrame, gueFrame, ipipFrame, type Outer } from './tunnel-frames.js';

const OUT4: Outer = { saddr: '192.0.2.1', daddr: '192.0.2.10' };
const OUT6: Outer = { saddr: '2001:db8::1', daddr: '2001:db8::10' };
const inner4 = ipPacketOf(buildTcp({ saddr: '198.51.100.7', daddr: '203.0.113.100', sport: 40000, dport: 80, seq: 77 }));
const inner6 = ipPacketOf(buildTcp({ saddr: '2001:db8:c::7', daddr: '2001:db8:f::100', sport: 40001, dport: 80 }));

const dec = new Decapsulator({ guePorts: [6080], localAddrs: ['192.0.2.10', '2001:db8::10'] });

function run(frame: Uint8Array, d = dec, csumNotReady = false): { r: number; inner: Uint8Array } {
  // Place the frame at an offset inside a larger buffer, as in a batch slot.
  const buf = new Uint8Array(frame.length + 300);
  buf.set(frame, 128);
  const r = d.decap(buf, 128, frame.length, csumNotReady);
  return { r, inner: r === DECAP_OK ? buf.slice(d.innerOff, d.innerOff + d.innerLen) : new Uint8Array(0) };
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
const reason = (r: number) => DECAP_REASON_NAMES[r];

t.test('each tunnel kind yields exactly the inner packet', async (t) => {
  const cases: Array<[string, Uint8Array, Uint8Array, number]> = [
    ['IPIP over IPv4', ipipFrame(OUT4, inner4), inner4, KIND_IPIP],
    ['SIT (IPv6 in IPv4)', ipipFrame(OUT4, inner6), inner6, KIND_SIT],
    ['IPv4 in IPv6', ipipFrame(OUT6, inner4), inner4, KIND_IPIP],
    ['IPv4 in IPv6 behind a destination-options header', ipipFrame({ ...OUT6, ipv6Ext: [{ type: 60, len: 8 }] }, inner4), inner4, KIND_IPIP],
    ['IPIP in an 802.1Q-tagged frame', ipipFrame({ ...OUT4, vlan: 7 }, inner4), inner4, KIND_IPIP],
    ['GRE, plain', greFrame(OUT4, inner4), inner4, KIND_GRE],
    ['GRE with checksum, key and sequence', greFrame(OUT4, inner4, { csum: true, key: 0xdeadbeef, seq: 9 }), inner4, KIND_GRE],
    ['GRE carrying IPv6 over IPv6', greFrame(OUT6, inner6, { csum: true }), inner6, KIND_GRE],
    ['GUE v0', gueFrame(OUT4, inner4, { port: 6080 }), inner4, KIND_GUE],
    ['GUE v0, outer UDP checksum 0', gueFrame(OUT4, inner4, { port: 6080, udpChecksum: 'zero' }), inner4, KIND_GUE],
    ['GUE v1 (direct IPv6)', gueFrame(OUT4, inner6, { port: 6080, direct: true }), inner6, KIND_GUE],
    ['GUE over IPv6', gueFrame(OUT6, inner4, { port: 6080 }), inner4, KIND_GUE],
  ];
  for (const [name, frame, want, kind] of cases) {
    const { r, inner } = run(frame);
    t.equal(reason(r), 'ok', `${name}: accepted`);
    t.ok(same(inner, want), `${name}: inner packet intact`);
    t.equal(dec.kind, kind, `${name}: kind`);
  }
});

t.test('Ethernet padding after a short inner packet is not passed on', async (t) => {
  const small = ipPacketOf(buildUdp({ saddr: '198.51.100.7', daddr: '203.0.113.100', payload: 'x' }));
  const f = ipipFrame(OUT4, small);
  const padded = new Uint8Array(80);
  padded.set(f);
  const { r, inner } = run(padded);
  t.equal(r, DECAP_OK);
  t.equal(inner.length, small.length, 'inner length from the inner header (29 bytes), not the frame');
});

t.test('refusals', async (t) => {
  const frag = fragmentFrame(ipipFrame(OUT4, ipPacketOf(buildTcp({ saddr: '198.51.100.7', daddr: '203.0.113.100', payload: 'y'.repeat(200) }))), 96);
  const cases: Array<[string, Uint8Array, number]> = [
    ['plain TCP', buildTcp({ saddr: '192.0.2.1', daddr: '192.0.2.10' }), DECAP_NOT_TUNNEL],
    ['UDP to a port that is not GUE', gueFrame(OUT4, inner4, { port: 6081 }), DECAP_NOT_TUNNEL],
    ['ARP', new Uint8Array([...new Uint8Array(12), 0x08, 0x06, ...new Uint8Array(46)]), DECAP_NOT_TUNNEL],
    ['IPIP to another host', ipipFrame({ ...OUT4, daddr: '192.0.2.99' }, inner4), DECAP_NOT_LOCAL],
    ['IPIP over IPv6 to another host', ipipFrame({ ...OUT6, daddr: '2001:db8::99' }, inner4), DECAP_NOT_LOCAL],
    ['first outer fragment', frag[0]!, DECAP_OUTER_FRAGMENT],
    ['later outer fragment', frag[1]!, DECAP_OUTER_FRAGMENT],
    ['GRE with a bad checksum', greFrame(OUT4, inner4, { csum: true, badCsum: true }), DECAP_BAD_CHECKSUM],
    ['GRE version 1 (PPTP)', greFrame(OUT4, inner4, { flagsWord: 0x0001 }), DECAP_UNSUPPORTED],
    ['GRE with the routing bit', greFrame(OUT4, inner4, { flagsWord: 0x4000 }), DECAP_UNSUPPORTED],
    ['GUE with a bad outer UDP checksum', gueFrame(OUT4, inner4, { port: 6080, udpChecksum: 'bad' }), DECAP_BAD_CHECKSUM],
    ['GUE control message', gueFrame(OUT4, inner4, { port: 6080, control: true }), DECAP_GUE_CONTROL],
    ['IPIP whose inner packet is cut short', ipipFrame(OUT4, inner4.slice(0, 30)), DECAP_BAD_INNER],
    ['outer IPv4 header checksum wrong (TTL changed after the fact)', ipipFrame(OUT4, inner4).map((v, i) => (i === 14 + 8 ? v - 1 : v)), DECAP_BAD_CHECKSUM],
  ];
  for (const [name, frame, want] of cases) {
    t.equal(reason(run(frame).r), reason(want), name);
  }
  // Protocol 4 but an IPv6 version nibble inside (the outer header stays valid: only the payload changes).
  const g = ipipFrame(OUT4, inner4);
  g[34] = 0x65;
  t.equal(reason(run(g).r), 'bad-inner', 'protocol 4 with an IPv6 header inside');
});

t.test('a partial outer UDP checksum (local sender with offload) is not verified', async (t) => {
  const f = gueFrame(OUT4, inner4, { port: 6080, udpChecksum: 'bad' });
  t.equal(reason(run(f, dec, true).r), 'ok', 'accepted when flagged FRAME_CSUM_NOT_READY');
});

t.test('GUE remote checksum offload is completed like fou does', async (t) => {
  // The director left the inner TCP checksum as the pseudo-header sum (CHECKSUM_PARTIAL);
  // start = inner L4 header, offset = its checksum field, both from the inner packet start.
  const partial = ipPacketOf(buildTcp({ saddr: '198.51.100.7', daddr: '203.0.113.100', sport: 40002, dport: 80, l4Checksum: 'partial', payload: 'abc' }));
  t.notOk(l4ChecksumOk(partial, 4, 0, 6, 20, partial.length - 20), 'the inner checksum starts out incomplete');
  const { r, inner } = run(gueFrame(OUT4, partial, { port: 6080, remcsum: [20, 36] }));
  t.equal(reason(r), 'ok');
  t.ok(l4ChecksumOk(inner, 4, 0, 6, 20, inner.length - 20), 'after decapsulation the inner TCP checksum is valid');
  const bad = run(gueFrame(OUT4, partial, { port: 6080, remcsum: [20, partial.length] }));
  t.equal(reason(bad.r), 'bad-inner', 'a checksum offset beyond the inner packet is refused');
});

t.test('configuration', async (t) => {
  const any = new Decapsulator({});
  t.equal(reason(run(ipipFrame({ ...OUT4, daddr: '10.9.9.9' }, inner4), any).r), 'ok', 'no local list: any destination');
  t.equal(reason(run(gueFrame(OUT4, inner4, { port: 6080 }), any).r), 'not-tunnel', 'no GUE port configured: UDP is not a tunnel');
  const noIpip = new Decapsulator({ ipip: false });
  t.equal(reason(run(ipipFrame(OUT4, inner4), noIpip).r), 'not-tunnel', 'IPIP disabled');
  t.equal(reason(run(greFrame(OUT4, inner4), noIpip).r), 'ok', 'GRE still on');
  t.throws(() => new Decapsulator({ guePorts: [70000] }), /bad GUE port/);
  t.throws(() => new Decapsulator({ localAddrs: ['nope'] }), /bad local address/);
  t.same(parseTunDecapArgs(['--iface', 'eth0', '-i', 'eth1', '--gue-port', '6080', '--no-gre', '--tun', 't0']),
    { interfaces: ['eth0', 'eth1'], guePorts: [6080], gre: false, tunName: 't0' });
  t.throws(() => parseTunDecapArgs(['--gue-port', '0']), /bad --gue-port/);
  t.throws(() => parseTunDecapArgs(['--frob']), /unknown option --frob/);
});
