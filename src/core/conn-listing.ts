/**
 * The connection listing (/proc/net/ip_vs_conn, read by `ipvsadm -Lc`): one
 * ConnEntry per live entry, templates included, in table order. Control-plane
 * code: strings and objects are fine here.
 */
import type { ConnTable } from '../conn/table.js';
import { ADDR_C, ADDR_D, ADDR_V } from '../conn/table.js';
import { CONN_F_TEMPLATE } from '../conn/flags.js';
import { protoName } from '../conn/names.js';
import type { ConnEntry } from '../ctl/types.js';
import { formatIp4, formatIp6 } from '../util/ip.js';

export function listConnections(conns: ConnTable, now: number): ConnEntry[] {
  const out: ConnEntry[] = [];
  const w = new Uint32Array(4);
  const text = (af: number, id: number, which: number): string => {
    conns.getAddr(id, which, w);
    return af === 6 ? formatIp6(w[0]!, w[1]!, w[2]!, w[3]!) : formatIp4(w[0]!);
  };
  conns.forEach((id) => {
    const af = conns.af[id] === 6 ? 6 : 4;
    const daf = conns.daf[id] === 6 ? 6 : 4;
    const isTemplate = (conns.flags[id]! & CONN_F_TEMPLATE) !== 0;
    const proto = conns.proto[id]!;
    // fwmark templates carry the mark in vaddr word 0 and print it as an IPv4-looking address.
    const vaddr = isTemplate && proto === 0 && af === 4 ? formatIp4(conns.vaddr[id]!) : text(af, id, ADDR_V);
    out.push({
      protoName: protoName(proto),
      af,
      caddr: text(af, id, ADDR_C),
      cport: conns.cport[id]!,
      vaddr,
      vport: conns.vport[id]!,
      daddr: text(daf, id, ADDR_D),
      dport: conns.dport[id]!,
      state: conns.stateName(id),
      expires: Math.max(0, Math.floor(conns.remaining(id, now))),
      peName: '',
      peData: '',
    });
  });
  return out;
}
