/**
 * Test helpers for the transmitters: frames placed behind 128 bytes of headroom (as io/batch.ts
 * slots have), parsing into a fresh PacketInfo, and an independent checksum / well-formedness
 * check of produced frames with tshark (skipped when tshark is not installed).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter } from '../../src/io/pcap-file.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { parseIp } from '../../src/util/ip.js';
import { parseMac } from '../../src/util/mac.js';

export const HEADROOM = 128;

export interface Placed {
  buf: Uint8Array;
  off: number;
  len: number;
}

/** Copies `frame` into a new buffer behind HEADROOM bytes (filled with 0xee to catch stray reads). */
export function place(frame: Uint8Array, tail = 64): Placed {
  const buf = new Uint8Array(HEADROOM + frame.length + tail).fill(0xee);
  buf.set(frame, HEADROOM);
  return { buf, off: HEADROOM, len: frame.length };
}

/** Parses buf[off, off+len); throws unless the parser reports PARSE_OK. */
export function parse(buf: Uint8Array, off: number, len: number): PacketInfo {
  const info = new PacketInfo();
  const r = parseFrame(buf, off, len, info);
  if (r !== PARSE_OK) throw new Error(`parse failed: ${r}`);
  return info;
}

export function placeParsed(frame: Uint8Array): Placed & { info: PacketInfo } {
  const p = place(frame);
  return { ...p, info: parse(p.buf, p.off, p.len) };
}

/** The bytes of a placed frame after rewriting (a copy). */
export function frameOf(buf: Uint8Array, off: number, len: number): Uint8Array {
  return buf.slice(off, off + len);
}

/** Address text → Uint32Array(4) words as PacketInfo holds them. */
export function addr(s: string): Uint32Array {
  const a = parseIp(s);
  if (a === null) throw new Error(`bad address ${s}`);
  return Uint32Array.of(a.w0, a.w1, a.w2, a.w3);
}

export function mac(s: string): Uint8Array {
  const m = parseMac(s);
  if (m === null) throw new Error(`bad mac ${s}`);
  return m;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export const hasTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

/** Checksum fields tshark reports; status 0 = bad, 1 = good, 2 = unverified, 4 = illegal (zero UDP on IPv6). */
const STATUS_FIELDS = [
  'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'sctp.checksum.status',
  'icmp.checksum.status', 'icmpv6.checksum.status', 'gre.checksum.status',
] as const;

export interface TsharkFrame {
  /** Field name → list of values (one per occurrence, e.g. outer and inner IP). */
  status: Record<string, string[]>;
  malformed: boolean;
  expert: string;
  protocols: string;
}

/**
 * Writes the frames to a pcap and lets tshark dissect them with checksum validation on.
 * `ignoreV6ZeroUdp`: accept UDP checksum 0 over IPv6 (tunnels, RFC 6935). `defragment`: let
 * tshark reassemble IP fragments (then the last fragment's row shows the reassembled packet).
 */
export function tshark(frames: Uint8Array[], ignoreV6ZeroUdp = false, defragment = false): TsharkFrame[] {
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-xmit-'));
  const file = join(dir, 'frames.pcap');
  try {
    const w = new PcapWriter();
    frames.forEach((f, i) => w.write(1_000_000 + i, f));
    w.save(file);
    const args = [
      '-r', file, '-n',
      '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
      '-o', 'sctp.checksum:CRC 32c', '-o', `ip.defragment:${defragment ? 'TRUE' : 'FALSE'}`, '-o', `ipv6.defragment:${defragment ? 'TRUE' : 'FALSE'}`,
      '-o', `udp.ignore_ipv6_zero_checksum:${ignoreV6ZeroUdp ? 'TRUE' : 'FALSE'}`,
      '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|',
      '-e', 'frame.number', '-e', 'frame.protocols', '-e', '_ws.malformed', '-e', '_ws.expert.message',
      ...STATUS_FIELDS.flatMap((f) => ['-e', f]),
    ];
    const r = spawnSync('tshark', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
    const rows = r.stdout.split('\n').filter((l) => l.length > 0);
    return rows.map((line) => {
      const cols = line.split('\t');
      const status: Record<string, string[]> = {};
      STATUS_FIELDS.forEach((f, i) => {
        const v = cols[4 + i] ?? '';
        status[f.split('.')[0]!] = v === '' ? [] : v.split('|');
      });
      return { status, malformed: (cols[2] ?? '') !== '', expert: cols[3] ?? '', protocols: cols[1] ?? '' };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True when no checksum tshark verified is bad (0) or illegal (4) and nothing is malformed. */
export function tsharkClean(f: TsharkFrame): boolean {
  if (f.malformed) return false;
  for (const k of Object.keys(f.status)) for (const v of f.status[k]!) if (v === '0' || v === '4') return false;
  return true;
}
