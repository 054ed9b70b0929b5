/**
 * Running the real `ulvs replay` CLI (node bin/ulvs.js replay …) on capture files written by the
 * test: a scratch directory per test, pcap and pcapng writers with chosen timestamps, and the
 * trace file parsed back.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapWriter } from '../../src/io/pcap-file.js';

/** The repository root (this file runs as dist/test/replay/helpers.js). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ULVS = join(ROOT, 'bin', 'ulvs.js');

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The environment for the CLI: the test runner's loader hooks (NODE_OPTIONS, tap's own variables) stay out. */
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('TAP') || k.startsWith('_TAPJS')) continue;
    env[k] = v;
  }
  return env;
}

/** Runs `ulvs replay ARGS` to completion. */
export function replay(args: string[]): Run {
  const r = spawnSync(process.execPath, [ULVS, 'replay', ...args], { encoding: 'utf8', timeout: 60_000, env: cliEnv() });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function replayAsync(args: string[]): Promise<Run> {
  return new Promise<Run>((resolve) => {
    execFile(process.execPath, [ULVS, 'replay', ...args], { encoding: 'utf8', timeout: 60_000, env: cliEnv() }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
      resolve({ status: code, stdout, stderr });
    });
  });
}

/** Runs several independent `ulvs replay` invocations, a few at a time; results in order. */
export async function replayAll(argLists: string[][], parallel = 3): Promise<Run[]> {
  const out: Run[] = new Array(argLists.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < argLists.length) {
      const k = next++;
      out[k] = await replayAsync(argLists[k]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, argLists.length) }, worker));
  return out;
}

/** A scratch directory, removed by `done()` (register it with t.teardown). */
export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'ulvs-replay-'));
  path(name: string): string {
    return join(this.dir, name);
  }
  write(name: string, data: string | Uint8Array): string {
    const p = this.path(name);
    writeFileSync(p, data);
    return p;
  }
  read(name: string): string {
    return readFileSync(this.path(name), 'utf8');
  }
  done(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface TimedFrame {
  /** Seconds since the epoch (fractions allowed). */
  ts: number;
  frame: Uint8Array;
}

/** Classic pcap (little-endian, microseconds) bytes. */
export function pcapBytes(frames: TimedFrame[]): Uint8Array {
  const w = new PcapWriter();
  for (const f of frames) w.write(Math.round(f.ts * 1e6), f.frame);
  return w.bytes();
}

/**
 * pcapng bytes: section header, one Ethernet interface description with if_tsresol = 10^-9
 * (nanoseconds, unlike the classic writer), one enhanced packet block per frame.
 */
export function pcapngBytes(frames: TimedFrame[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const block = (type: number, body: Uint8Array): void => {
    const len = 12 + ((body.length + 3) & ~3);
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, type, true);
    dv.setUint32(4, len, true);
    b.set(body, 8);
    dv.setUint32(len - 4, len, true);
    blocks.push(b);
  };
  const shb = new Uint8Array(16);
  const sdv = new DataView(shb.buffer);
  sdv.setUint32(0, 0x1a2b3c4d, true); // byte-order magic
  sdv.setUint16(4, 1, true); // version 1.0
  sdv.setUint16(6, 0, true);
  sdv.setInt32(8, -1, true); // section length unknown
  sdv.setInt32(12, -1, true);
  block(0x0a0d0d0a, shb);
  const idb = new Uint8Array(8 + 8 + 4);
  const idv = new DataView(idb.buffer);
  idv.setUint16(0, 1, true); // LINKTYPE_ETHERNET
  idv.setUint32(4, 262144, true); // snaplen
  idv.setUint16(8, 9, true); // if_tsresol
  idv.setUint16(10, 1, true);
  idb[12] = 9; // 10^-9
  idv.setUint16(16, 0, true); // opt_endofopt
  block(1, idb);
  for (const f of frames) {
    const body = new Uint8Array(20 + f.frame.length);
    const dv = new DataView(body.buffer);
    const ns = BigInt(Math.round(f.ts * 1e6)) * 1000n;
    dv.setUint32(0, 0, true); // interface 0
    dv.setUint32(4, Number(ns >> 32n), true);
    dv.setUint32(8, Number(ns & 0xffffffffn), true);
    dv.setUint32(12, f.frame.length, true);
    dv.setUint32(16, f.frame.length, true);
    body.set(f.frame, 20);
    block(6, body);
  }
  let n = 0;
  for (const b of blocks) n += b.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const b of blocks) { out.set(b, o); o += b.length; }
  return out;
}

export interface TraceLine {
  frame: number;
  verdict: string;
  reason: string;
  dest: string | null;
  sched: string | null;
  new: boolean;
}

/** Parses a --trace file (one JSON object per line). */
export function readTrace(path: string): TraceLine[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as TraceLine);
}

/** True when the text looks like a JavaScript stack trace. */
export function hasStack(s: string): boolean {
  return /\n\s+at .+:\d+:\d+\)?/.test(s) || /^\w*Error: /m.test(s);
}
