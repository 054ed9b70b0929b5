/**
 * `ulvs daemon`: runs the director in the foreground (systemd style, see
 * examples/ulvs.service) until SIGTERM or SIGINT. Prints one line when ready.
 * Exit status: 0 after a clean stop, 1 when it cannot start (bad --restore file,
 * socket taken, ...), 2 for a bad command line.
 */
import { parseArgs } from 'node:util';
import { Daemon, DaemonStartError, DEFAULT_CAPACITY } from '../ctl/daemon.js';
import { lookupGroup } from '../ctl/peercred.js';
import { DEFAULT_SOCKET_NAME } from '../ctl/protocol.js';
import { DataPlane, DataPlaneError, packetIoAllowed } from '../io/dataplane.js';

const USAGE = `Usage: ulvs daemon [options]

Runs the director of this network namespace in the foreground.

Options:
  --socket NAME        control socket: abstract name (default @${DEFAULT_SOCKET_NAME}) or a path containing '/'
  --group NAME         members of group NAME may change the table (root always may)
  --restore FILE       load an ipvsadm save file (ipvsadm -S output) before serving
  --capacity N         connection table entries (default ${DEFAULT_CAPACITY})
  --interface IF       serve interface IF (repeatable; default: every non-loopback
                       Ethernet interface of this network namespace)
  --backend B          packet I/O backend: afpacket (default), afpacket-ring
                       (memory-mapped TPACKET_V3 rings) or pcap
  --vnet-hdr           afpacket: PACKET_VNET_HDR, so TSO/GSO/GRO super-frames (up to
                       64 KiB) are forwarded whole and partial checksums are left to
                       the kernel; offloads may then stay on
  --batch N            frames per recvmmsg/sendmmsg (ring: per read and per transmit
                       kick), 1 to 1024 (default 64)
  --busy-poll USEC     afpacket backends: after a wake-up that received frames, keep
                       reading without blocking until USEC microseconds pass without
                       a frame, then wait in epoll again; control requests still run
                       at least every ms (default 0: off)
  --rcvbuf BYTES       afpacket: receive buffer of each packet socket (SO_RCVBUFFORCE;
                       the kernel doubles it; default 32M); suffix K, M or G allowed
  --sndbuf BYTES       afpacket: send buffer of the packet socket that transmits
                       (SO_SNDBUFFORCE; default 4M)
  --fanout-group N     afpacket backends: join PACKET_FANOUT group N (0-65535, hash
                       mode; the k-th interface joins group N+k): daemons in one group
                       split the frames by flow (DR/TUN only: NAT replies would not
                       reach the daemon that holds their connection)
  -h, --help           this text
`;

const MAX_CAPACITY = 0x7ffffff;
const MAX_BATCH = 1024;
const MAX_BUSY_POLL_US = 1_000_000;
/** SO_RCVBUFFORCE/SO_SNDBUFFORCE take an int, which the kernel doubles. */
const MIN_SOCKBUF = 4096;
const MAX_SOCKBUF = 1 << 30;

/** An integer option in [min, max], or a message; `suffix` allows K, M and G (powers of 1024). */
function intOption(v: string, name: string, min: number, max: number, suffix = false): number | string {
  const m = (suffix ? /^([0-9]+)([KMG]?)$/i : /^([0-9]+)()$/).exec(v);
  const n = m === null ? NaN : Number(m[1]) * ({ '': 1, k: 1024, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[m[2]!.toLowerCase()]!;
  if (!(n >= min && n <= max)) return `--${name} must be an integer from ${min} to ${max}${suffix ? ' (bytes; suffix K, M or G allowed)' : ''}`;
  return n;
}

function usageError(msg: string): number {
  process.stderr.write(`ulvs daemon: ${msg}\n${USAGE}`);
  return 2;
}

export default async function daemonMain(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        socket: { type: 'string' },
        group: { type: 'string' },
        restore: { type: 'string' },
        capacity: { type: 'string' },
        interface: { type: 'string', multiple: true },
        backend: { type: 'string' },
        'vnet-hdr': { type: 'boolean' },
        batch: { type: 'string' },
        'busy-poll': { type: 'string' },
        rcvbuf: { type: 'string' },
        sndbuf: { type: 'string' },
        'fanout-group': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let capacity = DEFAULT_CAPACITY;
  if (values.capacity !== undefined) {
    const n = intOption(values.capacity, 'capacity', 1, MAX_CAPACITY);
    if (typeof n === 'string') return usageError(n);
    capacity = n;
  }
  let groupGid: number | null = null;
  if (values.group !== undefined) {
    groupGid = lookupGroup(values.group);
    if (groupGid === null) return usageError(`unknown group '${values.group}'`);
  }
  if (values.backend !== undefined && values.backend !== 'afpacket' && values.backend !== 'afpacket-ring' && values.backend !== 'pcap') {
    return usageError(`--backend must be afpacket, afpacket-ring or pcap`);
  }
  const vnetHdr = values['vnet-hdr'] === true;
  if (vnetHdr && values.backend !== undefined && values.backend !== 'afpacket') {
    return usageError('--vnet-hdr needs the afpacket backend');
  }
  const tuning: { batchSize?: number; busyPollUs?: number; rcvbuf?: number; sndbuf?: number; fanoutGroup?: number } = {};
  for (const [name, key, min, max, suffix, backends] of [
    ['batch', 'batchSize', 1, MAX_BATCH, false, null],
    ['busy-poll', 'busyPollUs', 0, MAX_BUSY_POLL_US, false, ['afpacket', 'afpacket-ring']],
    ['rcvbuf', 'rcvbuf', MIN_SOCKBUF, MAX_SOCKBUF, true, ['afpacket']],
    ['sndbuf', 'sndbuf', MIN_SOCKBUF, MAX_SOCKBUF, true, ['afpacket']],
    ['fanout-group', 'fanoutGroup', 0, 0xffff, false, ['afpacket', 'afpacket-ring']],
  ] as const) {
    const v = values[name];
    if (v === undefined) continue;
    const n = intOption(v, name, min, max, suffix);
    if (typeof n === 'string') return usageError(n);
    if (backends !== null && !(backends as readonly string[]).includes(values.backend ?? 'afpacket')) {
      return usageError(`--${name} needs the ${backends.join(' or ')} backend`);
    }
    tuning[key] = n;
  }
  // --- data plane (io/dataplane.ts): the director runs in a worker thread that serves the interfaces ---
  let backend = (values.backend ?? 'afpacket') as 'afpacket' | 'afpacket-ring' | 'pcap' | 'none';
  if (values.interface === undefined) {
    const why = packetIoAllowed();
    if (why !== null) {
      process.stderr.write(`ulvs: warning: no packet I/O (${why}); this director serves its control socket only\n`);
      backend = 'none';
    }
  }
  let dataPlane: DataPlane;
  try {
    dataPlane = await DataPlane.create({ interfaces: values.interface, backend, capacity, vnetHdr, ...tuning });
  } catch (e) {
    if (e instanceof DataPlaneError) {
      process.stderr.write(`ulvs: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  dataPlane.onFatal = (why) => {
    process.stderr.write(`ulvs: ${why}\n`);
    process.exit(1);
  };
  // --- end of data plane ---

  // Handlers first: a signal that arrives while starting, or right after the ready line, still stops us cleanly.
  let onSignal: (s: NodeJS.Signals) => void = () => {};
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (s) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(s);
    };
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      socket: values.socket,
      groupGid,
      groupName: values.group,
      restoreFile: values.restore,
      capacity,
      dataPlane,
    });
  } catch (e) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await dataPlane.stop();
    if (e instanceof DaemonStartError) {
      process.stderr.write(`ulvs: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  process.stdout.write(`${daemon.readyLine()}\n`);
  const signal = await signalled;
  await daemon.stop();
  process.stdout.write(`ulvs: director stopped (${signal})\n`);
  return 0;
}
