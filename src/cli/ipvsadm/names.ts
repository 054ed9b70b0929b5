/**
 * Address and port text as ipvsadm prints it (addrport_to_anyname), with names
 * looked up synchronously from a NameLookup so the formatters stay pure. A
 * RecordingLookup lets a caller render once to learn which names are needed,
 * resolve them all through a Resolver, and render again.
 */
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../../svc/types.js';
import { canonicalAddr } from './libc.js';
import type { Resolver, ServProto } from './resolver.js';

export interface NameLookup {
  /** gethostbyaddr() answer for canonical address text, or null. */
  host(af: 4 | 6, addr: string): string | null;
  /** getservbyport() answer for the protocol (6/17/132), or null. Other protocols never have names. */
  service(port: number, proto: number): string | null;
}

export function servProto(proto: number): ServProto | null {
  if (proto === PROTO_TCP) return 'tcp';
  if (proto === PROTO_UDP) return 'udp';
  if (proto === PROTO_SCTP) return 'sctp';
  return null;
}

/**
 * addrport_to_anyname(): `a.b.c.d:port` or `[v6]:port`; without -n (names given)
 * the host and port names replace the numbers where known. The C buffer holds
 * 59 characters.
 */
export function addrPortText(af: 4 | 6, addr: string, port: number, proto: number, names: NameLookup | null): string {
  const a = canonicalAddr(addr);
  const open = af === 4 ? '' : '[';
  const close = af === 4 ? '' : ']';
  let text: string;
  if (names === null) {
    text = `${open}${a}${close}:${port}`;
  } else {
    const h = names.host(af, a) ?? a;
    const p = names.service(port, proto) ?? String(port);
    text = `${open}${h}${close}:${p}`;
  }
  return text.length > 59 ? text.slice(0, 59) : text;
}

/** Records every lookup a render asks for, then resolves them in one go. */
export class RecordingLookup implements NameLookup {
  private readonly hosts = new Map<string, string | null>();
  private readonly ports = new Map<string, string | null>();

  host(af: 4 | 6, addr: string): string | null {
    const k = `${af}|${addr}`;
    if (!this.hosts.has(k)) this.hosts.set(k, null);
    return this.hosts.get(k) ?? null;
  }

  service(port: number, proto: number): string | null {
    if (servProto(proto) === null) return null;
    const k = `${port}|${proto}`;
    if (!this.ports.has(k)) this.ports.set(k, null);
    return this.ports.get(k) ?? null;
  }

  async resolve(resolver: Resolver): Promise<void> {
    await Promise.all([
      ...[...this.hosts.keys()].map(async (k) => {
        const bar = k.indexOf('|');
        this.hosts.set(k, await resolver.addrToHost(Number(k.slice(0, bar)) as 4 | 6, k.slice(bar + 1)));
      }),
      ...[...this.ports.keys()].map(async (k) => {
        const [port, proto] = k.split('|').map(Number) as [number, number];
        this.ports.set(k, await resolver.portToService(port, servProto(proto)!));
      }),
    ]);
  }
}

/** Renders with names: once to collect the lookups, then with the answers. Numeric when `numeric`. */
export async function renderWithNames(
  numeric: boolean, resolver: Resolver, render: (names: NameLookup | null) => string,
): Promise<string> {
  if (numeric) return render(null);
  const rec = new RecordingLookup();
  render(rec);
  await rec.resolve(resolver);
  return render(rec);
}
