/**
 * libipvs's ipvs_strerror(): the message for an errno depends on which libipvs
 * call failed last (libipvs keeps that in a global, `ipvs_func`). The specific
 * rows are tried first, then the generic ones, then the C library's strerror().
 * Also the startup texts ipvsadm prints when the IPVS control channel fails.
 */
import { CtlError } from '../../ctl/types.js';

/** The libipvs entry points that set `ipvs_func` (plus ulvs's mark-rule calls). */
export type IpvsOp =
  | 'init' | 'add-service' | 'update-service' | 'del-service' | 'zero-service'
  | 'add-dest' | 'update-dest' | 'del-dest' | 'set-timeout' | 'start-daemon' | 'stop-daemon'
  | 'get-services' | 'get-dests' | 'get-service' | 'get-timeout' | 'get-daemon'
  | 'add-mark-rule' | 'del-mark-rule' | 'get-mark-rules';

const SPECIFIC: ReadonlyArray<[IpvsOp, string, string]> = [
  ['add-service', 'EEXIST', 'Service already exists'],
  ['add-service', 'ENOENT', 'Scheduler or persistence engine not found'],
  ['update-service', 'ESRCH', 'No such service'],
  ['update-service', 'ENOENT', 'Scheduler or persistence engine not found'],
  ['del-service', 'ESRCH', 'No such service'],
  ['zero-service', 'ESRCH', 'No such service'],
  ['add-dest', 'ESRCH', 'Service not defined'],
  ['add-dest', 'EEXIST', 'Destination already exists'],
  ['update-dest', 'ESRCH', 'Service not defined'],
  ['update-dest', 'ENOENT', 'No such destination'],
  ['del-dest', 'ESRCH', 'Service not defined'],
  ['del-dest', 'ENOENT', 'No such destination'],
  ['start-daemon', 'EEXIST', 'Daemon has already run'],
  ['stop-daemon', 'ESRCH', 'No daemon is running'],
  ['get-services', 'ESRCH', 'No such service'],
  ['get-dests', 'ESRCH', 'No such service'],
  ['get-service', 'ESRCH', 'No such service'],
];

const GENERIC: Readonly<Record<string, string>> = {
  EPERM: 'Permission denied (you must be root)',
  EINVAL: 'Invalid operation.  Possibly wrong module version, address not unicast, ...',
  ENOPROTOOPT: 'Protocol not available',
  ENOMEM: 'Memory allocation problem',
  EOPNOTSUPP: 'Operation not supported with IPv6',
  EAFNOSUPPORT: 'Operation not supported with specified address family',
  EMSGSIZE: 'Module is wrong version',
};

/** glibc strerror() texts for the errnos a control channel can plausibly report. */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOSPC: 'No space left on device',
  EPIPE: 'Broken pipe',
  EDOM: 'Numerical argument out of domain',
  ERANGE: 'Numerical result out of range',
  ENOSYS: 'Function not implemented',
  EMSGSIZE: 'Message too long',
  ENOPROTOOPT: 'Protocol not available',
  EPROTONOSUPPORT: 'Protocol not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  ENOBUFS: 'No buffer space available',
  ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
};

/** C strerror(): known text, else glibc's "Unknown error" form. */
export function strerror(errno: string): string {
  return STRERROR[errno] ?? `Unknown error ${errno}`;
}

/** ipvs_strerror(err) given the libipvs call that failed last. */
export function ipvsStrerror(op: IpvsOp, errno: string): string {
  for (const [o, e, msg] of SPECIFIC) if (o === op && e === errno) return msg;
  return GENERIC[errno] ?? strerror(errno);
}

/**
 * The errno of a rejected control call. CtlError carries it; a plain Node system
 * error (e.g. the daemon socket is missing) carries `code`. Anything else is
 * (a broken control channel) reads as an I/O error.
 */
export function errnoOf(err: unknown): string {
  if (err instanceof CtlError) return err.errno;
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    const code = (err as { code: string }).code;
    // No control endpoint to talk to is what a missing ip_vs module looks like to ipvsadm.
    if (code === 'ECONNREFUSED' || code === 'ENOENT') return 'ENOPROTOOPT';
    return code;
  }
  return 'EIO';
}

/** ipvsadm main(): ipvs_init() failed (after trying modprobe). Exit status 2. */
export function initFailureText(errno: string): string {
  return `Can't initialize ipvs: ${ipvsStrerror('init', errno)}\n` +
    'Are you sure that IP Virtual Server is built in the kernel or as module?\n';
}

/** check_ipvs_version(): printed on stderr when the kernel's IPVS is older than 1.1.4. */
export function versionMismatchText(version: number): string {
  const v = `${(version >> 16) & 0xff}.${(version >> 8) & 0xff}.${version & 0xff}`;
  return 'Warning: IPVS version mismatch: \n' +
    `  Kernel compiled with IPVS version ${v}\n` +
    '  ipvsadm v1.31  requires minimum IPVS version 1.1.4\n\n';
}

export const MINIMUM_IPVS_VERSION = 0x010104;
