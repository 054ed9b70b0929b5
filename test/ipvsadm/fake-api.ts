/**
 * An in-memory IpvsApi for testing the ipvsadm CLI layer only: enough of the
 * kernel's answers (EEXIST, ESRCH, ENOENT, ERANGE, newest-first dests) to
 * exercise every message path. The real table is tested elsewhere.
 */
import type { IpvsApi, MarkRule } from '../../src/ctl/api.js';
import {
  CtlError, type ConnEntry, type DestEntry, type DestSpec, type Info, type ServiceEntry, type ServiceKey,
  type ServiceSpec, type StatsEntry, type SyncDaemon, type Timeouts,
} from '../../src/ctl/types.js';

export function zeroStats(): StatsEntry {
  return { conns: 0, inpkts: 0, outpkts: 0, inbytes: 0, outbytes: 0, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
}

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

function sameKey(a: ServiceKey, b: ServiceKey): boolean {
  if (a.fwmark !== 0 || b.fwmark !== 0) return a.fwmark === b.fwmark && a.af === b.af;
  return a.af === b.af && a.protocol === b.protocol && a.addr === b.addr && a.port === b.port;
}

export class FakeApi implements IpvsApi {
  info: Info = { version: 0x010201, connTabSize: 4096, numServices: 0 };
  services: ServiceEntry[] = [];
  conns: ConnEntry[] = [];
  timeouts: Timeouts = { tcp: 900, tcpFin: 120, udp: 300 };
  daemons: SyncDaemon[] = [];
  markRules: MarkRule[] = [];
  /** Every mutating call, in order, for assertions on what the CLI sent. */
  calls: Array<{ op: string; args: unknown[] }> = [];
  /** Make the named method reject with this errno once. */
  failNext: Record<string, string> = {};

  private maybeFail(op: string): void {
    const e = this.failNext[op];
    if (e !== undefined) {
      delete this.failNext[op];
      throw new CtlError(e as never);
    }
  }

  private find(k: ServiceKey): ServiceEntry | undefined {
    return this.services.find((s) => sameKey(s, k));
  }

  async getInfo(): Promise<Info> {
    this.maybeFail('getInfo');
    return { ...this.info, numServices: this.services.length };
  }

  async addService(svc: ServiceSpec): Promise<void> {
    this.calls.push({ op: 'addService', args: [svc] });
    this.maybeFail('addService');
    if (this.find(svc)) throw new CtlError('EEXIST');
    if (!SCHEDULERS.includes(svc.schedName) || (svc.pe !== '' && svc.pe !== 'sip')) throw new CtlError('ENOENT');
    this.services.push({ ...svc, numDests: 0, stats: zeroStats(), dests: [] });
  }

  async editService(svc: ServiceSpec): Promise<void> {
    this.calls.push({ op: 'editService', args: [svc] });
    this.maybeFail('editService');
    const s = this.find(svc);
    if (!s) throw new CtlError('ESRCH');
    if (!SCHEDULERS.includes(svc.schedName)) throw new CtlError('ENOENT');
    Object.assign(s, { schedName: svc.schedName, flags: svc.flags, timeout: svc.timeout, netmask: svc.netmask, pe: svc.pe });
  }

  async delService(svc: ServiceKey): Promise<void> {
    this.calls.push({ op: 'delService', args: [svc] });
    this.maybeFail('delService');
    const i = this.services.findIndex((s) => sameKey(s, svc));
    if (i < 0) throw new CtlError('ESRCH');
    this.services.splice(i, 1);
  }

  async flush(): Promise<void> {
    this.calls.push({ op: 'flush', args: [] });
    this.maybeFail('flush');
    this.services = [];
  }

  private checkDest(dest: DestSpec): void {
    if (dest.lThreshold > dest.uThreshold) throw new CtlError('ERANGE');
  }

  async addDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    this.calls.push({ op: 'addDest', args: [svc, dest] });
    this.maybeFail('addDest');
    const s = this.find(svc);
    if (!s) throw new CtlError('ESRCH');
    this.checkDest(dest);
    if (s.dests.some((d) => d.af === dest.af && d.addr === dest.addr && d.port === dest.port)) throw new CtlError('EEXIST');
    // Kernel order: newest first.
    s.dests.unshift({ ...dest, activeConns: 0, inactConns: 0, persistConns: 0, stats: zeroStats() });
    s.numDests = s.dests.length;
  }

  async editDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    this.calls.push({ op: 'editDest', args: [svc, dest] });
    this.maybeFail('editDest');
    const s = this.find(svc);
    if (!s) throw new CtlError('ESRCH');
    this.checkDest(dest);
    const d = s.dests.find((x) => x.af === dest.af && x.addr === dest.addr && x.port === dest.port);
    if (!d) throw new CtlError('ENOENT');
    Object.assign(d, dest);
  }

  async delDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    this.calls.push({ op: 'delDest', args: [svc, dest] });
    this.maybeFail('delDest');
    const s = this.find(svc);
    if (!s) throw new CtlError('ESRCH');
    const i = s.dests.findIndex((x) => x.af === dest.af && x.addr === dest.addr && x.port === dest.port);
    if (i < 0) throw new CtlError('ENOENT');
    s.dests.splice(i, 1);
  }

  async zero(svc: ServiceKey | null): Promise<void> {
    this.calls.push({ op: 'zero', args: [svc] });
    this.maybeFail('zero');
    const list = svc === null ? this.services : [this.find(svc)];
    if (list[0] === undefined && svc !== null) throw new CtlError('ESRCH');
    for (const s of list) {
      s!.stats = zeroStats();
      for (const d of s!.dests) d.stats = zeroStats();
    }
  }

  async getServices(): Promise<ServiceEntry[]> {
    this.maybeFail('getServices');
    return structuredClone(this.services);
  }

  async getService(svc: ServiceKey): Promise<ServiceEntry> {
    this.maybeFail('getService');
    const s = this.find(svc);
    if (!s) throw new CtlError('ESRCH');
    return structuredClone(s);
  }

  async getConnections(): Promise<ConnEntry[]> {
    this.maybeFail('getConnections');
    return structuredClone(this.conns);
  }

  async setTimeouts(t: Timeouts): Promise<void> {
    this.calls.push({ op: 'setTimeouts', args: [t] });
    this.maybeFail('setTimeouts');
    if (t.tcp) this.timeouts.tcp = t.tcp;
    if (t.tcpFin) this.timeouts.tcpFin = t.tcpFin;
    if (t.udp) this.timeouts.udp = t.udp;
  }

  async getTimeouts(): Promise<Timeouts> {
    this.maybeFail('getTimeouts');
    return { ...this.timeouts };
  }

  async startDaemon(d: SyncDaemon): Promise<void> {
    this.calls.push({ op: 'startDaemon', args: [d] });
    this.maybeFail('startDaemon');
    if (this.daemons.some((x) => x.state === d.state)) throw new CtlError('EEXIST');
    this.daemons.push({ ...d });
  }

  async stopDaemon(state: 'master' | 'backup', syncId: number): Promise<void> {
    this.calls.push({ op: 'stopDaemon', args: [state, syncId] });
    this.maybeFail('stopDaemon');
    const i = this.daemons.findIndex((x) => x.state === state);
    if (i < 0) throw new CtlError('ESRCH');
    this.daemons.splice(i, 1);
  }

  async getDaemons(): Promise<SyncDaemon[]> {
    this.maybeFail('getDaemons');
    return structuredClone(this.daemons);
  }

  async addMarkRule(r: MarkRule): Promise<void> {
    this.calls.push({ op: 'addMarkRule', args: [r] });
    this.maybeFail('addMarkRule');
    if (this.markRules.some((x) => JSON.stringify(x) === JSON.stringify(r))) throw new CtlError('EEXIST');
    this.markRules.push({ ...r });
  }

  async delMarkRule(r: MarkRule): Promise<void> {
    this.calls.push({ op: 'delMarkRule', args: [r] });
    this.maybeFail('delMarkRule');
    const i = this.markRules.findIndex((x) => JSON.stringify(x) === JSON.stringify(r));
    if (i < 0) throw new CtlError('ENOENT');
    this.markRules.splice(i, 1);
  }

  async getMarkRules(): Promise<MarkRule[]> {
    this.maybeFail('getMarkRules');
    return structuredClone(this.markRules);
  }

  /** Test helper: a dest of a service, by address text. */
  dest(svcIndex: number, addr: string): DestEntry {
    const d = this.services[svcIndex]!.dests.find((x) => x.addr === addr);
    if (!d) throw new Error(`no dest ${addr}`);
    return d;
  }
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}
