/**
 * `ulvs daemon` as a function: a data plane (worker thread, packet I/O, nftables
 * guard) plus the control-plane daemon (socket, restore file, clock) serving it.
 * For labs and tests that want a director in-process; the CLI does the same.
 *
 * The control socket is created in this process's network namespace (abstract
 * names are per namespace), while `netns` only moves the data plane: to get a
 * director whose `ipvsadm` works inside namespace X, run the CLI there instead
 * (`ip netns exec X node bin/ulvs.js daemon`), or pass a socket path.
 */
import { Daemon, type DaemonOptions } from '../ctl/daemon.js';
import { DataPlane, type DataPlaneOptions } from './dataplane.js';

export interface DirectorDaemon {
  daemon: Daemon;
  dataPlane: DataPlane;
  /** Stops both (packet I/O first, nftables table removed). */
  stop(): Promise<void>;
}

export async function startDirectorDaemon(
  opts: Omit<DaemonOptions, 'dataPlane' | 'io'> & Omit<DataPlaneOptions, 'capacity' | 'log'> = {},
): Promise<DirectorDaemon> {
  const dataPlane = await DataPlane.create({ ...opts, capacity: opts.capacity, log: opts.log });
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ ...opts, dataPlane });
  } catch (e) {
    await dataPlane.stop();
    throw e;
  }
  return { daemon, dataPlane, stop: () => daemon.stop() };
}
