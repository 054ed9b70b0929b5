import t from 'tap';
import { isDeepStrictEqual } from 'node:util';
import { PacketInfo, PARSE_OK, PARSE_REASON_NAMES } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { malformedFrames, validFrames } from './corpus.js';

/** Offsets the parser reports must stay inside the frame, so users can read them without checks. */
function boundsProblem(info: PacketInfo, frameLen: number): string | null {
  const end = info.frameOff + info.frameLen;
  if (info.frameLen !== frameLen) return 'frameLen';
  if (info.af === 0) return null;
  const ipEnd = info.l3Off + info.ipLen;
  if (ipEnd > end) return 'ip end past frame';
  if (info.l3HdrLen > info.ipLen) return 'l3 header past ip end';
  if (info.l4Off >= 0 && info.l4Off + info.l4Len !== ipEnd) return 'l4 range';
  if (info.l4Off >= 0 && info.isLaterFrag) return 'l4 on later fragment';
  if (info.innerL3Off >= 0) {
    if (info.innerL3Off + info.innerL3HdrLen > ipEnd) return 'inner header past ip end';
    if (info.innerL4Off >= 0 && info.innerL4Off >= ipEnd) return 'inner l4 past ip end';
    if (info.innerSport >= 0 && info.innerL4Off + 4 > ipEnd) return 'inner ports past ip end';
  }
  return null;
}

t.test('every valid corpus frame parses OK', async (t) => {
  const info = new PacketInfo();
  for (const v of validFrames()) {
    t.equal(parseFrame(v.frame, 0, v.frame.length, info), PARSE_OK, v.name);
  }
});

t.test('malformed corpus: never throws, codes are known and as expected, offsets in bounds', async (t) => {
  const info = new PacketInfo();
  let n = 0, ok = 0, expected = 0;
  const failures: string[] = [];
  const seen = new Set<number>();
  for (const c of malformedFrames({ seed: 12345, garbage: 10_000 })) {
    n++;
    let code: number;
    try {
      code = parseFrame(c.frame, 0, c.frame.length, info);
    } catch (e) {
      failures.push(`${c.name}: threw ${String(e)}`);
      continue;
    }
    seen.add(code);
    if (!(Number.isInteger(code) && code >= 0 && code < PARSE_REASON_NAMES.length)) failures.push(`${c.name}: code ${code}`);
    if (c.expect) {
      expected++;
      if (!c.expect.includes(code)) failures.push(`${c.name}: got ${PARSE_REASON_NAMES[code]}, want ${c.expect.map((x) => PARSE_REASON_NAMES[x]).join('|')}`);
    }
    if (code === PARSE_OK) {
      ok++;
      const p = boundsProblem(info, c.frame.length);
      if (p) failures.push(`${c.name}: ${p}`);
    }
  }
  t.same(failures.slice(0, 20), [], 'no failures');
  t.ok(n > 10_000 + 1000, `corpus is large (${n})`);
  t.ok(expected > 1000, `many cases with pinned codes (${expected})`);
  t.ok(ok > 0 && ok < n, 'some frames parse, most do not');
  // Garbage reaches most of the parser's exits.
  t.ok(seen.size >= 9, `distinct codes seen: ${[...seen].map((x) => PARSE_REASON_NAMES[x]).join(',')}`);
});

/** All fields, offsets made relative to the frame start, so frames at different offsets compare equal. */
function snapshot(info: PacketInfo): unknown {
  const rel = (x: number) => (x < 0 ? x : x - info.frameOff);
  return {
    // l3Off stays 0 until the Ethernet header has been read.
    ...info, frameOff: 0, l3Off: info.l3Off === 0 ? 0 : rel(info.l3Off), l4Off: rel(info.l4Off), fragHdrOff: rel(info.fragHdrOff),
    innerL3Off: rel(info.innerL3Off), innerL4Off: rel(info.innerL4Off),
    saddr: [...info.saddr], daddr: [...info.daddr], innerSaddr: [...info.innerSaddr], innerDaddr: [...info.innerDaddr],
  };
}

t.test('the parser reads nothing outside [off, off+len): same result with junk around the frame', async (t) => {
  const alone = new PacketInfo();
  const embedded = new PacketInfo();
  const buf = new Uint8Array(4096);
  let n = 0;
  const diffs: string[] = [];
  for (const c of malformedFrames({ seed: 99, garbage: 3000 })) {
    if (c.frame.length > 4000) continue;
    const off = 1 + (n % 61);
    // Junk that would make a truncated header look complete if it were read.
    buf.fill(n & 1 ? 0x00 : 0x45);
    buf.set(c.frame, off);
    const a = parseFrame(c.frame, 0, c.frame.length, alone);
    const b = parseFrame(buf, off, c.frame.length, embedded);
    if (a !== b) diffs.push(`${c.name}: code ${a} vs ${b}`);
    else if (!isDeepStrictEqual(snapshot(embedded), snapshot(alone))) diffs.push(`${c.name}: fields differ`);
    n++;
  }
  t.same(diffs.slice(0, 10), [], `${n} frames agree`);
});

t.test('hostile offsets and lengths do not throw', async (t) => {
  const info = new PacketInfo();
  const buf = new Uint8Array(64).fill(0x45);
  buf[12] = 0x08; buf[13] = 0x00;
  let threw = 0;
  for (const [off, len] of [[-1, 10], [NaN, NaN], [300, 10], [0, 10_000], [0, -5], [63, 1], [Infinity, 1], [0, Infinity]] as const) {
    try { parseFrame(buf, off, len, info); } catch { threw++; }
  }
  t.equal(threw, 0);
  t.equal(parseFrame(buf, 300, 10, info), 1, 'offset past the buffer: truncated Ethernet');
  t.not(parseFrame(buf, 0, 10_000, info), 0, 'a length past the buffer is clamped to it (IPv4 header of 0x45 bytes: bad)');
});
