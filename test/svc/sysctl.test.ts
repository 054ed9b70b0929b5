import t from 'tap';
import { CtlError } from '../../src/ctl/types.js';
import {
  defaultSysctls, estimationStopped, isSysctlName, MAX_JIFFIES_SECONDS, setSysctl, SYSCTL_NAMES,
  type SysctlName, type Sysctls,
} from '../../src/svc/sysctl.js';

function errno(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof CtlError ? e.errno : `not a CtlError: ${String(e)}`;
  }
}

t.test('defaults match the kernel (ip_vs_control_net_init_sysctl, ipvs-sysctl.rst)', async (t) => {
  const s = defaultSysctls({ sync_qlen_max: 4096 });
  const want: Omit<Sysctls, 'sync_qlen_max'> = {
    amemthresh: 1024, am_droprate: 10, drop_entry: 0, drop_packet: 0, secure_tcp: 0, conntrack: 0,
    snat_reroute: 1, sync_version: 1, sync_ports: 1, sync_persist_mode: 0, sync_sock_size: 0,
    cache_bypass: 0, expire_nodest_conn: 0, sloppy_tcp: 0, sloppy_sctp: 0, expire_quiescent_template: 0,
    sync_threshold: [3, 50], sync_refresh_period: 0, sync_retries: 0, nat_icmp_send: 0, pmtu_disc: 1,
    backup_only: 0, conn_reuse_mode: 1, schedule_icmp: 0, ignore_tunneled: 0, run_estimation: 1,
    est_cpulist: null, est_nice: 0, debug_level: 0, lblc_expiration: 86400, lblcr_expiration: 86400,
  };
  t.same(s, { ...want, sync_qlen_max: 4096 });
  t.same([...SYSCTL_NAMES].sort(), Object.keys(s).sort(), 'SYSCTL_NAMES lists every entry');
  t.ok(defaultSysctls().sync_qlen_max > 0, 'sync_qlen_max defaults from memory size');
});

t.test('defense modes accept 0..3 only', async (t) => {
  for (const name of ['drop_entry', 'drop_packet', 'secure_tcp'] as const) {
    const s = defaultSysctls({ sync_qlen_max: 1 });
    for (const v of [0, 1, 2, 3]) t.equal(errno(() => setSysctl(s, name, v)), null, `${name}=${v}`);
    t.equal(s[name], 3);
    t.equal(errno(() => setSysctl(s, name, 4)), 'EINVAL', `${name}=4`);
    t.equal(errno(() => setSysctl(s, name, -1)), 'EINVAL', `${name}=-1`);
    t.equal(s[name], 3, 'unchanged after a refused write');
  }
});

t.test('ranged entries', async (t) => {
  const s = defaultSysctls({ sync_qlen_max: 1 });
  const cases: [SysctlName, unknown, string | null][] = [
    ['sync_version', 0, null], ['sync_version', 1, null], ['sync_version', 2, 'EINVAL'],
    ['sync_retries', 3, null], ['sync_retries', 4, 'EINVAL'], ['sync_retries', -1, 'EINVAL'],
    ['sync_ports', 4, null], ['sync_ports', 64, null], ['sync_ports', 128, null],
    ['sync_ports', 3, 'EINVAL'], ['sync_ports', 0, 'EINVAL'],
    ['est_nice', -20, null], ['est_nice', 19, null], ['est_nice', 20, 'EINVAL'], ['est_nice', -21, 'EINVAL'],
    ['sync_threshold', [0, 0], null], ['sync_threshold', [10, 0], null], ['sync_threshold', [3, 50], null],
    ['sync_threshold', [50, 50], 'EINVAL'], ['sync_threshold', [60, 50], 'EINVAL'],
    ['sync_threshold', [-1, 50], 'EINVAL'], ['sync_threshold', [3, -1], 'EINVAL'], ['sync_threshold', [3], 'EINVAL'],
    ['lblc_expiration', 3600, null], ['lblc_expiration', MAX_JIFFIES_SECONDS, null],
    ['lblc_expiration', MAX_JIFFIES_SECONDS + 1, 'EINVAL'], ['lblcr_expiration', MAX_JIFFIES_SECONDS + 1, 'EINVAL'],
    ['sync_refresh_period', MAX_JIFFIES_SECONDS + 1, 'EINVAL'],
    ['sync_qlen_max', 0, null], ['sync_qlen_max', 2 ** 40, null], ['sync_qlen_max', -1, 'EINVAL'],
    ['amemthresh', -5, null], ['amemthresh', 2 ** 31, 'EINVAL'], ['amemthresh', 1.5, 'EINVAL'],
    ['expire_nodest_conn', 1, null], ['conn_reuse_mode', 2, null], ['run_estimation', 0, null],
    ['est_cpulist', '0-3,8', null], ['est_cpulist', '', null], ['est_cpulist', '3-1', 'EINVAL'],
    ['est_cpulist', 'x', 'EINVAL'],
  ];
  for (const [name, v, want] of cases) {
    t.equal(errno(() => setSysctl(s, name, v as never)), want, `${name} = ${JSON.stringify(v)}`);
  }
  t.same(s.sync_threshold, [3, 50]);
  t.equal(errno(() => setSysctl(s, 'nope' as SysctlName, 1 as never)), 'ENOENT');
  t.ok(isSysctlName('expire_nodest_conn'));
  t.notOk(isSysctlName('timeout_established'), 'the old timeout_* entries are gone');
});

t.test('estimation is stopped by run_estimation=0 or an empty est_cpulist', async (t) => {
  const s = defaultSysctls({ sync_qlen_max: 1 });
  t.equal(estimationStopped(s), false);
  setSysctl(s, 'run_estimation', 0);
  t.equal(estimationStopped(s), true);
  setSysctl(s, 'run_estimation', 1);
  setSysctl(s, 'est_cpulist', '');
  t.equal(estimationStopped(s), true);
  setSysctl(s, 'est_cpulist', '0');
  t.equal(estimationStopped(s), false);
});
