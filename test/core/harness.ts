/**
 * A director in memory for engine tests: rules applied through the real ipvsadm
 * restore path, frames in, frames out (forwarded and generated), with the
 * verdict and reason of each input frame.
 */
import { Director } from '../../src/core/director.js';
import { FrameBatch, TxQueue, V_FORWARD, V_REPLY, VERDICT_NAMES } from '../../src/io/batch.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { parseMac } from '../../src/util/mac.js';
import { parseIp, parseIp4 } from '../../src/util/ip.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';
import { reasonName } from '../../src/core/reasons.js';

export const DIR_MAC = '02:00:00:00:00:01';
export const DIR_IP = '192.0.2.1';
export const CLIENT_MAC = '02:00:00:00:00:c1';
export const GW_MAC = '02:00:00:00:00:99';

export interface Step {
  verdict: string;
  reason: string;
  out: Uint8Array[];
}

export class TestDirector {
  readonly d: Director;
  readonly neigh = new StaticNeighbours();
  private readonly batch = new FrameBatch(1);
  private readonly tx = new TxQueue(16);
  now = 1000;

  constructor(opts: { neigh?: Record<string, string>; gw?: string; capacity?: number; mtu?: number } = {}) {
    for (const [ip, mac] of Object.entries(opts.neigh ?? {})) this.neigh.set(parseIp(ip)!, parseMac(mac)!);
    if (opts.gw) this.neigh.setGateway(parseMac(opts.gw)!);
    this.d = new Director({
      mac: parseMac(DIR_MAC)!, ip4: parseIp4(DIR_IP)!, neigh: this.neigh, capacity: opts.capacity ?? 4096,
      mtu: opts.mtu, arpForOwnIp: true,
    });
    this.d.setClock(this.now);
  }

  /** Applies ipvsadm commands (one per line, save-file syntax); throws with the error text. */
  async rules(text: string): Promise<void> {
    const err: string[] = [];
    const rc = await runIpvsadm('ipvsadm', ['-R'], {
      stdout: () => {}, stderr: (s) => err.push(s), readStdin: async () => text,
    }, this.d.api, numericResolver);
    if (rc !== 0 || err.length) throw new Error(`rules failed (${rc}): ${err.join('')}`);
  }

  async ipvsadm(...args: string[]): Promise<{ rc: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const rc = await runIpvsadm('ipvsadm', args, {
      stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => '',
    }, this.d.api, numericResolver);
    return { rc, out, err };
  }

  advance(seconds: number): void {
    this.now += seconds;
    this.d.tick(this.now);
  }

  send(frame: Uint8Array, flags = 0): Step {
    this.tx.clear();
    this.batch.put(0, frame, flags);
    this.batch.count = 1;
    this.d.engine.process(this.batch, this.tx);
    const v = this.batch.verdict[0]!;
    const out: Uint8Array[] = [];
    if (v === V_FORWARD || v === V_REPLY) out.push(this.batch.frame(0));
    for (let k = 0; k < this.tx.count; k++) out.push(this.tx.frame(k));
    return { verdict: VERDICT_NAMES[v]!, reason: reasonName(this.batch.reason[0]!), out };
  }
}
