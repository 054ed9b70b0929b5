/**
 * Name resolution as ipvsadm does it, behind an injectable interface:
 * gethostbyname (IPv4 only, first address), gethostbyaddr, getservbyname and
 * getservbyport for "tcp"/"udp"/"sctp". The CLI modules only see `Resolver`;
 * `systemResolver` is the real one (node:dns and /etc/services),
 * `staticResolver` serves tests and offline tools, `numericResolver` knows no names.
 */
import { promises as dns } from 'node:dns';
import { readFileSync } from 'node:fs';

export type ServProto = 'tcp' | 'udp' | 'sctp';

export interface Resolver {
  /** gethostbyname(): the first IPv4 address of a host name (host-order uint32), or null. */
  hostToAddr4(name: string): Promise<number | null>;
  /** gethostbyaddr(): the official host name for address text (inet_ntop form), or null. */
  addrToHost(af: 4 | 6, addr: string): Promise<string | null>;
  /** getservbyname(name, proto): port number, or null. */
  serviceToPort(name: string, proto: ServProto): Promise<number | null>;
  /** getservbyport(port, proto): the official service name, or null. */
  portToService(port: number, proto: ServProto): Promise<string | null>;
}

/** Resolves nothing: every name lookup fails, every address and port stays numeric. */
export const numericResolver: Resolver = {
  hostToAddr4: async () => null,
  addrToHost: async () => null,
  serviceToPort: async () => null,
  portToService: async () => null,
};

export interface ServiceEntryLine {
  name: string;
  aliases: string[];
  port: number;
  proto: string;
}

/** Parses services(5) text: `name port/proto [aliases...] [# comment]`, in file order. */
export function parseServices(text: string): ServiceEntryLine[] {
  const out: ServiceEntryLine[] = [];
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const line = hash >= 0 ? raw.slice(0, hash) : raw;
    const f = line.split(/[ \t\r]+/).filter((x) => x.length > 0);
    if (f.length < 2) continue;
    const m = /^([0-9]+)\/([A-Za-z0-9]+)$/.exec(f[1]!);
    if (m === null) continue;
    const port = Number(m[1]);
    if (port > 65535) continue;
    out.push({ name: f[0]!, aliases: f.slice(2), port, proto: m[2]! });
  }
  return out;
}

/** getservbyname/getservbyport over parsed services(5) lines: the first matching line wins. */
export class ServicesTable {
  constructor(private readonly entries: readonly ServiceEntryLine[]) {}

  byName(name: string, proto: ServProto): number | null {
    for (const e of this.entries) {
      if (e.proto === proto && (e.name === name || e.aliases.includes(name))) return e.port;
    }
    return null;
  }

  byPort(port: number, proto: ServProto): string | null {
    for (const e of this.entries) if (e.proto === proto && e.port === port) return e.name;
    return null;
  }
}

export interface StaticResolverConfig {
  /** name → IPv4 address text (what gethostbyname would answer). */
  hosts?: Record<string, string>;
  /** address text (inet_ntop form) → host name (what gethostbyaddr would answer). */
  reverse?: Record<string, string>;
  /** services(5) text. */
  services?: string;
}

/** A resolver over fixed tables; no I/O. */
export function staticResolver(cfg: StaticResolverConfig): Resolver {
  const services = new ServicesTable(parseServices(cfg.services ?? ''));
  const hosts = new Map(Object.entries(cfg.hosts ?? {}));
  const reverse = new Map(Object.entries(cfg.reverse ?? {}));
  return {
    hostToAddr4: async (name) => {
      const a = hosts.get(name);
      if (a === undefined) return null;
      const p = a.split('.').map(Number);
      return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0);
    },
    addrToHost: async (_af, addr) => reverse.get(addr) ?? null,
    serviceToPort: async (name, proto) => services.byName(name, proto),
    portToService: async (port, proto) => services.byPort(port, proto),
  };
}

/** The system's resolver: getaddrinfo/getnameinfo through node:dns, services from /etc/services. */
export function systemResolver(servicesPath = '/etc/services'): Resolver {
  let table: ServicesTable | null = null;
  const services = (): ServicesTable => {
    if (table === null) {
      let text = '';
      try {
        text = readFileSync(servicesPath, 'utf8');
      } catch {
        text = '';
      }
      table = new ServicesTable(parseServices(text));
    }
    return table;
  };
  return {
    hostToAddr4: async (name) => {
      if (name.length === 0) return null;
      try {
        const r = await dns.lookup(name, { family: 4 });
        const p = r.address.split('.').map(Number);
        if (p.length !== 4) return null;
        return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0);
      } catch {
        return null;
      }
    },
    addrToHost: async (_af, addr) => {
      try {
        const r = await dns.lookupService(addr, 0);
        // getnameinfo falls back to the numeric form; gethostbyaddr would have failed.
        return r.hostname === addr || r.hostname.length === 0 ? null : r.hostname;
      } catch {
        return null;
      }
    },
    serviceToPort: async (name, proto) => services().byName(name, proto),
    portToService: async (port, proto) => services().byPort(port, proto),
  };
}
