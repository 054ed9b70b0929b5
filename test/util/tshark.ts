/**
 * tshark as an independent judge of what ulvs puts on the wire: writes frames to a
 * pcap, dissects them with checksum validation on, and reports every frame that has
 * a warning/error expert item (bad checksum, malformed) plus requested fields.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter } from '../../src/io/pcap-file.js';

export const TSHARK_PREFS = [
  '-o', 'ip.check_checksum:TRUE',
  '-o', 'tcp.check_checksum:TRUE',
  '-o', 'udp.check_checksum:TRUE',
  '-o', 'sctp.checksum:crc-32c',
];

export function haveTshark(): boolean {
  try {
    execFileSync('tshark', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function writePcap(path: string, frames: Uint8Array[]): void {
  const w = new PcapWriter();
  frames.forEach((f, i) => w.write(1_700_000_000e6 + i * 1000, f));
  w.save(path);
}

function tshark(args: string[]): string {
  return execFileSync('tshark', [...TSHARK_PREFS, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Problems per frame number: expert messages of severity warning or higher (bad checksums, malformed). */
export function tsharkProblemsInFile(path: string): Map<number, string[]> {
  const out = tshark(['-r', path, '-Y', '_ws.expert.severity >= "Warning" || _ws.malformed', '-T', 'fields',
    '-e', 'frame.number', '-e', '_ws.expert.message', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=;']);
  const m = new Map<number, string[]>();
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const [n, msgs] = line.split('|');
    m.set(Number(n), (msgs ?? 'malformed').split(';'));
  }
  return m;
}

/** Field values per frame, e.g. fields(['ip.src','tcp.dstport']). */
export function tsharkFieldsInFile(path: string, fields: string[]): string[][] {
  const args = ['-r', path, '-T', 'fields', '-E', 'separator=|', '-E', 'occurrence=a', '-E', 'aggregator=,'];
  for (const f of fields) args.push('-e', f);
  return tshark(args).split('\n').filter((l) => l.length > 0).map((l) => l.split('|'));
}

/** Convenience: write frames to a temp pcap and judge them. */
export function judge(frames: Uint8Array[], fields: string[] = []): { problems: Map<number, string[]>; rows: string[][] } {
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-tshark-'));
  try {
    const p = join(dir, 'f.pcap');
    writePcap(p, frames);
    return { problems: tsharkProblemsInFile(p), rows: fields.length ? tsharkFieldsInFile(p, fields) : [] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
