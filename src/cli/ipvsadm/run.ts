/**
 * The ipvsadm program: main() and process_options() of ipvsadm 1.31 over an
 * IpvsApi. Messages, streams and exit statuses are ipvsadm's:
 * - a control-channel failure at start: "Can't initialize ipvs: ..." (exit 2);
 * - no arguments: the table with names;
 * - a validation error: its message, exit 2 (ends a -R run too);
 * - popt's "unknown option"/"missing argument": exit 255 (a -R run goes on);
 * - a failed operation: ipvs_strerror's text, exit 255 (a -R run goes on);
 * - a failed listing: its text, exit 1.
 */
import type { IpvsApi, MarkRule } from '../../ctl/api.js';
import type { Info, ServiceKey } from '../../ctl/types.js';
import { parseIpvsadmArgs, defaultFormat, type ListFormat, type ListTarget, type ParsedCommand } from './parse.js';
import type { Resolver } from './resolver.js';
import { renderWithNames } from './names.js';
import {
  bannerText, connectionsText, daemonText, listServiceText, markRulesText, serviceEntryText,
  timeoutText, titleText, connectionsJson, daemonJson, listAllJson, listServiceJson,
  markRulesJson, timeoutJson,
} from './format.js';
import { sortServices } from './sort.js';
import { saveText } from './save.js';
import { splitRestoreInput } from './restore.js';
import { tryHelpText } from './help.js';
import {
  errnoOf, initFailureText, ipvsStrerror, MINIMUM_IPVS_VERSION, versionMismatchText, type IpvsOp,
} from './errors.js';

export { parseSaveText, splitRestoreInput } from './restore.js';
export type { RestoreLine, SaveTextError, ParsedSaveLine } from './restore.js';
export { parseIpvsadmArgs } from './parse.js';
export type { ParsedCommand, ParseExit, ParseResult, ListFormat, ListTarget } from './parse.js';

export interface IpvsadmIo {
  stdout(s: string): void;
  stderr(s: string): void;
  readStdin(): Promise<string>;
  /** -R: called with the input line number just before that line is run (for "FILE:LINE: message" reports). */
  onLine?(lineNo: number): void;
}

/** exit() from deep inside, as ipvsadm's fail()/exit() calls do. */
class ProgramExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

class Program {
  /** libipvs's ipvs_func: which call failed decides the error text (flush does not set it). */
  private lastOp: IpvsOp = 'init';

  constructor(
    private readonly argv0: string,
    private readonly io: IpvsadmIo,
    private readonly api: IpvsApi,
    private readonly resolver: Resolver,
    private readonly info: Info,
  ) {}

  private kernelError(op: IpvsOp, err: unknown): string {
    return ipvsStrerror(op, errnoOf(err)) + '\n';
  }

  /** One libipvs operation: 0, or -1 after printing ipvs_strerror(errno). */
  private async call(op: IpvsOp | null, fn: () => Promise<void>): Promise<number> {
    if (op !== null) this.lastOp = op;
    try {
      await fn();
      return 0;
    } catch (e) {
      this.io.stderr(this.kernelError(this.lastOp, e));
      return -1;
    }
  }

  /** process_options(): 0 or -1 (or a ProgramExit). */
  async processOptions(argv: readonly string[], readingStdin: boolean): Promise<number> {
    const parsed = await parseIpvsadmArgs(argv, { program: this.argv0, resolver: this.resolver });
    if (!parsed.ok) {
      const e = parsed.exit;
      if (e.stream === 'stdout') this.io.stdout(e.message);
      else this.io.stderr(e.message);
      if (e.fatal) throw new ProgramExit(e.exit);
      return -1;
    }
    return this.execute(parsed.command, readingStdin);
  }

  private async execute(c: ParsedCommand, readingStdin: boolean): Promise<number> {
    const api = this.api;
    switch (c.cmd) {
      case 'list':
        await this.list(c.target, c.svc, c.format);
        return 0;
      case 'restore':
        return this.restore(readingStdin);
      case 'save':
        await this.save(c.format.numeric);
        return 0;
      case 'flush':
        return this.call(null, () => api.flush());
      case 'add-service':
        return this.call('add-service', () => api.addService(c.svc));
      case 'edit-service':
        return this.call('update-service', () => api.editService(c.svc));
      case 'delete-service':
        return this.call('del-service', () => api.delService(c.svc));
      case 'zero':
        return this.call('zero-service', () => api.zero(c.svc));
      case 'add-server':
        return this.call('add-dest', () => api.addDest(c.svc, c.dest));
      case 'edit-server':
        return this.call('update-dest', () => api.editDest(c.svc, c.dest));
      case 'delete-server':
        return this.call('del-dest', () => api.delDest(c.svc, c.dest));
      case 'set':
        return this.call('set-timeout', () => api.setTimeouts(c.timeouts));
      case 'start-daemon':
        return this.call('start-daemon', () => api.startDaemon(c.daemon));
      case 'stop-daemon':
        return this.call('stop-daemon', () => api.stopDaemon(c.daemon.state, c.daemon.syncId));
      case 'add-mark-rule':
        return this.call('add-mark-rule', () => api.addMarkRule(c.rule));
      case 'del-mark-rule':
        return this.call('del-mark-rule', () => api.delMarkRule(c.rule));
    }
  }

  /** list_all(): the banner goes out before the table is read, as in ipvsadm. */
  async listAll(f: ListFormat): Promise<void> {
    if (!f.json) this.io.stdout(bannerText(this.info));
    this.lastOp = 'get-services';
    let services;
    try {
      services = await this.api.getServices();
    } catch (e) {
      this.io.stderr(this.kernelError('get-services', e));
      throw new ProgramExit(1);
    }
    if (services.length > 0) this.lastOp = 'get-dests';
    if (f.json) {
      this.io.stdout(listAllJson(this.info, services, f.nosort));
      return;
    }
    const list = f.nosort ? services : sortServices(services);
    this.io.stdout(await renderWithNames(f.numeric, this.resolver,
      (names) => titleText(f) + list.map((se) => serviceEntryText(se, f, names)).join('')));
  }

  private async list(target: ListTarget, key: ServiceKey | null, f: ListFormat): Promise<void> {
    switch (target) {
      case 'connections': {
        let conns;
        try {
          conns = await this.api.getConnections();
        } catch {
          this.io.stderr('cannot open file /proc/net/ip_vs_conn\n');
          throw new ProgramExit(1);
        }
        this.io.stdout(f.json ? connectionsJson(conns)
          : await renderWithNames(f.numeric, this.resolver, (names) => connectionsText(conns, f, names)));
        return;
      }
      case 'service': {
        this.lastOp = 'get-service';
        let se;
        try {
          se = await this.api.getService(key!);
        } catch (e) {
          // The kernel answers ESRCH for an unknown service; treat an ENOENT the same way.
          const errno = errnoOf(e) === 'ENOENT' ? 'ESRCH' : errnoOf(e);
          this.io.stderr(ipvsStrerror('get-service', errno) + '\n');
          throw new ProgramExit(1);
        }
        this.lastOp = 'get-dests';
        this.io.stdout(f.json ? listServiceJson(se, f.nosort)
          : await renderWithNames(f.numeric, this.resolver, (names) => listServiceText(se, f, names)));
        return;
      }
      case 'timeout': {
        this.lastOp = 'get-timeout';
        let t;
        try {
          t = await this.api.getTimeouts();
        } catch {
          throw new ProgramExit(1); // list_timeout() exits quietly
        }
        this.io.stdout(f.json ? timeoutJson(t) : timeoutText(t));
        return;
      }
      case 'daemon': {
        this.lastOp = 'get-daemon';
        let d;
        try {
          d = await this.api.getDaemons();
        } catch {
          throw new ProgramExit(1); // list_daemon() exits quietly
        }
        this.io.stdout(f.json ? daemonJson(d) : daemonText(d));
        return;
      }
      case 'mark-rules': {
        this.lastOp = 'get-mark-rules';
        let rules;
        try {
          rules = await this.api.getMarkRules();
        } catch (e) {
          this.io.stderr(this.kernelError('get-mark-rules', e));
          throw new ProgramExit(1);
        }
        this.io.stdout(f.json ? markRulesJson(rules) : markRulesText(rules));
        return;
      }
      case 'all':
        await this.listAll(f);
    }
  }

  private async save(numeric: boolean): Promise<void> {
    this.lastOp = 'get-services';
    let services;
    try {
      services = await this.api.getServices();
    } catch (e) {
      this.io.stderr(this.kernelError('get-services', e));
      throw new ProgramExit(1);
    }
    let rules: MarkRule[];
    try {
      rules = await this.api.getMarkRules();
    } catch (e) {
      // A control channel without the classifier simply has no rules to save.
      const errno = errnoOf(e);
      if (errno !== 'ENOSYS' && errno !== 'EOPNOTSUPP') {
        this.io.stderr(this.kernelError('get-mark-rules', e));
        throw new ProgramExit(1);
      }
      rules = [];
    }
    if (services.length > 0) this.lastOp = 'get-dests';
    this.io.stdout(await renderWithNames(numeric, this.resolver, (names) => saveText(services, rules, names)));
  }

  /** restore_table(): each line like a command line; the status is the last line's. */
  private async restore(readingStdin: boolean): Promise<number> {
    if (readingStdin) {
      this.io.stderr(tryHelpText(this.argv0));
      throw new ProgramExit(255);
    }
    const text = await this.io.readStdin();
    let result = 0;
    for (const line of splitRestoreInput(text)) {
      if (line.args.length === 0) continue;
      this.io.onLine?.(line.lineNo);
      result = await this.processOptions(line.args, true);
    }
    return result;
  }
}

/**
 * Runs ipvsadm with `argv` (without argv[0]); `argv0` is the name it was invoked
 * as (used in -h and the "Try ..." hint). Resolves to the exit status.
 */
export async function runIpvsadm(
  argv0: string, argv: readonly string[], io: IpvsadmIo, api: IpvsApi, resolver: Resolver,
): Promise<number> {
  let info: Info;
  try {
    info = await api.getInfo();
  } catch (e) {
    io.stderr(initFailureText(errnoOf(e)));
    return 2;
  }
  if (info.version < MINIMUM_IPVS_VERSION) io.stderr(versionMismatchText(info.version));
  const prog = new Program(argv0, io, api, resolver, info);
  try {
    if (argv.length === 0) {
      await prog.listAll(defaultFormat());
      return 0;
    }
    const result = await prog.processOptions(argv, false);
    return result === 0 ? 0 : 255;
  } catch (e) {
    if (e instanceof ProgramExit) return e.code & 0xff;
    throw e;
  }
}
