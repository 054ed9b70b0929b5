/**
 * The wire benchmark's workloads: what runs in the client namespace and how its
 * output becomes one number. The load generators are the ones an operator would
 * reach for (wrk, iperf3), with the settings of io-prototype-measurements.md §1
 * so the numbers compare with the prototype's: `wrk -t1 -c32`, `iperf3 -t S`,
 * `iperf3 -u -l 64 -b 0`.
 *
 * The parsers are pure (tested against recorded outputs); the runners return
 * a WorkloadResult that carries the reason when a run produced nothing usable,
 * so a broken path shows up as an error in the table instead of a silent 0.
 */

export const WORKLOADS = ['http-close', 'http-keepalive', 'tcp-bulk', 'udp-64'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const WORKLOAD_UNIT: Record<Workload, string> = {
  'http-close': 'req/s',
  'http-keepalive': 'req/s',
  'tcp-bulk': 'Gbit/s',
  'udp-64': 'pps',
};

/** The port the iperf3 servers listen on (TCP control + data, UDP data). */
export const IPERF_PORT = 5201;

export interface WorkloadResult {
  /** The measurement, or null when the run failed. */
  value: number | null;
  /** Why the run failed, or what went wrong along the way (e.g. wrk socket errors). */
  note: string | null;
}

/** How to run one workload: a command line for the client namespace. */
export interface WorkloadCommand {
  cmd: string;
  args: string[];
  /** Hard limit for the process (the workload's duration plus slack). */
  timeoutMs: number;
  parse(stdout: string, stderr: string): WorkloadResult;
}

export interface WorkloadTarget {
  host: string;
  httpPort: number;
  /** wrk connections (default 32). */
  connections?: number;
}

export function workloadCommand(w: Workload, t: WorkloadTarget, seconds: number): WorkloadCommand {
  const timeoutMs = (seconds + 15) * 1000;
  const conns = String(t.connections ?? 32);
  const url = `http://${t.host}:${t.httpPort}/`;
  switch (w) {
    case 'http-close':
      return {
        cmd: 'wrk', timeoutMs, parse: parseWrk,
        args: ['-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '2s', '-H', 'Connection: close', url],
      };
    case 'http-keepalive':
      return { cmd: 'wrk', timeoutMs, parse: parseWrk, args: ['-t1', `-c${conns}`, `-d${seconds}s`, '--timeout', '2s', url] };
    case 'tcp-bulk':
      return {
        cmd: 'iperf3', timeoutMs, parse: parseIperfTcp,
        args: ['-c', t.host, '-p', String(IPERF_PORT), '-t', String(seconds), '--connect-timeout', '3000', '-J'],
      };
    case 'udp-64':
      return {
        cmd: 'iperf3', timeoutMs, parse: parseIperfUdp,
        args: ['-c', t.host, '-p', String(IPERF_PORT), '-u', '-l', '64', '-b', '0', '-t', String(seconds),
          '--connect-timeout', '3000', '-J'],
      };
  }
}

/**
 * wrk's summary: "Requests/sec: 12345.67". Socket errors and non-2xx answers are
 * reported in the note (a path that resets half its connections is not fast, it
 * is broken); a run where every request failed has no value.
 */
export function parseWrk(stdout: string, stderr = ''): WorkloadResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(stdout);
  const total = /^\s*(\d+) requests in /m.exec(stdout);
  const notes: string[] = [];
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  if (sock && sock.slice(1).some((n) => n !== '0')) {
    notes.push(`socket errors: connect ${sock[1]}, read ${sock[2]}, write ${sock[3]}, timeout ${sock[4]}`);
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (non2xx) notes.push(`${non2xx[1]} non-2xx responses`);
  if (!rps || !total) return { value: null, note: `wrk printed no summary: ${(stderr || stdout).trim().slice(0, 200)}` };
  const good = Number(total[1]) - (non2xx ? Number(non2xx[1]) : 0);
  if (good <= 0) return { value: null, note: notes.join('; ') || 'no request completed' };
  return { value: Number(rps[1]), note: notes.length ? notes.join('; ') : null };
}

interface UdpSum {
  bits_per_second?: number;
  packets?: number;
  lost_packets?: number;
  seconds?: number;
}

interface IperfJson {
  error?: string;
  end?: {
    sum?: UdpSum;
    sum_received?: UdpSum;
  };
}

function parseIperfJson(stdout: string): IperfJson | string {
  try {
    return JSON.parse(stdout) as IperfJson;
  } catch {
    return `iperf3 printed no JSON: ${stdout.trim().slice(0, 200)}`;
  }
}

/** TCP: what the receiver got, Gbit/s (end.sum_received, as iperf3's own "receiver" line). */
export function parseIperfTcp(stdout: string, stderr = ''): WorkloadResult {
  const j = parseIperfJson(stdout);
  if (typeof j === 'string') return { value: null, note: stderr.trim() || j };
  if (j.error) return { value: null, note: `iperf3: ${j.error}` };
  const bps = j.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number' || bps <= 0) return { value: null, note: 'iperf3 reports nothing received' };
  return { value: bps / 1e9, note: null };
}

/**
 * UDP: packets the server received per second (its highest sequence number
 * minus the gaps, over the test's seconds, from the server's report that iperf3
 * copies into the client's JSON).
 * Loss is noted: with `-b 0` the sender outruns every path here, so the received
 * rate is the path's capacity and the loss is expected.
 */
export function parseIperfUdp(stdout: string, stderr = ''): WorkloadResult {
  const j = parseIperfJson(stdout);
  if (typeof j === 'string') return { value: null, note: stderr.trim() || j };
  if (j.error) return { value: null, note: `iperf3: ${j.error}` };
  // The receiver's view (iperf3 ≥ 3.10); older versions put it in end.sum.
  const s = j.end?.sum_received ?? j.end?.sum;
  if (!s || typeof s.packets !== 'number' || typeof s.lost_packets !== 'number' || !s.seconds) {
    return { value: null, note: 'iperf3 JSON has no UDP summary' };
  }
  const received = s.packets - s.lost_packets;
  if (received <= 0) return { value: null, note: `0 of ${s.packets} datagrams arrived` };
  const loss = s.packets > 0 ? (100 * s.lost_packets) / s.packets : 0;
  return { value: received / s.seconds, note: `${loss.toFixed(0)} % loss` };
}

/** Median of the numbers (mean of the middle two for an even count); null for none. */
export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >>> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
