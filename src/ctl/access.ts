/**
 * Who may change the table (and list connections): like kernel IPVS, root; also
 * the user the daemon runs as (it owns the director), and the members of the group
 * named with `--group`. Membership counts the peer's primary and supplementary
 * groups as the kernel reported them (SO_PEERCRED, SO_PEERGROUPS). A peer whose
 * credentials could not be read is unprivileged.
 */
import type { PeerCred } from './peercred.js';

export interface AccessPolicyOptions {
  /** gid of `--group`, or null. */
  groupGid?: number | null;
  /** The daemon's own uid (default: process.getuid()). */
  ownerUid?: number;
}

export class AccessPolicy {
  readonly groupGid: number | null;
  readonly ownerUid: number;

  constructor(opts: AccessPolicyOptions = {}) {
    this.groupGid = opts.groupGid ?? null;
    this.ownerUid = opts.ownerUid ?? (typeof process.getuid === 'function' ? process.getuid() : 0);
  }

  privileged(cred: PeerCred | null): boolean {
    if (cred === null) return false;
    if (cred.uid === 0 || cred.uid === this.ownerUid) return true;
    const g = this.groupGid;
    return g !== null && (cred.gid === g || cred.groups.includes(g));
  }
}
