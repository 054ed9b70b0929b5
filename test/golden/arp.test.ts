/**
 * ARP through process(): a request for a VIP (or the director's own address) is turned into
 * the reply in place — the answer a Linux host owning the VIP would give — and anything else
 * ARP is left to the kernel.
 */
import t from 'tap';
import { buildArp } from '../../src/packet/build.js';
import { DIR_IP, IP, MAC, Judge, director, only, outcome } from './helpers.js';
import { formatMac } from '../../src/util/mac.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';
import { formatIp4 } from '../../src/util/ip.js';

const judge = new Judge();

const RULES = `-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g
-A -u ${IP.vip2}:53 -s rr
-a -u ${IP.vip2}:53 -r ${IP.rs1}:53 -g
`;

function arpFields(f: Uint8Array, l3 = 14) {
  return {
    ethDst: formatMac(f, 0), ethSrc: formatMac(f, 6), op: rd16(f, l3 + 6),
    sha: formatMac(f, l3 + 8), spa: formatIp4(rd32(f, l3 + 14)), tha: formatMac(f, l3 + 18), tpa: formatIp4(rd32(f, l3 + 24)),
  };
}

t.test('a request for a VIP gets the reply, in place', async (t) => {
  const td = director();
  await td.rules(RULES);
  for (const vip of [IP.vip, IP.vip2]) {
    const req = buildArp({ srcMac: MAC.client, senderIp: IP.client, targetIp: vip, padTo: 60 });
    const s = td.send(req);
    t.same(outcome(s), { verdict: 'reply', reason: 'arp-reply', frames: 1 }, vip);
    const r = only(s);
    t.equal(r.length, 60, 'same frame size (padding kept)');
    t.same(arpFields(r), {
      ethDst: MAC.client, ethSrc: MAC.dir, op: 2, sha: MAC.dir, spa: vip, tha: MAC.client, tpa: IP.client,
    }, `${vip}: reply from us to the requester`);
    judge.add(`ARP reply for ${vip}`, r, {
      'arp.opcode': '2', 'arp.src.hw_mac': MAC.dir, 'arp.src.proto_ipv4': vip, 'arp.dst.hw_mac': MAC.client,
      'arp.dst.proto_ipv4': IP.client, 'eth.dst': MAC.client,
    }, []);
  }
});

t.test('the director\'s own address, VLAN tags, and what is not answered', async (t) => {
  const td = director();
  await td.rules(RULES);
  const own = td.send(buildArp({ srcMac: MAC.client, senderIp: IP.client, targetIp: DIR_IP }));
  t.same(outcome(own), { verdict: 'reply', reason: 'arp-reply', frames: 1 }, 'own address (replay has no kernel to answer)');
  t.equal(arpFields(only(own)).spa, DIR_IP);

  const tagged = td.send(buildArp({ srcMac: MAC.client, vlan: 100, senderIp: IP.client, targetIp: IP.vip }));
  t.same(outcome(tagged), { verdict: 'reply', reason: 'arp-reply', frames: 1 }, 'tagged request');
  const tr = only(tagged);
  t.equal(rd16(tr, 12), 0x8100, 'reply keeps the 802.1Q tag');
  t.equal(rd16(tr, 14) & 0xfff, 100, 'same VLAN');
  t.same(arpFields(tr, 18).spa, IP.vip);
  judge.add('ARP reply, VLAN 100', tr, { 'vlan.id': '100', 'arp.opcode': '2', 'arp.src.proto_ipv4': IP.vip }, []);

  const other = td.send(buildArp({ srcMac: MAC.client, senderIp: IP.client, targetIp: '10.0.0.254' }));
  t.same(outcome(other), { verdict: 'pass', reason: 'arp-other', frames: 0 }, 'another address: not ours');
  const reply = td.send(buildArp({ op: 'reply', srcMac: MAC.client, senderIp: IP.client, targetIp: IP.vip, targetMac: MAC.dir }));
  t.same(outcome(reply), { verdict: 'pass', reason: 'arp-other', frames: 0 }, 'an ARP reply is not answered');

  // After the service is deleted its address is no longer answered.
  await td.ipvsadm('-D', '-t', `${IP.vip}:80`);
  t.same(outcome(td.send(buildArp({ srcMac: MAC.client, senderIp: IP.client, targetIp: IP.vip }))),
    { verdict: 'pass', reason: 'arp-other', frames: 0 }, 'deleted service: VIP released');
});

judge.register(t);
