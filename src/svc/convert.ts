/**
 * Control-protocol records (addresses as text) → the table's arguments
 * (addresses as IpAddr), with what libipvs/netlink would refuse: a family
 * other than 4/6 is EAFNOSUPPORT, an address that is not valid text for its
 * family is EINVAL. Numeric ranges are checked by the table itself.
 */
import type { DestSpec, ServiceKey, ServiceSpec } from '../ctl/types.js';
import { CtlError } from '../ctl/types.js';
import { IP4_ANY, IP6_ANY, ip4, ip6, parseIp4, parseIp6, type IpAddr } from '../util/ip.js';
import type { DestConfig, DestKey, SvcConfig, SvcKey } from './table.js';

export function checkAf(af: unknown): 4 | 6 {
  if (af !== 4 && af !== 6) throw new CtlError('EAFNOSUPPORT', `address family ${String(af)} not supported`);
  return af;
}

/** Text → IpAddr of the given family (inet_pton); EINVAL when it does not parse as that family. */
export function parseAddrOf(af: 4 | 6, text: unknown): IpAddr {
  if (typeof text !== 'string') throw new CtlError('EINVAL', 'address missing');
  if (af === 4) {
    const v = parseIp4(text);
    if (v === null) throw new CtlError('EINVAL', `bad IPv4 address ${text}`);
    return ip4(v);
  }
  const w = parseIp6(text);
  if (w === null) throw new CtlError('EINVAL', `bad IPv6 address ${text}`);
  return ip6(w[0], w[1], w[2], w[3]);
}

/** A fwmark key identifies the service by (af, mark) alone; address, protocol and port are ignored. */
export function svcKeyFromCtl(k: ServiceKey): SvcKey {
  const af = checkAf(k.af);
  const fwmark = k.fwmark ?? 0;
  if (fwmark !== 0) return { af, protocol: 0, addr: af === 4 ? IP4_ANY : IP6_ANY, port: 0, fwmark };
  return { af, protocol: k.protocol, addr: parseAddrOf(af, k.addr), port: k.port, fwmark: 0 };
}

/** IPv4: dotted mask (default 255.255.255.255); IPv6: decimal prefix length (default 128). */
export function netmaskFromText(af: 4 | 6, text: string | undefined): number {
  if (text === undefined || text === '') return af === 4 ? 0xffffffff : 128;
  if (af === 4) {
    const v = parseIp4(text);
    if (v === null) throw new CtlError('EINVAL', `bad netmask ${text}`);
    return v;
  }
  if (!/^[0-9]{1,10}$/.test(text)) throw new CtlError('EINVAL', `bad prefix length ${text}`);
  return Number(text);
}

export function svcConfigFromSpec(s: ServiceSpec): SvcConfig {
  const key = svcKeyFromCtl(s);
  return {
    ...key,
    schedName: s.schedName,
    flags: s.flags,
    timeout: s.timeout,
    netmask: netmaskFromText(key.af, s.netmask),
    pe: s.pe === '' || s.pe === undefined ? null : s.pe,
  };
}

export function destKeyFromSpec(d: Pick<DestSpec, 'af' | 'addr' | 'port'>): DestKey {
  const af = checkAf(d.af);
  return { af, addr: parseAddrOf(af, d.addr), port: d.port };
}

export function destConfigFromSpec(d: DestSpec): DestConfig {
  return {
    ...destKeyFromSpec(d),
    fwdMethod: d.fwdMethod,
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    tunType: d.tunType ?? 0,
    tunPort: d.tunPort ?? 0,
    tunFlags: d.tunFlags ?? 0,
  };
}
