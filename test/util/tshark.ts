/**
 * tshark as an independent judge of what ulvs puts on the wire: writes frames to a
 * pcap, dissects them with checksum validation on, and reports every frame that has
 * a warning/error expert item (bad checksum, malformed) plus requested fields.
 * `dissect`/`dissectFile` do it all in one tshark run per batch (fields, checksum
 * verdicts of every occurrence — outer, quoted, encapsulated — and problems);
 * `tsharkTestOptions`/`tsharkMissing` make a test skip without tshark, or fail under CI.
 * No GRE checksum preference exists in tshark 4.0: its GRE dissector always verifies.
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

let tsharkPresent: boolean | undefined;

export function haveTshark(): boolean {
  if (tsharkPresent === undefined) {
    try {
      execFileSync('tshark', ['-v'], { stdio: 'ignore' });
      tsharkPresent = true;
    } catch {
      tsharkPresent = false;
    }
  }
  return tsharkPresent;
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

// ---------------------------------------------------------------------------------------------
// One tshark run per batch of frames: fields, checksum verdicts and expert problems together.

/** Checksum verdict fields; values 0 bad, 1 good, 2 unverified, 3 not present, 4 illegal. */
export const CHECKSUM_STATUS_FIELDS = [
  'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'sctp.checksum.status',
  'icmp.checksum.status', 'icmpv6.checksum.status', 'gre.checksum.status',
] as const;

/** Expert severities (epan/proto.h PI_*): warning and error are problems. */
const PI_WARN = 0x00600000;

/** Extra preferences for `dissect`: no TCP sequence analysis (unrelated frames share a file). */
const DISSECT_PREFS = ['-o', 'tcp.analyze_sequence_numbers:FALSE', '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE'];

export interface DissectedFrame {
  /** 1-based frame number. */
  n: number;
  /** All occurrences of a requested field (outer first, e.g. outer and quoted IP). */
  all(field: string): string[];
  /** The first occurrence ('' when absent). */
  one(field: string): string;
  /** Expert messages of severity warning or higher, plus 'malformed'. */
  problems: string[];
  /** Checksum verdicts per protocol ('ip', 'tcp', ...), one per occurrence. */
  checksums: Record<string, string[]>;
  /** Dissected protocol stack, e.g. 'eth:ethertype:ip:tcp'. */
  protocols: string;
}

const SEP = '\u0001';

/**
 * Dissects `frames` in one tshark run with checksum validation on (TSHARK_PREFS) and returns,
 * per frame, the requested fields, the checksum verdicts and the problems. `extra` adds tshark
 * arguments (e.g. `-d udp.port==6080,...`). Throws when tshark fails.
 */
export function dissect(frames: Uint8Array[], fields: string[] = [], extra: string[] = []): DissectedFrame[] {
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-tshark-'));
  try {
    const p = join(dir, 'f.pcap');
    writePcap(p, frames);
    return dissectFile(p, fields, extra);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `dissect` for a capture file on disk (e.g. the OUT.pcap of `ulvs replay`). */
export function dissectFile(path: string, fields: string[] = [], extra: string[] = []): DissectedFrame[] {
  const fixed = ['frame.number', 'frame.protocols', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message', ...CHECKSUM_STATUS_FIELDS];
  const all = [...fixed, ...fields];
  const args = [...TSHARK_PREFS, ...DISSECT_PREFS, ...extra, '-n', '-r', path, '-T', 'fields',
    '-E', 'separator=/t', '-E', 'occurrence=a', '-E', `aggregator=${SEP}`];
  for (const f of all) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const rows = out.split('\n').filter((l) => l.length > 0);
  return rows.map((line) => {
    const cols = line.split('\t');
    const col = (i: number): string[] => (cols[i] ?? '') === '' ? [] : cols[i]!.split(SEP);
    const byName = new Map<string, string[]>();
    all.forEach((f, i) => byName.set(f, col(i)));
    const sev = col(3);
    const msg = col(4);
    const problems: string[] = [];
    sev.forEach((s, i) => { if (Number(s) >= PI_WARN) problems.push(msg[i] ?? `severity ${s}`); });
    if (col(2).length > 0) problems.push('malformed');
    const checksums: Record<string, string[]> = {};
    for (const f of CHECKSUM_STATUS_FIELDS) {
      const v = byName.get(f)!;
      if (v.length) checksums[f.split('.')[0]!] = v;
    }
    return {
      n: Number(cols[0]),
      all: (f: string) => byName.get(f) ?? [],
      one: (f: string) => (byName.get(f) ?? [])[0] ?? '',
      problems,
      checksums,
      protocols: cols[1] ?? '',
    };
  });
}

/** Checksums tshark found bad (0) or illegal (4), as 'proto#occurrence' strings; [] when all are fine. */
export function badChecksums(f: DissectedFrame): string[] {
  const bad: string[] = [];
  for (const [proto, list] of Object.entries(f.checksums)) {
    list.forEach((v, i) => { if (v === '0' || v === '4') bad.push(`${proto}#${i}`); });
  }
  return bad;
}

/**
 * Options for a tap test that needs tshark: skipped (with the reason) when tshark is missing,
 * except under CI=true, where the test runs and `tsharkMissing` fails it.
 */
export function tsharkTestOptions(): { skip: string | false } {
  return { skip: !haveTshark() && process.env.CI !== 'true' ? 'tshark is not installed' : false };
}

/** Inside a test declared with tsharkTestOptions(): fails it and returns true when tshark is missing. */
export function tsharkMissing(t: { fail(msg: string): unknown }): boolean {
  if (haveTshark()) return false;
  t.fail('tshark is not installed (required under CI)');
  return true;
}
