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
  -h, --help           this text
`;

const MAX_CAPACITY = 0x7ffffff;

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
    if (!/^[0-9]+$/.test(values.capacity) || Number(values.capacity) < 1 || Number(values.capacity) > MAX_CAPACITY) {
      return usageError(`--capacity must be an integer from 1 to ${MAX_CAPACITY}`);
    }
    capacity = Number(values.capacity);
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
    dataPlane = await DataPlane.create({ interfaces: values.interface, backend, capacity, vnetHdr });
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
